"""`noetl-control-plane dev`: every role under one supervisor on embedded PostgreSQL and NATS."""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.devstack.nats import EmbeddedNats
from app.devstack.postgres import EmbeddedPostgres

ROLE_ORDER = ("consumers", "gateway")


def _role_available(role: str) -> bool:
    return importlib.util.find_spec(f"handlers.roles.{role}") is not None


def _dev_secret(root: Path, name: str, make: Any) -> str:
    """Generated once per data dir so restarts keep credentials readable."""
    path = root / name
    if path.exists():
        return path.read_text().strip()
    value = str(make())
    path.write_text(value)
    path.chmod(0o600)
    return value


def _wait_http(url: str, timeout: float) -> bool:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    return False


class Supervisor:
    """Starts children in their own process groups and always stops every one of them."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []

    def spawn(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        log = open(log_dir / f"{name}.log", "ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.children.append((name, proc))

    def dead(self) -> list[str]:
        return [n for n, p in self.children if p.poll() is not None]

    def stop(self, timeout: float = 20.0) -> None:
        for _, p in reversed(self.children):
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for _, p in self.children:
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        self.children.clear()


def run_dev(args: argparse.Namespace) -> int:
    """Run the stack until SIGTERM / Ctrl-C; returns the exit code."""
    root = Path(args.data_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    (root / "logs").mkdir(exist_ok=True)
    stop_requested = False

    def _stop(*_: Any) -> None:
        nonlocal stop_requested
        stop_requested = True

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)

    pg: EmbeddedPostgres | None = None
    nats: EmbeddedNats | None = None
    sup = Supervisor()
    stack_file = root / "stack.json"
    stack_file.unlink(missing_ok=True)
    try:
        env = dict(os.environ)
        if not env.get("DATABASE_URL") and not env.get("POSTGRES_HOST"):
            pg = EmbeddedPostgres(root / "postgres")
            admin = pg.start()
            env["DATABASE_URL"] = _ensure_database(admin, "noetl")
        if not env.get("NATS_URL"):
            nats = EmbeddedNats(root / "nats")
            env["NATS_URL"] = nats.start()
        api_url = f"http://{args.host}:{args.port}"
        gateway_url = f"http://{args.host}:{args.gateway_port}"
        env.update(
            {
                "NOETL_HOST": args.host,
                "NOETL_PORT": str(args.port),
                "NOETL_PUBLIC_SERVER_URL": api_url,
                "NOETL_SERVER_URL": api_url,
                "NOETL_BASE_URL": api_url,
                "ROUTER_PORT": str(args.gateway_port),
                "GATEWAY_BIND": args.host,
            }
        )
        env.setdefault(
            "NOETL_INTERNAL_API_TOKEN", _dev_secret(root, "internal-token", lambda: secrets.token_hex(32))
        )
        env.setdefault(
            "NOETL_ENCRYPTION_KEY",
            _dev_secret(root, "encryption-key", lambda: base64.b64encode(secrets.token_bytes(32)).decode()),
        )
        if not args.no_migrate:
            subprocess.run(
                [sys.executable, "-m", "app", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL
            )
        sup.spawn("api", ["serve", "--no-migrate"], env, root / "logs")
        if not _wait_http(f"{api_url}/readyz", 60):
            print(f"noetl dev: the API did not become ready; see {root}/logs/api.log", file=sys.stderr)
            return 1
        for role in ROLE_ORDER:
            if _role_available(role):
                sup.spawn(role, [role], env, root / "logs")
        if _role_available("worker"):
            for i in range(args.workers):
                wenv = dict(env, WORKER_ID=f"dev-worker-{i}", WORKER_POOL_NAME="shared")
                sup.spawn(f"worker-{i}", ["worker"], wenv, root / "logs")
        if _role_available("worker") and args.workers and not args.no_demo:
            _wait_workers(api_url, args.workers, 60)
        info = {
            "api_url": api_url,
            "gateway_url": gateway_url if _role_available("gateway") else None,
            "database_url": env["DATABASE_URL"],
            "nats_url": env["NATS_URL"],
            "roles": [n for n, _ in sup.children],
            "pid": os.getpid(),
        }
        stack_file.write_text(json.dumps(info, indent=2))
        print(
            f"NoETL dev stack ready\n  API:      {api_url}\n  gateway:  {info['gateway_url']}\n"
            f"  database: {env['DATABASE_URL']}\n  NATS:     {env['NATS_URL']}\n"
            f"  logs:     {root}/logs\n  (Ctrl-C stops everything)",
            flush=True,
        )
        if not args.no_demo:
            from handlers.roles.demo import run_demo

            ok = asyncio.run(run_demo(api_url))
            if args.exit_after_demo:
                return 0 if ok else 1
        while not stop_requested:
            dead = sup.dead()
            if dead:
                print(f"noetl dev: role(s) exited: {', '.join(dead)}; see {root}/logs", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        sup.stop()
        if nats:
            nats.stop()
        if pg:
            pg.stop()
        stack_file.unlink(missing_ok=True)


def _wait_workers(api_url: str, count: int, timeout: float) -> bool:
    """Wait until `count` workers are registered ready, so the demo's first command finds a consumer."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            url = f"{api_url}/api/worker/pools?kind=worker_pool&status=ready"
            with urllib.request.urlopen(url, timeout=2) as r:
                names = [i["name"] for i in json.loads(r.read())["items"]]
                if sum(1 for n in names if n.startswith("dev-worker-")) >= count:
                    return True
        except (urllib.error.URLError, OSError, ValueError, KeyError):
            pass
        time.sleep(0.2)
    return False


def _ensure_database(admin_dsn: str, name: str) -> str:
    """Create the application database on the embedded server when missing."""
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(go())
    return admin_dsn.rsplit("/", 1)[0] + "/" + name
