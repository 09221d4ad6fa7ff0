"""The worker process: register, heartbeat, pull notifications, claim, run, drain, deregister."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import socket
from collections.abc import Mapping
from contextlib import AsyncExitStack
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from faststream import AckPolicy
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy

from app.config import Settings
from app.ids import SnowflakeGenerator, node_id_from_name
from app.worker.api import RETRYABLE_STATUSES, ApiError, HttpServerApi, RetryPolicy, make_session
from app.worker.creds import credentials_for
from app.worker.executor import CommandExecutor, ExecutorConfig
from app.worker.pypool import PythonPool
from app.worker.tools import python as python_tool
from app.worker.tools.base import Credentials

log = logging.getLogger(__name__)

CLAIM_NOT_VISIBLE_MAX_DELIVERIES = 5


class WorkerRuntime:
    """One worker process (server-contract §12.6-§12.7, §9; playbook-dsl §5.4)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ws = settings.worker
        node = self.ws.snowflake_node_id
        self.ids = SnowflakeGenerator(
            node if node is not None else node_id_from_name(self.ws.worker_id),
            **({"epoch_ms": self.ws.snowflake_epoch_ms} if self.ws.snowflake_epoch_ms else {}),
        )
        self.private_key: X25519PrivateKey | None = (
            X25519PrivateKey.generate() if self.ws.sealed_credentials else None
        )
        self.slots = asyncio.Semaphore(self.ws.max_concurrent)
        self.inflight: set[asyncio.Task[Any]] = set()
        self.stopping = False
        self.outcomes: dict[str, int] = {}
        self.api: HttpServerApi | None = None
        self.executor = CommandExecutor(
            ExecutorConfig(
                worker_id=self.ws.worker_id,
                command_timeout_seconds=self.ws.command_timeout_seconds,
                cancel_poll_seconds=self.ws.cancel_poll_seconds,
                nats_url=settings.nats.url,
            ),
            self.ids,
            self._credentials,
        )

    def _credentials(self, api: HttpServerApi, execution_id: int) -> Credentials:
        return credentials_for(
            api,
            execution_id=execution_id,
            worker_id=self.ws.worker_id,
            env_allowlist=self.ws.env_allowlist,
            private_key=self.private_key,
            sealed=self.ws.sealed_credentials,
        )

    @property
    def public_key_b64(self) -> str | None:
        """The worker's X25519 public key (base64) for sealed credential delivery, when enabled."""
        if self.private_key is None:
            return None
        raw = self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def registration(self) -> dict[str, Any]:
        """The register body (server-contract §9.2)."""
        runtime: dict[str, Any] = {"kind": "python", "pid": os.getpid(), "hostname": socket.gethostname()}
        if self.public_key_b64:
            runtime["worker_public_key"] = self.public_key_b64
        return {
            "name": self.ws.worker_id,
            "kind": "worker_pool",
            "runtime": runtime,
            "status": "ready",
            "capacity": self.ws.max_concurrent,
            "labels": {"pool_name": self.ws.pool_name, "filter_subject": self.ws.filter_subject},
        }

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None = None) -> None:
        """Serve until `stop` is set, then stop taking work, drain in-flight commands and deregister."""
        async with AsyncExitStack() as stack:
            session = make_session(
                cert=self.ws.tls_client_cert,
                key=self.ws.tls_client_key,
                ca=self.ws.tls_ca,
                limit=max(20, self.ws.max_concurrent * 4),
            )
            stack.push_async_callback(session.close)
            self.api = api = HttpServerApi(self.ws.server_url, session)
            pool = PythonPool(size=self.ws.max_concurrent, memory_mb=self.ws.python_memory_limit_mb)
            python_tool.configure(pool)
            stack.push_async_callback(python_tool.shutdown)
            await pool.warm()
            # the durable consumer exists before the row says `ready`, so whoever waits for ready
            # workers (dev, tests) cannot publish into a gap that deliver-policy NEW would skip
            broker = self._broker()
            await broker.start()
            stack.push_async_callback(_quiet_stop, broker)
            await api.request(
                "POST",
                "/api/worker/pool/register",
                body=self.registration(),
                policy=RetryPolicy(max_attempts=30, max_total_seconds=60.0),
            )
            log.info("worker registered", extra={"worker_id": self.ws.worker_id, "pool": self.ws.pool_name})
            heartbeat = asyncio.create_task(self._heartbeat_loop(api))
            if ready is not None:
                ready.set()
            try:
                await stop.wait()
            finally:
                self.stopping = True
                log.info("worker stopping: draining", extra={"in_flight": len(self.inflight)})
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(broker.stop(), 10)
                await self._drain()
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await heartbeat
                with contextlib.suppress(ApiError):
                    await api.request(
                        "POST",
                        "/api/worker/pool/deregister",
                        body={"name": self.ws.worker_id, "component_type": "worker_pool"},
                        policy=RetryPolicy(max_attempts=3, max_total_seconds=5.0),
                    )
                log.info("worker deregistered", extra={"worker_id": self.ws.worker_id})

    async def _drain(self) -> None:
        if self.inflight:
            _, pending = await asyncio.wait(set(self.inflight), timeout=self.ws.drain_timeout_seconds)
            for task in pending:  # left to the lease and the reaper
                task.cancel()
            if pending:
                log.warning("drain deadline passed; commands abandoned", extra={"count": len(pending)})
                await asyncio.wait(pending, timeout=5)

    async def _heartbeat_loop(self, api: HttpServerApi) -> None:
        body = {"name": self.ws.worker_id, "kind": "worker_pool", "registration": self.registration()}
        while True:
            await asyncio.sleep(self.ws.heartbeat_interval)
            try:
                await api.request(
                    "POST",
                    "/api/worker/pool/heartbeat",
                    body=body,
                    policy=RetryPolicy(max_attempts=3, max_total_seconds=self.ws.heartbeat_interval),
                )
            except ApiError as exc:
                log.warning("heartbeat failed", extra={"status": exc.status})

    def _broker(self) -> NatsBroker:
        broker = NatsBroker(**self.settings.nats.connect_options())  # type: ignore[arg-type]
        ws = self.ws
        config = ConsumerConfig(
            durable_name=ws.durable_name,
            ack_policy=JsAckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.NEW,
            ack_wait=ws.ack_wait_seconds,
            max_deliver=ws.max_deliver,
            max_ack_pending=ws.max_ack_pending,
            filter_subject=ws.filter_subject,
        )

        @broker.subscriber(
            ws.filter_subject,
            stream=JStream(name=self.settings.nats.stream, declare=False),
            durable=ws.durable_name,
            config=config,
            pull_sub=PullSub(batch_size=1, timeout=2.0),
            ack_policy=AckPolicy.MANUAL,
        )
        async def on_command(body: Any, msg: NatsMessage) -> None:
            await self.on_notification(body, msg)

        return broker

    async def on_notification(self, body: Any, msg: NatsMessage) -> None:
        """Decode, pool check, claim, then ack/nak per the contract table (§12.7)."""
        await self.slots.acquire()
        try:
            note = await self._admit(body, msg)
        except BaseException:
            self.slots.release()
            raise
        if note is None:
            self.slots.release()
            return
        # shielded: a claim the server granted must reach a running task even if the broker cancels
        # this handler at shutdown; the slot is released here unless a task took it over
        inner = asyncio.ensure_future(self._claim_and_start(note, int(note["event_id"]), msg))
        try:
            started = await asyncio.shield(inner)
        except asyncio.CancelledError:
            inner.add_done_callback(self._release_unless_started)
            raise
        except Exception:
            self.slots.release()
            raise
        if not started:
            self.slots.release()

    async def _admit(self, body: Any, msg: NatsMessage) -> dict[str, Any] | None:
        """The notification when this worker should claim it; otherwise acked/nacked here and None."""
        if self.stopping:
            await msg.nack(delay=0)
            return None
        try:
            note = json.loads(body) if isinstance(body, bytes | str) else body
            int(note["event_id"])
        except (ValueError, TypeError, KeyError):
            log.warning("undecodable notification dropped")
            await msg.ack()
            return None
        own, theirs = self.ws.pool_segment, str(note.get("execution_pool") or "")
        if own and theirs and own != theirs:
            await msg.ack()
            return None
        return dict(note)

    def _release_unless_started(self, inner: asyncio.Future[bool]) -> None:
        if inner.cancelled() or inner.exception() is not None or not inner.result():
            self.slots.release()

    async def _claim_and_start(self, note: Mapping[str, Any], event_id: int, msg: NatsMessage) -> bool:
        assert self.api is not None
        api = self.api.with_base(str(note.get("server_url") or ""))
        try:
            claim = await api.request(
                "POST",
                f"/api/commands/{event_id}/claim",
                body={"worker_id": self.ws.worker_id},
                retry=False,
            )
        except ApiError as exc:
            await self._on_claim_error(exc, msg, event_id)
            return False
        task = asyncio.create_task(self._execute(api, claim))
        self.inflight.add(task)
        with contextlib.suppress(Exception):
            await msg.ack()
        return True

    async def _on_claim_error(self, exc: ApiError, msg: NatsMessage, event_id: int) -> None:
        if exc.status == 409:
            log.debug("claim refused", extra={"event_id": event_id, "code": exc.code})
            await msg.ack()
        elif exc.status in RETRYABLE_STATUSES or exc.status == 0:
            await msg.nack(delay=exc.retry_after if exc.retry_after is not None else 1.0)
        elif exc.status == 404:
            delivered = 1
            with contextlib.suppress(Exception):
                delivered = int(msg.raw_message.metadata.num_delivered)
            if delivered < CLAIM_NOT_VISIBLE_MAX_DELIVERIES:
                await msg.nack(delay=1.0)
            else:
                await msg.ack()
        else:
            log.warning("claim failed", extra={"event_id": event_id, "status": exc.status})
            await msg.ack()

    async def _execute(self, api: HttpServerApi, claim: Mapping[str, Any]) -> None:
        try:
            outcome = await self.executor.execute(api, claim)
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("command execution failed", extra={"execution_id": claim.get("execution_id")})
        finally:
            self.slots.release()
            self.inflight.discard(asyncio.current_task())  # type: ignore[arg-type]


async def _quiet_stop(broker: NatsBroker) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(broker.stop(), 10)


async def run_worker(
    settings: Settings, stop: asyncio.Event, ready: asyncio.Event | None = None
) -> WorkerRuntime:
    """Run a worker until `stop`; returns the runtime (tests read its outcomes)."""
    runtime = WorkerRuntime(settings)
    await runtime.run(stop, ready)
    return runtime
