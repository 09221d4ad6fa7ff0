"""Shared fakes for resolver/registry tests."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry

from app.secrets.metrics import SecretsMetrics
from app.secrets.providers.base import SecretRef, SecretValue


def sample(reg: CollectorRegistry, name: str, **labels: str) -> float:
    """A metric sample value (0.0 when absent)."""
    v = reg.get_sample_value(name, labels)
    return 0.0 if v is None else v


def metrics() -> tuple[SecretsMetrics, CollectorRegistry]:
    reg = CollectorRegistry()
    return SecretsMetrics(reg), reg


class FakeProvider:
    """Serves configured values; counts fetches; can block on a gate or fail."""

    provider_id = "fake"

    def __init__(
        self,
        values: dict[str, str] | None = None,
        expires: dict[str, datetime] | None = None,
        fail: set[str] | None = None,
    ) -> None:
        self.values = values or {}
        self.expires = expires or {}
        self.fail = fail or set()
        self.calls: list[SecretRef] = []
        self.gate: asyncio.Event | None = None
        self.closed = False

    async def fetch(self, ref: SecretRef) -> SecretValue:
        self.calls.append(ref)
        if self.gate is not None:
            await self.gate.wait()
        if ref.name in self.fail or ref.name not in self.values:
            from app.secrets.errors import ProviderFetchError

            raise ProviderFetchError(f"fake: cannot fetch '{ref.name}'")
        return SecretValue(self.values[ref.name], "1", self.expires.get(ref.name))

    async def close(self) -> None:
        self.closed = True


def builder_for(provider: FakeProvider, builds: list[tuple[str, str]] | None = None) -> Any:
    def build(settings: Any, region: str) -> FakeProvider:
        if builds is not None:
            builds.append(("fake", region))
        return provider

    return build


async def wait_until(pred: Any, timeout: float = 5.0) -> None:
    """Poll ``pred`` until true or the deadline passes (no fixed sleeps)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        if loop.time() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(0)
