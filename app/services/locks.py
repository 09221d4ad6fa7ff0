"""Per-execution serialisation: every event of an execution is written under this lock."""

from __future__ import annotations

from app.db.types import Conn


async def lock_execution(conn: Conn, execution_id: int) -> None:
    """pg_advisory_xact_lock(execution_id); released at commit or rollback."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", execution_id)


async def try_lock_command(conn: Conn, command_id: int) -> bool:
    """pg_try_advisory_xact_lock(command_id): False while another claim of the command is in progress."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", command_id))
