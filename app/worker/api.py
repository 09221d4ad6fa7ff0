"""The worker's HTTP client for the server API: one aiohttp session, tenacity retries, Retry-After."""

from __future__ import annotations

import json
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

log = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


class ApiError(Exception):
    """A non-2xx answer from the server: its status, decoded body and Retry-After (seconds)."""

    def __init__(self, status: int, body: Any, retry_after: float | None = None, url: str = "") -> None:
        self.status = status
        self.body = body
        self.retry_after = retry_after
        self.url = url
        super().__init__(f"HTTP {status} from {url}: {_short(body)}")

    @property
    def retryable(self) -> bool:
        """True for statuses the contract says to retry later (408/425/429/5xx) and transport errors."""
        return self.status in RETRYABLE_STATUSES or self.status == 0

    @property
    def code(self) -> str | None:
        """`detail.code` of the project's error body, when present."""
        if isinstance(self.body, Mapping):
            detail = self.body.get("detail")
            if isinstance(detail, Mapping) and isinstance(detail.get("code"), str):
                return str(detail["code"])
            if isinstance(self.body.get("code"), str):
                return str(self.body["code"])
        return None

    @property
    def message(self) -> str:
        """A readable message taken from the body."""
        if isinstance(self.body, Mapping):
            detail = self.body.get("detail")
            if isinstance(detail, Mapping) and detail.get("message"):
                return str(detail["message"])
            if isinstance(detail, str):
                return detail
            for key in ("message", "error"):
                if self.body.get(key):
                    return str(self.body[key])
        return _short(self.body)


def _short(body: Any) -> str:
    text = body if isinstance(body, str) else json.dumps(body, default=str)
    return text[:300]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    raw = headers.get("Retry-After")
    if not raw:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """Bounds of the retry loop: attempts, total time and the exponential backoff range."""

    max_attempts: int = 8
    max_total_seconds: float = 60.0
    initial: float = 0.1
    max_delay: float = 5.0


def build_ssl(cert: str = "", key: str = "", ca: str = "") -> ssl.SSLContext | None:
    """A client TLS context with an optional CA bundle and client certificate (mTLS), or None."""
    if not (cert or ca):
        return None
    ctx = ssl.create_default_context(cafile=ca or None)
    if cert:
        ctx.load_cert_chain(cert, key or None)
    return ctx


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, ApiError):
        log.info(
            "server call retried",
            extra={"status": exc.status, "url": exc.url, "attempt": state.attempt_number},
        )


class HttpServerApi:
    """ServerApi over aiohttp: relative paths go to `base_url`; absolute URLs are used as they are."""

    def __init__(
        self,
        base_url: str,
        session: aiohttp.ClientSession,
        *,
        policy: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.policy = policy or RetryPolicy()
        self.headers = dict(headers or {})

    def with_base(self, base_url: str) -> HttpServerApi:
        """The same session and policy aimed at another server URL (a notification's `server_url`)."""
        if not base_url or base_url.rstrip("/") == self.base_url:
            return self
        return HttpServerApi(base_url, self.session, policy=self.policy, headers=self.headers)

    def url(self, path: str) -> str:
        """Absolute URL for a path."""
        return path if path.startswith(("http://", "https://")) else f"{self.base_url}{path}"

    async def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        """GET with retries; the decoded body of a 2xx answer, else ApiError."""
        return await self.request("GET", path, params=params)

    async def post_json(self, path: str, body: Any) -> Any:
        """POST a JSON body with retries; the decoded body of a 2xx answer, else ApiError."""
        return await self.request("POST", path, body=body)

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        retry: bool = True,
        policy: RetryPolicy | None = None,
    ) -> Any:
        """One call with retries on 408/425/429/5xx and connection errors, honouring Retry-After."""
        pol = policy or self.policy
        if not retry:
            return await self._once(method, path, body, params, headers)
        backoff = wait_exponential_jitter(initial=pol.initial, max=pol.max_delay)

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, ApiError) and exc.retry_after is not None:
                return min(exc.retry_after, pol.max_delay * 2)
            return float(backoff(state))

        retrying = AsyncRetrying(
            retry=retry_if_exception(lambda e: isinstance(e, ApiError) and e.retryable),
            stop=stop_after_attempt(pol.max_attempts) | stop_after_delay(pol.max_total_seconds),
            wait=wait,
            reraise=True,
            before_sleep=_log_retry,
        )
        async for attempt in retrying:
            with attempt:
                return await self._once(method, path, body, params, headers)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        method: str,
        path: str,
        body: Any,
        params: Mapping[str, str] | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        url = self.url(path)
        hdrs = {**self.headers, **(headers or {})}
        try:
            async with self.session.request(
                method, url, json=body if method != "GET" else None, params=params, headers=hdrs
            ) as r:
                text = await r.text()
                try:
                    data: Any = json.loads(text) if text else None
                except ValueError:
                    data = text
                if 200 <= r.status < 300:
                    return data
                raise ApiError(r.status, data, _retry_after(r.headers), url)
        except (TimeoutError, aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            raise ApiError(0, f"{type(exc).__name__}: {exc}", None, url) from exc


def make_session(
    *, cert: str = "", key: str = "", ca: str = "", limit: int = 100, timeout: float = 60.0
) -> aiohttp.ClientSession:
    """The worker's one ClientSession (connection pool, optional mTLS)."""
    ssl_ctx = build_ssl(cert, key, ca)
    connector = aiohttp.TCPConnector(limit=limit, ssl=ssl_ctx if ssl_ctx is not None else True)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=10)
    )
