"""Credential aliases backed by worker env vars (NOETL_KEYCHAIN_ENV_VARS, playbook-dsl.md §2.5).

The allowlist itself is a WorkerSettings field; the values are read here, at resolution time, so that every
env var read stays under app/config/ and only allowlisted names are ever readable by a playbook."""

from __future__ import annotations

import os
from collections.abc import Collection


def allowlisted_env(name: str, allowlist: Collection[str]) -> str | None:
    """The value of env var `name` if it is on the allowlist and set, else None."""
    if name not in allowlist:
        return None
    return os.environ.get(name)
