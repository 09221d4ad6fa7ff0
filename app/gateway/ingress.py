"""Push ingress (gateway.md §11): listener config, verification before anything else, then dispatch."""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Mapping
from typing import Any, NoReturn
from urllib.parse import quote

import jwt

from app.config.gateway import GatewaySettings
from app.config.gateway_ingress import IngressSettings
from app.errors import ExternalServiceError, Unavailable
from app.gateway.backend import ServerClient, Upstream
from app.gateway.ingress_envelope import build_message, normalise_headers, resolve_directives, workload
from app.gateway.jwks import JwksCache
from app.gateway.metrics import GatewayMetrics

log = logging.getLogger(__name__)

CONFIG_TTL_SECS = 30.0  # positive and negative listener cache (§11.1 step 2)
SERVER_TIMEOUT_SECS = 30.0
GOOGLE_JWKS_TTL_SECS = 3600.0
OIDC_LEEWAY_SECS = 60
UNKNOWN = "_unknown"  # the metric label of unknown listeners (names never become label values)
DISABLED = "push-ingress not configured (NOETL_INTERNAL_API_TOKEN unset)"


class Reject(Exception):
    """A refused delivery: status, reason and an optional detail for non-verification rejects."""

    def __init__(self, status: int, reason: str, detail: str | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.detail = detail

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        out: dict[str, Any] = {"status": "rejected", "reason": self.reason}
        if self.detail is not None:
            out["detail"] = self.detail
        return out


def _eq(a: str, b: str) -> bool:
    # Bytes so non-ASCII input never raises; compare_digest is constant time for equal lengths.
    return hmac.compare_digest(a.encode("utf-8", "replace"), b.encode("utf-8", "replace"))


def verify_hmac(verify: Mapping[str, Any], headers: Mapping[str, str], body: bytes) -> None:
    """Hex HMAC-SHA256 of the raw body bytes against the signature header."""
    secret = verify.get("secret")
    if not isinstance(secret, str) or not secret:
        raise Reject(403, "misconfigured")
    presented = (headers.get(verify.get("header") or "x-signature") or "").strip()
    if not presented:
        raise Reject(401, "missing_signature")
    if presented[:7] in ("sha256=", "SHA256="):
        presented = presented[7:]
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not _eq(expected, presented.lower()):
        raise Reject(401, "bad_signature")


def verify_bearer(verify: Mapping[str, Any], headers: Mapping[str, str]) -> None:
    """The shared bearer secret in `verify.header` (default Authorization)."""
    secret = verify.get("secret")
    if not isinstance(secret, str) or not secret:
        raise Reject(403, "misconfigured")
    presented = headers.get(verify.get("header") or "authorization") or ""
    if presented.startswith(("Bearer ", "bearer ")):
        presented = presented[7:]
    presented = presented.strip()
    if not presented:
        raise Reject(401, "missing_token")
    if not _eq(secret, presented):
        raise Reject(401, "bad_token")


async def verify_oidc(
    verify: Mapping[str, Any], authorization: str | None, jwks: JwksCache, url: str
) -> None:
    """A Google-signed Pub/Sub push token: kid, RS256, aud, exp, then the service account (§11.3)."""
    audience, account = verify.get("audience"), verify.get("service_account")
    if not audience or not account:
        raise Reject(403, "misconfigured")
    if not jwks.keys:
        raise Reject(401, "oidc_no_jwks")
    token = authorization or ""
    if not token.startswith(("Bearer ", "bearer ")):
        raise Reject(401, "oidc_malformed")
    token = token[7:].strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise Reject(401, "oidc_malformed") from None
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise Reject(401, "oidc_malformed")
    try:
        key = await jwks.key(url, kid)
    except Unavailable:
        key = None
    if key is None:
        raise Reject(401, "oidc_unknown_kid")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=["RS256"],
            audience=str(audience),
            leeway=OIDC_LEEWAY_SECS,
            options={"require": ["exp", "aud"], "verify_iss": False},
        )
    except jwt.ExpiredSignatureError:
        raise Reject(401, "oidc_expired") from None
    except jwt.InvalidAudienceError:
        raise Reject(403, "oidc_wrong_audience") from None
    except jwt.InvalidSignatureError:
        raise Reject(401, "oidc_bad_signature") from None
    except (jwt.InvalidKeyError, TypeError, ValueError):
        raise Reject(403, "oidc_bad_key") from None
    except jwt.PyJWTError:
        raise Reject(401, "oidc_invalid") from None
    if claims.get("email") != account:
        raise Reject(403, "oidc_wrong_sa")
    if claims.get("email_verified") is not True:
        raise Reject(403, "oidc_unverified_email")


def _int64(value: Any) -> int | None:
    try:
        n = int(str(value))
    except ValueError:
        return None
    return n if -(2**63) <= n < 2**63 else None


