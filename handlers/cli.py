"""`noetl-control-plane` command line: one subcommand per role plus migrate, dev and replay."""

from __future__ import annotations

import argparse
import asyncio
import sys

from app.config import load_settings
from app.errors import ConfigError
from app.logging import setup_logging


class NotAvailable(Exception):
    """A role that a later issue fills in."""


def _settings_or_exit():  # type: ignore[no-untyped-def]
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"noetl-control-plane: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def cmd_serve(args: argparse.Namespace) -> None:
    from handlers.roles.serve import run_server

    settings = _settings_or_exit()
    if args.host:
        settings.server.host = args.host
    if args.port:
        settings.server.port = args.port
    setup_logging(settings.server.effective_log_level, settings.server.server_name)
    asyncio.run(run_server(settings, run_migrations=not args.no_migrate))


def cmd_migrate(args: argparse.Namespace) -> None:
    from app.db.migrate import MigrationError, migrate

    settings = _settings_or_exit()
    setup_logging(settings.server.effective_log_level)
    try:
        applied = asyncio.run(migrate(settings.db.dsn, settings.server.schema_name))
    except MigrationError as exc:
        print(f"noetl-control-plane migrate: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))


def cmd_dev(args: argparse.Namespace) -> None:
    from handlers.roles.dev import run_dev

    raise SystemExit(run_dev(args))


def cmd_role(role: str):  # type: ignore[no-untyped-def]
    def run(args: argparse.Namespace) -> None:
        import importlib

        try:
            module = importlib.import_module(f"handlers.roles.{role}")
        except ModuleNotFoundError:
            print(f"noetl-control-plane {role}: not available yet in this build", file=sys.stderr)
            raise SystemExit(3) from None
        settings = _settings_or_exit()
        setup_logging(settings.server.effective_log_level, f"noetl-{role}")
        raise SystemExit(module.main(settings, args))

    return run


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests)."""
    p = argparse.ArgumentParser(prog="noetl-control-plane", description="NoETL control plane")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run the API server (port 8082)")
    s.add_argument("--host")
    s.add_argument("--port", type=int)
    s.add_argument("--no-migrate", action="store_true", help="do not apply migrations at start")
    s.set_defaults(func=cmd_serve)
    m = sub.add_parser("migrate", help="apply pending schema migrations")
    m.set_defaults(func=cmd_migrate)
    for role, text in (
        ("consumers", "run the internal NATS consumers"),
        ("worker", "run a worker"),
        ("gateway", "run the gateway (port 8090)"),
        ("replay", "rebuild projections"),
    ):
        r = sub.add_parser(role, help=text)
        if role == "replay":
            r.add_argument("--projection")
            r.add_argument("--execution", type=int)
        if role == "consumers":
            r.add_argument("--port", type=int, default=0, help="serve /healthz and /metrics on this port")
        r.set_defaults(func=cmd_role(role))
    d = sub.add_parser("dev", help="run every role on embedded PostgreSQL and NATS")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8082)
    d.add_argument("--gateway-port", type=int, default=8090)
    d.add_argument("--data-dir", default=".noetl-dev")
    d.add_argument("--workers", type=int, default=2)
    d.add_argument("--no-migrate", action="store_true")
    d.add_argument("--no-demo", action="store_true", help="do not run the demo playbook at start")
    d.add_argument("--exit-after-demo", action="store_true", help="stop the stack after the demo ran")
    d.set_defaults(func=cmd_dev)
    return p


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    args = build_parser().parse_args(argv)
    args.func(args)
