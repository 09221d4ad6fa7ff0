"""CredentialResolver error mapping and answer checks (a scripted ServerApi; the server itself is in integration)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from app.worker.credentials import CredentialResolver
from app.worker.tools.base import ToolError

pytestmark = pytest.mark.unit


class Failing(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"server answered {status}: {body}")
        self.status = status


class Scripted:
    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        self.calls.append((path, dict(params or {})))
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer

    async def post_json(self, path: str, body: Any) -> Any:
        raise AssertionError("no posts")


def make(api: Scripted, **kw: Any) -> CredentialResolver:
    return CredentialResolver(
        api, execution_id=77, worker_id="w", env_allowlist=kw.pop("allow", []), private_key=None, sealed=False
    )


async def test_query_parameters() -> None:
    api = Scripted({"type": "basic", "name": "a", "data": {"username": "u"}})
    await make(api).resolve("a")
    assert api.calls == [("/api/credentials/a", {"include_data": "true", "execution_id": "77"})]


async def test_server_error_body_is_not_echoed() -> None:
    api = Scripted(Failing(502, {"error": "provider said token=XYZ-SECRET"}))
    with pytest.raises(ToolError) as err:
        await make(api).resolve("a")
    assert err.value.code == "credential_error" and "502" in err.value.message
    assert "XYZ-SECRET" not in err.value.message


async def test_bare_string_keychain_value_is_refused() -> None:
    api = Scripted({"type": "keychain", "name": "a", "data": "just-a-secret-string"})
    with pytest.raises(ToolError) as err:
        await make(api).resolve("a")
    assert err.value.code == "credential_invalid" and "just-a-secret-string" not in err.value.message


async def test_unset_allowlisted_env_var_falls_through_to_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOETL_TOOL_UNSET_VAR", raising=False)
    api = Scripted({"type": "bearer", "name": "NOETL_TOOL_UNSET_VAR", "data": {"token": "t"}})
    cred = await make(api, allow=["NOETL_TOOL_UNSET_VAR"]).resolve("NOETL_TOOL_UNSET_VAR")
    assert cred["type"] == "bearer" and len(api.calls) == 1


async def test_empty_alias() -> None:
    with pytest.raises(ToolError):
        await make(Scripted({})).resolve(" ")
