"""The official noetl CLI 5.3.2, installed from PyPI into a cached virtualenv."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI_VERSION = "5.3.2"
CACHE = Path(__file__).resolve().parents[3] / ".cache" / f"noetl-cli-{CLI_VERSION}"


@pytest.fixture(scope="session")
def noetl_cli() -> Path:
    exe = CACHE / "bin" / "noetl"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(CACHE)], check=True)
        res = subprocess.run(
            [str(CACHE / "bin" / "pip"), "install", "-q", f"noetl=={CLI_VERSION}"],
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise RuntimeError(f"could not install noetl=={CLI_VERSION} from PyPI: {res.stderr[-500:]}")
    return exe
