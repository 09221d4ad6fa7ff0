"""Gateway metrics (gateway.md §13.3) on a private registry; pinned label values start at 0."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

VERSION = "0.1.0"


class GatewayMetrics:
    """Every gateway metric; one instance per process (tests get fresh ones)."""

    def __init__(self, bypass: bool, enforced: bool) -> None:
        r = self.registry = CollectorRegistry()
        Gauge("noetl_gateway_build_info", "Gateway build", ["version"], registry=r).labels(
            version=VERSION
        ).set(1)
        g = Gauge("noetl_gateway_auth_bypass_enabled", "Auth bypass state", ["mode"], registry=r)
        g.labels(mode="bypass").set(1 if bypass else 0)
        g.labels(mode="enforced").set(0 if bypass else 1)
        Gauge("noetl_gateway_auth0_signature_enforced", "Auth0 signatures enforced", registry=r).set(
            1 if enforced else 0
        )
        self.auth0_verify = self._c("noetl_gateway_auth0_verify_total", "result", ["ok", "failed"])
        self.login = self._c(
            "noetl_gateway_login_total", "outcome", ["succeeded", "callback_failed", "not_authenticated"]
        )
        self.session_check = self._c(
            "noetl_gateway_session_check_total",
            "outcome",
            ["ok", "missing_token", "invalid_or_expired", "validation_error", "bypass"],
        )
        self.authz = self._c("noetl_gateway_authz_total", "outcome", ["allowed", "denied", "backend_error"])
        self.session_cache_failed = self._c(
            "noetl_gateway_session_cache_failed_total", "stage", ["after_login", "after_api_validate"]
        )
        self.callback_undelivered = Counter(
            "noetl_gateway_callback_undelivered_total", "Callbacks with no connected client", registry=r
        )
        self.callback_rejected = self._c(
            "noetl_gateway_callback_rejected_total", "reason", ["missing", "forbidden", "execution_mismatch"]
        )
        self.rate_limited = self._c(
            "noetl_gateway_rate_limited_total", "route", ["login", "auth", "ingress", "sse"]
        )
        self.feed_reconnect = self._c(
            "noetl_gateway_event_feed_reconnect_total", "reason", ["ended", "error"]
        )
        self.ingress_received = Counter(
            "noetl_ingress_received_total", "Ingress deliveries", ["subscription"], registry=r
        )
        self.ingress_rejected = Counter(
            "noetl_ingress_rejected_total", "Ingress rejections", ["subscription", "reason"], registry=r
        )
        self.ingress_dispatched = Counter(
            "noetl_ingress_dispatched_total", "Ingress dispatches", ["subscription"], registry=r
        )

    def _c(self, name: str, label: str, values: list[str]) -> Counter:
        c = Counter(name, name.replace("_", " "), [label], registry=self.registry)
        for v in values:
            c.labels(**{label: v})
        return c
