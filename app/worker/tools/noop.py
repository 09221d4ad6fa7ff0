"""The `noop` tool (playbook-dsl §2.3.6)."""

from __future__ import annotations

from typing import Any

from app.worker.tools.base import ToolContext


async def run(config: dict[str, Any], ctx: ToolContext) -> Any:
    """`result` verbatim when given, else `{"status": "ok", "message": ...}`."""
    if "result" in config:
        return config["result"]
    return {"status": "ok", "message": config.get("message") or "noop"}
