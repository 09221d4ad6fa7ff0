"""Error classes of the secrets wallet; messages follow secrets.md exactly and never carry secret values."""

from __future__ import annotations

from app.errors import BadRequest, ExternalServiceError, Forbidden, NoetlError


class EncryptionError(NoetlError):
    """At-rest crypto or key-manager failure (HTTP 500, bare message)."""

    status = 500


class CipherNotConfigured(EncryptionError):
    """No master key in local mode: credential routes answer 500."""

    def __init__(self) -> None:
        super().__init__("NOETL_ENCRYPTION_KEY is not configured")


class SealError(BadRequest):
    """A sealed envelope could not be opened (400 server-side; terminal for the worker)."""


class SealingRefused(NoetlError):
    """Sealing to a low-order key was refused (500 seal_error unless caught earlier)."""

    status = 500


class SecretConfigError(NoetlError):
    """Provider misconfiguration, bad reference or terminal provider failure (HTTP 500)."""

    status = 500


class ProviderFetchError(ExternalServiceError):
    """Retryable provider failure (HTTP 502)."""


class ResidencyViolation(Forbidden):
    """A strict residency denial (403); the message names regions, never the value."""

    def __init__(
        self, credential: str, entry_region: str, server_region: str, *, no_broker_fallback: bool = False
    ) -> None:
        super().__init__(
            f"Residency violation: credential '{credential}' is region-locked to '{entry_region}'; "
            f"this server is in '{server_region}'"
        )
        self.credential = credential
        self.entry_region = entry_region
        self.server_region = server_region
        self.no_broker_fallback = no_broker_fallback


class BrokerUnreachable(ExternalServiceError):
    """Cross-region broker transport failure, non-2xx (except 403) or undecodable body (502)."""

    def __init__(self, url: str, cause: str) -> None:
        super().__init__(f"Cross-region broker {url} unreachable: {cause}")
        self.url = url


class BrokerDenied(Forbidden):
    """The broker answered 403; its message is propagated."""


class AuditWriteFailed(NoetlError):
    """Strict audit mode: the audit row could not be written, so the value is withheld (500)."""

    status = 500
