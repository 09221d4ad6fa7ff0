"""The gateway's use cases (gateway.md §4–§10): login, authorization, execution, callbacks, the event feed."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from nats.aio.msg import Msg

from app.config.gateway import GatewaySettings
from app.config.gateway_ingress import IngressSettings
from app.config.nats import NatsSettings
from app.errors import ExternalServiceError, Forbidden, NoetlError, NotFound, Unauthorized, Unavailable
from app.gateway.auth0 import Auth0Verifier
from app.gateway.backend import ServerClient, Upstream
from app.gateway.frames import notification, state_from_event, synthetic_state
from app.gateway.ingress import Ingress
from app.gateway.kv import GatewayNats, KvError
from app.gateway.metrics import GatewayMetrics
from app.gateway.ratelimit import RateLimiter
from app.gateway.registry import Frame, Registry
from app.gateway.requests import CLIENT_ID_RE, RequestStore
from app.gateway.sessions import BYPASS_USER, Session, SessionResolver, parse_user, token_hash

log = logging.getLogger(__name__)

ACCESS_CACHE_SECS = 30.0


class GraphQLFailure(Exception):
    """An error surfaced to GraphQL with extensions.code."""

    def __init__(self, message: str, code: str = "INTERNAL") -> None:
        super().__init__(message[:500])
        self.code = code


def _sha(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass
class Gateway:
    """Everything the gateway routes need; built once per process."""

    settings: GatewaySettings
    nats_settings: NatsSettings
    http: aiohttp.ClientSession
    ingress_settings: IngressSettings = field(default_factory=IngressSettings)
    server: ServerClient = field(init=False)
    nats: GatewayNats = field(init=False)
    metrics: GatewayMetrics = field(init=False)
    sessions: SessionResolver = field(init=False)
    verifier: Auth0Verifier = field(init=False)
    registry: Registry = field(default_factory=Registry)
    store: RequestStore = field(init=False)
    login_limiter: RateLimiter = field(init=False)
    auth_limiter: RateLimiter = field(init=False)
    ingress_limiter: RateLimiter = field(init=False)
    ingress: Ingress = field(init=False)
    _access: dict[tuple[str, str, str], tuple[float, bool]] = field(default_factory=dict)
    _index_task: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        s = self.settings
        self.server = ServerClient(s, self.http)
        self.nats = GatewayNats(self.nats_settings, s)
        self.verifier = Auth0Verifier(s)
        self.metrics = GatewayMetrics(s.auth_bypass, self.verifier.enforced)
        self.sessions = SessionResolver(self.server, self.nats, s.invalid_session_cache_secs, self.metrics)
        self.store = RequestStore(self.nats, float(s.request_ttl_secs))
        self.login_limiter = RateLimiter(s.login_rate_per_minute)
        self.auth_limiter = RateLimiter(s.auth_rate_per_minute)
        self.ingress_limiter = RateLimiter(s.ingress_rate_per_minute)
        self.ingress = Ingress(s, self.ingress_settings, self.server, self.metrics)
        self.nats.subscribe(s.updates_subject_prefix + ">", self.on_mirror)
        self.nats.subscribe(s.callback_subject_prefix + ".>", self.on_callback_msg)

    async def start(self) -> None:
        """Connect NATS (degraded when unreachable) and log insecure modes."""
        if self.settings.verify_signature != "enforce":
            log.warning(
                "Auth0 signature verification is NOT enforced (%s): development only",
                self.settings.verify_signature,
            )
        if self.settings.auth_bypass:
            log.warning("GATEWAY_AUTH_BYPASS is on: authentication is DISABLED (development only)")
        if not self.settings.auth0_domains or not self.settings.auth0_audiences:
            log.error("Auth0 domain/audience not configured: /api/auth/login answers 503")
        await self.nats.start()
        self._index_task = asyncio.create_task(self.store.watch_index(), name="gateway-request-index")

    async def close(self) -> None:
        """Close every stream and NATS."""
        for conn in list(self.registry.by_client.values()):
            conn.close()
        self.store.stop()
        if self._index_task is not None:
            self._index_task.cancel()
            with contextlib.suppress(BaseException):
                await self._index_task
        await self.nats.close()

    # --- authentication ---------------------------------------------------------------------------

    async def login(self, body: dict[str, Any], client_ip: str, user_agent: str | None) -> dict[str, Any]:
        """Verify the Auth0 token, open a server session, cache it; the §4.2 response."""
        token = body["auth0_token"]
        domain = self.verifier.resolve_domain(body.get("auth0_domain"))
        try:
            await self.verifier.verify(token, domain)
        except Unauthorized:
            self.metrics.auth0_verify.labels(result="failed").inc()
            self.metrics.login.labels(outcome="not_authenticated").inc()
            raise
        self.metrics.auth0_verify.labels(result="ok").inc()
        hours = body.get("session_duration_hours", 8)
        request = {
            "auth0_token": token,
            "auth0_domain": domain,
            "client_ip": client_ip,
            "session_duration_hours": hours,
            "user_agent": body.get("client_user_agent") or user_agent,
            "credential": "pg_auth",
        }
        try:
            reply = await self.server.login(request)
        except Upstream as exc:
            raise ExternalServiceError(f"Login failed: upstream HTTP {exc.status}") from None
        except ExternalServiceError:
            raise ExternalServiceError("Login failed: server unreachable") from None
        envelope: dict[str, Any] = reply if isinstance(reply, dict) else {}
        data: dict[str, Any] = envelope["data"] if isinstance(envelope.get("data"), dict) else {}
        if envelope.get("status") != "success":
            self.metrics.login.labels(outcome="not_authenticated").inc()
            raise Unauthorized(_login_message(data, "Invalid credentials"))
        if not data.get("status"):
            raise NoetlError("Login callback missing status field")
        if data["status"] != "authenticated":
            raise Unauthorized(_login_message(data, f"Authentication status: {data['status']}"))
        session_token = data.get("session_token")
        if not isinstance(session_token, str) or not session_token:
            raise NoetlError("No session token returned")
        if not isinstance(data.get("user"), dict):
            raise NoetlError("No user data returned")
        if not data["user"].get("email"):
            raise NoetlError("Invalid email")
        user = parse_user(data["user"])
        if not user["user_id"]:
            raise NoetlError("Invalid user_id")
        expires = data.get("expires_at")
        if not isinstance(expires, str) or not expires:
            raise NoetlError("Invalid expires_at")
        await self.sessions.cache_put(session_token, user, expires, "after_login")
        self.metrics.login.labels(outcome="succeeded").inc()
        return {
            "status": "authenticated",
            "session_token": session_token,
            "user": user,
            "expires_at": expires,
            "message": "Authentication successful",
        }

    async def resolve(self, token: str | None) -> Session | None:
        """The session of a token (bypass user under GATEWAY_AUTH_BYPASS)."""
        if self.settings.auth_bypass:
            return Session(token_hash(token or ""), dict(BYPASS_USER), None)
        if not token:
            return None
        return await self.sessions.resolve(token)

    # --- authorization ----------------------------------------------------------------------------

    async def check_access(self, token: str, path: str, action: str) -> dict[str, Any]:
        """The server's decision in the §4.4 response shape (fail closed)."""
        try:
            reply = await self.server.check_access(token, path, action)
        except Upstream as exc:
            self.metrics.authz.labels(outcome="backend_error").inc()
            raise ExternalServiceError(f"Access check failed: upstream HTTP {exc.status}") from None
        envelope: dict[str, Any] = reply if isinstance(reply, dict) else {}
        data: dict[str, Any] = envelope["data"] if isinstance(envelope.get("data"), dict) else {}
        if envelope.get("status") != "success":
            self.metrics.authz.labels(outcome="backend_error").inc()
            raise Unavailable(str(data.get("message") or "Access check backend unavailable"))
        allowed = data.get("allowed") is True
        self.metrics.authz.labels(outcome="allowed" if allowed else "denied").inc()
        user = data.get("user")
        return {
            "allowed": allowed,
            "user": parse_user(user) if isinstance(user, dict) else None,
            "playbook_path": path,
            "permission_type": action,
            "message": str(data.get("message") or "Access check completed"),
        }

    async def authorize(self, token: str, path: str, action: str) -> bool:
        """May this session do `action` on `path`? Cached per (session, path, action) for 30 s."""
        if self.settings.auth_bypass:
            return True
        key = (token_hash(token), path, action)
        now = time.monotonic()
        hit = self._access.get(key)
        if hit is not None and now - hit[0] < ACCESS_CACHE_SECS:
            return hit[1]
        allowed = bool((await self.check_access(token, path, action))["allowed"])
        if len(self._access) > 10000:
            self._access.clear()
        self._access[key] = (now, allowed)
        return allowed

    # --- executions -------------------------------------------------------------------------------

    async def execute_playbook(
        self,
        session: Session,
        token: str,
        name: str,
        variables: Any,
        resource_kind: str = "playbook",
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """GraphQL executePlaybook (§8.2)."""
        if not await self.authorize(token, name, "execute"):
            raise GraphQLFailure(f"Access denied: execute on {name}", "FORBIDDEN")
        workload = {} if variables is None else variables
        request_id = callback_token = None
        if client_id is not None:
            if not CLIENT_ID_RE.match(client_id):
                raise GraphQLFailure("invalid clientId", "BAD_USER_INPUT")
            if not self.nats.ready:
                raise GraphQLFailure("Async result delivery unavailable", "UNAVAILABLE")
            if not isinstance(workload, dict):
                raise GraphQLFailure("variables must be an object when clientId is given", "BAD_USER_INPUT")
            await self._claim_client(client_id, session.token_hash)
            request_id = str(uuid.uuid4())
            callback_token = secrets.token_hex(32)
            workload = {
                **workload,
                "request_id": request_id,
                "gateway_url": self.settings.public_url,
                "callback_token": callback_token,
            }
        body = {"path": name, "workload": workload, "resource_kind": resource_kind}
        try:
            reply = await self.server.call("POST", "/api/execute", body)
        except Upstream as exc:
            raise GraphQLFailure(
                f"Execute catalog entry failed (resource_kind={resource_kind}): {exc.status} - {exc.message}",
                "UPSTREAM",
            ) from None
        except ExternalServiceError as exc:
            raise GraphQLFailure(f"Execute catalog entry failed: {exc.message}", "UPSTREAM") from None
        eid = str(reply.get("execution_id")) if isinstance(reply, dict) else ""
        if request_id is not None and client_id is not None and callback_token is not None:
            entry = {
                "client_id": client_id,
                "session_hash": session.token_hash,
                "execution_id": eid,
                "playbook_path": name,
                "callback_token_sha256": _sha(callback_token),
                "created_at": int(time.time()),
            }
            try:
                await self.store.add(request_id, entry)
            except KvError:
                raise GraphQLFailure(
                    f"execution {eid} started but its result cannot be routed (request store unavailable)",
                    "UNAVAILABLE",
                ) from None
        return {
            "id": eid,
            "executionId": eid,
            "requestId": request_id,
            "name": reply.get("name") or name,
            "path": name,
            "status": reply.get("status"),
            "textOutput": None,
        }

    async def _claim_client(self, client_id: str, session_hash: str) -> None:
        try:
            owner = await self.store.client_owner(client_id)
            if owner is None:
                await self.store.bind_client(client_id, session_hash)
        except KvError:
            raise GraphQLFailure("Async result delivery unavailable", "UNAVAILABLE") from None
        if owner is not None and owner != session_hash:
            raise GraphQLFailure("clientId belongs to another session", "FORBIDDEN")

    async def execution(self, token: str, execution_id: str) -> dict[str, Any] | None:
        """GraphQL execution(id) (§8.3)."""
        try:
            if not -(2**63) <= int(execution_id) < 2**63:
                raise ValueError
        except ValueError:
            raise GraphQLFailure(
                f'execution id "{execution_id}" is not a valid i64', "BAD_USER_INPUT"
            ) from None
        try:
            detail = await self.server.call("GET", f"/api/executions/{execution_id}?include_events=false")
            status = await self.server.call("GET", f"/api/executions/{execution_id}/status")
        except Upstream as exc:
            if exc.status == 404:
                return None
            raise GraphQLFailure(
                f"Execution lookup failed: {exc.status} - {exc.message}", "UPSTREAM"
            ) from None
        path = detail.get("path") or detail.get("catalog_path") or status.get("path")
        if not await self.authorize(token, str(path or ""), "view"):
            raise GraphQLFailure(f"Access denied: view on {path}", "FORBIDDEN")
        return {
            "id": execution_id,
            "executionId": execution_id,
            "requestId": None,
            "name": path,
            "path": path,
            "status": str(status.get("status") or detail.get("status") or "").upper() or None,
            "textOutput": None,
            "result": detail.get("result"),
            "error": status.get("error") or detail.get("error"),
            "startTime": detail.get("start_time"),
            "endTime": detail.get("end_time"),
        }

    # --- callbacks (§9) ---------------------------------------------------------------------------

    async def authenticate_callback(
        self, authorization: str | None, entry: dict[str, Any], body_eid: Any
    ) -> None:
        """Per-request callback token or the internal token, constant time, bound to the execution."""
        if not authorization or not authorization.startswith(("Bearer ", "bearer ")):
            self.metrics.callback_rejected.labels(reason="missing").inc()
            raise Unauthorized("missing callback credentials")
        presented = authorization[7:].strip()
        ok = hmac.compare_digest(_sha(presented), str(entry.get("callback_token_sha256") or ""))
        internal = self.settings.internal_api_token.strip()
        if not ok and internal:
            ok = hmac.compare_digest(_sha(presented), _sha(internal))
        if not ok:
            self.metrics.callback_rejected.labels(reason="forbidden").inc()
            raise Forbidden("invalid callback credentials")
        stored = entry.get("execution_id")
        if body_eid is not None and stored and str(body_eid) != str(stored):
            self.metrics.callback_rejected.labels(reason="execution_mismatch").inc()
            raise Forbidden("execution_id does not match request")

    async def pending(self, request_id: str) -> dict[str, Any]:
        """The pending request, or 404 / 503 when NATS is down."""
        if not self.nats.ready:
            raise Unavailable("request store unavailable")
        entry = await self.store.get(request_id)
        if entry is None:
            raise NotFound("Request not found")
        return entry

    def result_frames(self, request_id: str, entry: dict[str, Any], body: dict[str, Any]) -> list[Frame]:
        """The synthetic state frame then the result frame (§9.3, §10.4)."""
        eid = str(body.get("execution_id") or entry.get("execution_id") or "") or None
        error = body.get("error")
        failed = body.get("status") == "FAILED" or isinstance(error, dict)
        if failed:
            err = error if isinstance(error, dict) else {}
            params: dict[str, Any] = {
                "requestId": request_id,
                "executionId": eid,
                "status": "FAILED",
                "error": {
                    "code": int(err.get("code", -32000))
                    if isinstance(err.get("code", -32000), int)
                    else -32000,
                    "message": str(err.get("message") or "playbook failed"),
                    "data": err.get("data"),
                },
            }
        else:
            params = {
                "requestId": request_id,
                "executionId": eid,
                "status": body.get("status") or "COMPLETED",
                "data": body.get("data"),
            }
        return [
            Frame("playbook/state", notification("playbook/state", synthetic_state(eid, failed))),
            Frame("playbook/result", notification("playbook/result", params)),
        ]

    async def deliver(self, client_id: str, frames: list[Frame], kind: str, request_id: str) -> bool:
        """Deliver locally or through another replica (§9.5)."""
        if client_id in self.registry.by_client:
            return all(self.registry.send(client_id, f) for f in frames)
        payload = {
            "kind": kind,
            "request_id": request_id,
            "client_id": client_id,
            "frames": [{"event": f.event, "data": f.data} for f in frames],
        }
        reply = await self.nats.request(
            f"{self.settings.callback_subject_prefix}.{request_id}", json.dumps(payload).encode()
        )
        try:
            return bool(reply and json.loads(reply).get("delivered") is True)
        except ValueError:
            return False

    async def on_callback_msg(self, msg: Msg) -> None:
        """Cross-replica delivery: answer only when the client is connected here."""
        try:
            payload = json.loads(msg.data)
            client_id = str(payload["client_id"])
            frames = [Frame(f["event"], f["data"]) for f in payload["frames"]]
        except (ValueError, KeyError, TypeError):
            return
        if client_id in self.registry.by_client and msg.reply:
            ok = all(self.registry.send(client_id, f) for f in frames)
            await msg.respond(json.dumps({"delivered": ok}).encode())

    # --- event mirror (§10.5) ---------------------------------------------------------------------

    async def on_mirror(self, msg: Msg) -> None:
        """Route a forwarded lifecycle event to the clients of its pending requests."""
        try:
            envelope = json.loads(msg.data)
        except ValueError:
            return
        params = state_from_event(envelope, msg.subject, self.settings.updates_subject_prefix)
        if params is None or not self.registry.by_client:
            return
        event_id = envelope.get("event_id")
        frame_id = str(event_id) if event_id is not None else None
        # From the in-memory index (one long-lived watch), not a K/V listing per forwarded event.
        for client in await self.store.clients_of(params["execution_id"]):
            if client in self.registry.by_client:
                self.registry.send(
                    client, Frame("playbook/state", notification("playbook/state", params), frame_id)
                )


def _login_message(data: dict[str, Any], fallback: str) -> str:
    parts = [str(data.get(k)) for k in ("message", "error") if data.get(k)]
    return ": ".join(parts) if parts else fallback
