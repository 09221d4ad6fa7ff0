"""The project's error hierarchy: one root class, a retryable flag, one HTTP status per class."""

from __future__ import annotations

from typing import Any


class NoetlError(Exception):
    """Root of every error the application raises on purpose."""

    status: int = 500
    code: str | None = None
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        detail: Any = None,
        retry_after: float | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.detail = detail
        self.retry_after = retry_after
        self.extra = extra or {}


class BadRequest(NoetlError):
    status = 400


class ValidationFailed(NoetlError):
    """The request body has the wrong shape or a value out of range (422)."""

    status = 422


class Unauthorized(NoetlError):
    status = 401


class Forbidden(NoetlError):
    status = 403


class NotFound(NoetlError):
    status = 404


class Conflict(NoetlError):
    status = 409


class PayloadTooLarge(NoetlError):
    status = 413


class UnsupportedMediaType(NoetlError):
    status = 415


class ExternalServiceError(NoetlError):
    status = 502
    retryable = True


class Unavailable(NoetlError):
    status = 503
    retryable = True


class InvalidPlaybook(ValidationFailed):
    """A playbook failed parsing or validation; carries structured problems."""

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message, detail=problems)
        self.problems = problems or []


class ConfigError(Exception):
    """Start-up configuration is invalid; the message names the variable."""
