"""Structured JSON logs; probe requests filtered; secrets never logged."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

_STD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}
PROBE_PATHS = frozenset({"/health", "/healthz", "/readyz", "/metrics", "/api/health"})


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the record's extra fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            "service": self.service,
        }
        for key, value in record.__dict__.items():
            if key not in _STD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class ProbeFilter(logging.Filter):
    """Drop access-log lines of health probes and metrics scrapes."""

    def filter(self, record: logging.LogRecord) -> bool:
        path = getattr(record, "path", None)
        return path not in PROBE_PATHS


def setup_logging(level: str = "info", service: str = "noetl-control-plane") -> None:
    """Configure the root logger once for a process."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(ProbeFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper() if level.upper() in logging._nameToLevel else "INFO")
    for noisy in ("asyncio", "nats", "aiohttp.access", "faststream"):
        logging.getLogger(noisy).setLevel(max(root.level, logging.WARNING))
