"""Per-execution serialisation: every event of an execution is written under this lock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.db.types import Conn


async def lock_execution(conn: Conn, execution_id: int) -> None:
    """pg_advisory_xact_lock(execution_id); released at commit or rollback."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", execution_id)


async def try_lock_command(conn: Conn, command_id: int) -> bool:
    """pg_try_advisory_xact_lock(command_id): False while another claim of the command is in progress."""
    return bool(await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", command_id))


@asynccontextmanager
async def locked_transaction(conn: Conn, execution_id: int) -> AsyncIterator[None]:
    """BEGIN + pg_advisory_xact_lock(execution_id) in one simple-protocol round trip; COMMIT or ROLLBACK.

    Saves the separate BEGIN round trip of conn.transaction() on the hot event path; the id is an int,
    so formatting it into the statement is safe."""
    key = int(execution_id)
    try:
        await conn.execute(f"BEGIN; SELECT pg_advisory_xact_lock({key})")
        yield
    except BaseException:
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")
        raise
    await conn.execute("COMMIT")
