"""Helpers shared by the settings groups: env-var aliases and fail-fast error messages."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.errors import ConfigError


def env(*names: str, default: Any = None, **kw: Any) -> Any:
    """A settings field read from the first set env var among ``names``."""
    if "default_factory" in kw:
        return Field(validation_alias=AliasChoices(*names), **kw)
    return Field(default=default, validation_alias=AliasChoices(*names), **kw)


class Group(BaseSettings):
    """Base for one settings group; every field names its env vars explicitly."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", populate_by_name=True, frozen=False
    )


def config_error(exc: ValidationError, group: str) -> ConfigError:
    """Turn a pydantic error into a message that names each offending variable."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or group
        value = err.get("input")
        shown = "" if value is None or isinstance(value, dict) else f" (got {str(value)[:40]!r})"
        parts.append(f"{loc}: {err.get('msg')}{shown}")
    return ConfigError("invalid configuration: " + "; ".join(parts))
