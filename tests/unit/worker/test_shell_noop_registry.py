"""shell (dsl §2.3.5), noop (§2.3.6) and the kind registry."""

from __future__ import annotations

import asyncio

import pytest

from app.worker.registry import get_tool
from app.worker.tools import noop, shell
from app.worker.tools.base import ToolCancelled, ToolError
from tests.unit.worker.helpers import make_ctx

pytestmark = pytest.mark.unit


async def test_shell_runs_programs_in_order() -> None:
    out = await shell.run({"cmds": ["echo one", "echo $X_T >&2"], "env": {"X_T": "two"}}, make_ctx())
    assert out["returncode"] == 0 and out["stdout"] == "one\n" and out["stderr"] == "two\n"
    assert [c["cmd_preview"] for c in out["commands"]] == ["echo one", "echo $X_T >&2"]
    assert all(isinstance(c["duration_ms"], int) for c in out["commands"])
    assert isinstance(out["duration_ms"], int)


async def test_shell_command_and_cwd(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = await shell.run({"command": "pwd", "cwd": str(tmp_path)}, make_ctx())
    assert out["stdout"].strip() == str(tmp_path)
    assert (await shell.run({"cmd": "echo hi"}, make_ctx()))["stdout"] == "hi\n"


async def test_shell_nonzero_is_an_error_and_stops() -> None:
    with pytest.raises(ToolError) as info:
        await shell.run({"cmds": ["echo a; exit 3", "echo never"]}, make_ctx())
    assert "exited with 3" in info.value.message
    assert info.value.data["returncode"] == 3 and len(info.value.data["commands"]) == 1


async def test_shell_timeout_and_cancel() -> None:
    with pytest.raises(ToolError) as info:
        await shell.run({"command": "sleep 20", "timeout_seconds": 0.3}, make_ctx())
    assert info.value.code == "timeout"
    ctx = make_ctx()
    task = asyncio.create_task(shell.run({"command": "sleep 20"}, ctx))
    await asyncio.sleep(0.2)
    ctx.cancelled.set()
    with pytest.raises(ToolCancelled):
        await asyncio.wait_for(task, 5)


async def test_shell_needs_a_command() -> None:
    with pytest.raises(ToolError, match="cmds"):
        await shell.run({}, make_ctx())


async def test_noop() -> None:
    assert await noop.run({}, make_ctx()) == {"status": "ok", "message": "noop"}
    assert await noop.run({"message": "hi"}, make_ctx()) == {"status": "ok", "message": "hi"}
    assert await noop.run({"result": [1]}, make_ctx()) == [1]


def test_registry_finds_tools_and_refuses_unknown_kinds() -> None:
    assert get_tool("noop") is noop.run
    for kind in ("duckdb", "base", "../x", "Nope"):
        with pytest.raises(ToolError, match=f"tool kind '{kind}' is not supported by this worker"):
            get_tool(kind)


async def test_credentials_fall_back_when_the_resolver_is_absent() -> None:
    import importlib.util

    from app.worker.creds import UnavailableCredentials, credentials_for

    creds = credentials_for(
        make_ctx().api, execution_id=1, worker_id="w", env_allowlist=[], private_key=None, sealed=False
    )
    if importlib.util.find_spec("app.worker.credentials") is None:
        assert isinstance(creds, UnavailableCredentials)
        with pytest.raises(ToolError, match="credential resolution is not available in this build"):
            await creds.resolve("pg")
    else:
        assert not isinstance(creds, UnavailableCredentials)
