"""The one Settings object, built once at start-up from the documented env vars."""

from __future__ import annotations

from functools import cached_property
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from app.config._base import config_error
from app.config.database import DatabaseSettings
from app.config.gateway import GatewaySettings
from app.config.gateway_ingress import IngressSettings
from app.config.nats import NatsSettings, redact_url
from app.config.ops import OpsSettings
from app.config.secrets import ProviderSettings, SecretsSettings
from app.config.server import ServerSettings
from app.config.worker import WorkerSettings

__all__ = [
    "DatabaseSettings",
    "NatsSettings",
    "ProviderSettings",
    "SecretsSettings",
    "ServerSettings",
    "Settings",
    "WorkerSettings",
    "load_settings",
    "redact_url",
]


class Settings(BaseModel):
    """All settings groups; only the groups a role needs are validated eagerly."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=False)

    server: ServerSettings
    db: DatabaseSettings
    nats: NatsSettings
    secrets: SecretsSettings

    @cached_property
    def worker(self) -> WorkerSettings:
        return _build(WorkerSettings, "worker")

    @cached_property
    def gateway(self) -> GatewaySettings:
        return _build(GatewaySettings, "gateway")

    @cached_property
    def ops(self) -> OpsSettings:
        return _build(OpsSettings, "ops")

    @cached_property
    def gateway_ingress(self) -> IngressSettings:
        return _build(IngressSettings, "gateway_ingress")

    @cached_property
    def providers(self) -> ProviderSettings:
        return _build(ProviderSettings, "providers")


T = TypeVar("T")


def _build(cls: type[T], group: str) -> T:
    try:
        return cls()
    except ValidationError as exc:
        raise config_error(exc, group) from None


def load_settings() -> Settings:
    """Read every env var once; raise ConfigError naming the variable on bad input."""
    return Settings(
        server=_build(ServerSettings, "server"),
        db=_build(DatabaseSettings, "db"),
        nats=_build(NatsSettings, "nats"),
        secrets=_build(SecretsSettings, "secrets"),
    )
