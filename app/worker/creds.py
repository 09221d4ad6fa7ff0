"""The Credentials object for a command: the credential resolver when this build has it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.worker.tools.base import Credentials, ServerApi, ToolError


class UnavailableCredentials:
    """Stands in when app.worker.credentials is not part of this build."""

    async def resolve(self, alias: str) -> Mapping[str, Any]:
        """Always fails: there is no resolver."""
        raise ToolError("credential resolution is not available in this build")


_MISSING = object()
_resolver: Any = _MISSING


def _resolver_class() -> Any:
    """app.worker.credentials.CredentialResolver, looked up once; None when the module is absent."""
    global _resolver
    if _resolver is _MISSING:
        try:
            from app.worker.credentials import CredentialResolver  # type: ignore[import-not-found,unused-ignore]

            _resolver = CredentialResolver
        except ImportError:
            _resolver = None
    return _resolver


def credentials_for(
    api: ServerApi,
    *,
    execution_id: int,
    worker_id: str,
    env_allowlist: list[str],
    private_key: X25519PrivateKey | None,
    sealed: bool,
) -> Credentials:
    """A CredentialResolver for one execution, or the unavailable stand-in."""
    resolver_cls = _resolver_class()
    if resolver_cls is None:
        return UnavailableCredentials()
    resolver: Credentials = resolver_cls(
        api,
        execution_id=execution_id,
        worker_id=worker_id,
        env_allowlist=env_allowlist,
        private_key=private_key,
        sealed=sealed,
    )
    return resolver