class Ingress:
    """Listener config cache, Google JWKS and the verify → forward flow."""

    def __init__(
        self,
        settings: GatewaySettings,
        ingress: IngressSettings,
        server: ServerClient,
        metrics: GatewayMetrics,
    ) -> None:
        self.s = settings
        self.cfg = ingress
        self.server = server
        self.metrics = metrics
        self.google = JwksCache(GOOGLE_JWKS_TTL_SECS)
        self._configs: dict[str, tuple[float, dict[str, Any] | None]] = {}

    @property
    def enabled(self) -> bool:
        """Ingress runs only with an internal token (it authenticates the config lookup)."""
        return bool(self.s.internal_api_token.strip())

    async def config(self, listener: str) -> dict[str, Any]:
        """The listener's config from the 30 s cache or the server; Reject 404 / 502."""
        now = time.monotonic()
        hit = self._configs.get(listener)
        if hit is None or now - hit[0] >= CONFIG_TTL_SECS:
            try:
                hit = (now, await self._fetch(listener))
            except Reject as exc:
                # Whether the listener exists is unknown: its name must not become a label value.
                self.metrics.ingress_received.labels(subscription=UNKNOWN).inc()
                self.reject(UNKNOWN, exc)
            if len(self._configs) > 10000:
                self._configs.clear()  # bounded: arbitrary names cannot grow the cache forever
            self._configs[listener] = hit
        if hit[1] is None:
            self.metrics.ingress_received.labels(subscription=UNKNOWN).inc()
            self.reject(UNKNOWN, Reject(404, "unknown_listener", f"no push subscription for {listener!r}"))
        return hit[1]

    async def _fetch(self, listener: str) -> dict[str, Any] | None:
        path = "/api/internal/ingress/" + quote(listener, safe="-_.~")
        try:
            cfg = await self.server.call("GET", path, internal=True, timeout=SERVER_TIMEOUT_SECS)
        except Upstream as exc:
            if exc.status == 404:
                return None
            # Never the body: a listener config carries a decrypted secret.
            log.error("ingress config lookup failed", extra={"listener": listener, "status": exc.status})
            raise Reject(502, "config_error", f"listener config lookup failed: HTTP {exc.status}") from None
        except ExternalServiceError:
            log.error("ingress config lookup failed: server unreachable", extra={"listener": listener})
            raise Reject(502, "config_error", "listener config lookup failed: server unreachable") from None
        if (
            not isinstance(cfg, dict)
            or not isinstance(cfg.get("verify"), dict)
            or not isinstance(cfg.get("dispatch"), dict)
            or not cfg["dispatch"].get("playbook")
        ):
            raise Reject(502, "config_error", "listener config is incomplete")
        cfg.setdefault("source", "webhook")
        return cfg

    def reject(self, label: str, exc: Reject) -> NoReturn:
        """Count and raise a rejection."""
        self.metrics.ingress_rejected.labels(subscription=label, reason=exc.reason).inc()
        raise exc

    async def verify(
        self, listener: str, cfg: dict[str, Any], headers: Mapping[str, str], body: bytes
    ) -> None:
        """Run the listener's scheme over the raw request; Reject on any failure (§11.3)."""
        verify = cfg["verify"]
        kind = verify.get("type")
        try:
            if kind == "hmac_sha256":
                verify_hmac(verify, headers, body)
            elif kind == "bearer":
                verify_bearer(verify, headers)
            elif kind == "pubsub_oidc":
                url = self.cfg.google_jwks_url
                try:
                    await self.google.ensure(url)
                except Unavailable:
                    raise Reject(502, "jwks_error", "Google JWKS unavailable") from None
                await verify_oidc(verify, headers.get("authorization"), self.google, url)
            else:
                raise Reject(403, "unsupported")
        except Reject as exc:
            self.reject(listener, exc)

    async def dispatch(
        self, listener: str, cfg: dict[str, Any], raw_headers: list[tuple[str, str]], body: bytes
    ) -> str:
        """Envelope, directives, POST /api/execute; the new execution id (Reject 502 on failure)."""
        headers = normalise_headers(raw_headers)
        message = build_message(str(cfg["source"]), body, headers, cfg["verify"].get("header"))
        directives = resolve_directives(cfg.get("directives"), message.channel)
        request: dict[str, Any] = {
            "path": directives.playbook or cfg["dispatch"]["playbook"],
            "workload": workload(cfg, message, directives),
            "resource_kind": "playbook",
        }
        pool = directives.pool or cfg["dispatch"].get("execution_pool")
        if pool:
            request["execution_pool"] = pool
        if directives.trace:
            request["trace"] = directives.trace
        parent = _int64(cfg.get("subscription_id"))
        if parent is not None:
            request["parent_execution_id"] = parent
        try:
            reply = await self.server.call("POST", "/api/execute", request, timeout=SERVER_TIMEOUT_SECS)
        except (Upstream, ExternalServiceError) as exc:
            status = exc.status if isinstance(exc, Upstream) else "unreachable"
            self.reject(listener, Reject(502, "dispatch_error", f"execute failed: {status}"))
        eid = reply.get("execution_id") if isinstance(reply, dict) else None
        if eid is None or eid == "":
            self.reject(listener, Reject(502, "dispatch_error", "execute returned no execution_id"))
        self.metrics.ingress_dispatched.labels(subscription=listener).inc()
        if directives.applied or directives.trace:
            await self._audit(str(eid), message.message_id, directives, request)
        return str(eid)

    async def _audit(self, eid: str, message_id: str, directives: Any, request: dict[str, Any]) -> None:
        event = {
            "execution_id": eid,
            "step": "ingress",
            "event_type": "subscription.message.directives_applied",
            "status": "APPLIED",
            "context": {
                "message_id": message_id,
                "applied": directives.applied,
                "route_override": {"playbook": directives.playbook, "pool": directives.pool},
                "trace": directives.trace,
            },
            "worker_id": "gateway",
            "meta": {"emitter": "gateway_ingress"},
        }
        try:
            await self.server.call("POST", "/api/events", event, timeout=SERVER_TIMEOUT_SECS)
        except (Upstream, ExternalServiceError) as exc:
            log.warning("ingress directive audit event failed", extra={"error": str(exc)[:200]})
