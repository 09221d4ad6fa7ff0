"""`noetl-control-plane replay [--projection NAME] [--execution ID]`: rebuild projections from noetl.event."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from app.config import Settings
from app.db.pool import connect
from projections.replay import replay, selected


async def run_replay(
    settings: Settings, projection: str | None, execution_id: int | None
) -> dict[str, object]:
    """Open one connection and rebuild; returns the report."""
    conn = await connect(settings.db.dsn, settings.server.schema_name)
    try:
        report = await replay(conn, projection, execution_id)
    finally:
        await conn.close()
    return report.as_dict()


def main(settings: Settings, args: argparse.Namespace) -> int:
    """Entry point of the subcommand; prints a JSON report."""
    projection = getattr(args, "projection", None)
    try:
        selected(projection)
    except ValueError as exc:
        print(f"noetl-control-plane replay: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(run_replay(settings, projection, getattr(args, "execution", None)))
    print(json.dumps(report))
    return 0
