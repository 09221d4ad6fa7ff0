"""A small worker for tests: pulls notifications from NATS, claims over HTTP, posts events.

It speaks either the project worker's dialect or the NoETL Python worker's dialect
(python-worker-wire.md): batch events with Idempotency-Key, `response` payloads, string ids."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from app.ids import SnowflakeGenerator, node_id_from_name

Runner = Callable[[dict[str, Any]], Any]


def run_python(claim: dict[str, Any]) -> Any:
    """Execute a python tool in-process (tests only): inputs as globals, `result` is the output."""
    ctx = claim["context"]
    cfg = ctx.get("tool_config") or {}
    inputs = dict(ctx.get("input") or ctx.get("args") or {})
    env: dict[str, Any] = {**inputs, "input_data": inputs, "args": inputs, "json": json}
    exec(cfg.get("code", ""), env)  # noqa: S102 - test worker running test playbooks
    if env.get("result") is None and callable(env.get("main")):
        return env["main"](**inputs)
    return env.get("result")


def default_runner(claim: dict[str, Any]) -> Any:
    kind = claim["action"]
    cfg = claim["context"].get("tool_config") or {}
    if kind == "python":
        return run_python(claim)
    if kind == "noop":
        return cfg.get("result", {"status": "ok", "message": cfg.get("message", "noop")})
    raise RuntimeError(f"tool kind '{kind}' is not supported by the test worker")


class TestWorker:
    __test__ = False

    def __init__(
        self,
        nats_url: str,
        *,
        pool: str = "shared",
        worker_id: str | None = None,
        dialect: str = "project",
        runner: Runner = default_runner,
        durable: str | None = None,
    ) -> None:
        self.nats_url = nats_url
        self.pool = pool
        self.worker_id = worker_id or f"test-worker-{uuid.uuid4().hex[:8]}"
        self.dialect = dialect
        self.runner = runner
        self.durable = durable or f"test_{uuid.uuid4().hex[:8]}"
        self.ids = SnowflakeGenerator(node_id_from_name(self.worker_id))
        self.claims: list[dict[str, Any]] = []
        self.claim_statuses: list[int] = []
        self.task: asyncio.Task[None] | None = None
        self.hold = asyncio.Event()
        self.hold.set()
        self.errors: list[str] = []

    async def __aenter__(self) -> TestWorker:
        self.nc = await nats.connect(self.nats_url)
        js = self.nc.jetstream()
        self.sub = await js.pull_subscribe(
            f"noetl.commands.{self.pool}.>",
            durable=self.durable,
            stream="NOETL_COMMANDS",
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.NEW, ack_wait=30
            ),
        )
        self.http = aiohttp.ClientSession()
        self.task = asyncio.create_task(self._loop())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task
        await self.http.close()
        with contextlib.suppress(Exception):
            await self.sub.unsubscribe()
        await self.nc.close()

    async def _loop(self) -> None:
        while True:
            try:
                msgs = await self.sub.fetch(1, timeout=1)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in msgs:
                await self.hold.wait()
                note = json.loads(msg.data)
                await msg.ack()
                asyncio.create_task(self._guarded(note))

    async def _guarded(self, note: dict[str, Any]) -> None:
        try:
            await self.handle(note)
        except Exception as exc:  # surfaced by tests through .errors
            self.errors.append(f"{type(exc).__name__}: {exc}")

    async def handle(self, note: dict[str, Any]) -> None:
        base = note["server_url"]
        async with self.http.post(
            f"{base}/api/commands/{note['event_id']}/claim", json={"worker_id": self.worker_id}
        ) as r:
            self.claim_statuses.append(r.status)
            if r.status != 200:
                return
            claim = await r.json()
        self.claims.append(claim)
        if self.dialect == "python":
            await self._python_dialect(base, claim)
        else:
            await self._project_dialect(base, claim)

    async def _post(self, base: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(f"{base}/api/events", json=body) as r:
            assert r.status == 200, await r.text()
            return await r.json()  # type: ignore[no-any-return]

    async def _project_dialect(self, base: str, claim: dict[str, Any]) -> None:
        eid, step, cid = claim["execution_id"], claim["node_name"], claim["meta"]["command_id"]
        common = {
            "execution_id": eid,
            "step": step,
            "worker_id": self.worker_id,
            "meta": {"attempts": 1, "command_id": cid},
        }
        await self._post(
            base,
            {
                **common,
                "event_type": "command.started",
                "status": "STARTED",
                "event_id": self.ids.next_id(),
                "payload": {"command_id": str(cid)},
            },
        )
        try:
            data = self.runner(claim)
            if asyncio.iscoroutine(data):
                data = await data
        except Exception as exc:
            await self._post(
                base,
                {
                    **common,
                    "event_type": "call.error",
                    "status": "FAILED",
                    "event_id": self.ids.next_id(),
                    "payload": {"command_id": str(cid), "call_index": 0, "error": str(exc)},
                },
            )
            await self._post(
                base,
                {
                    **common,
                    "event_type": "command.failed",
                    "status": "FAILED",
                    "event_id": self.ids.next_id(),
                    "payload": {"command_id": str(cid), "error": str(exc)},
                },
            )
            return
        ctx = data if isinstance(data, dict) else {"value": data}
        await self._post(
            base,
            {
                **common,
                "event_type": "call.done",
                "status": "COMPLETED",
                "event_id": self.ids.next_id(),
                "payload": {
                    "command_id": str(cid),
                    "call_index": 0,
                    "result": {"status": "ok", "context": ctx},
                },
            },
        )
        await self._post(
            base,
            {
                **common,
                "event_type": "command.completed",
                "status": "success",
                "event_id": self.ids.next_id(),
                "payload": {"command_id": str(cid), "status": "success"},
            },
        )

    async def _python_dialect(self, base: str, claim: dict[str, Any]) -> None:
        eid, step, cid = str(claim["execution_id"]), claim["node_name"], claim["meta"]["command_id"]
        assert "input" in claim["context"] and "server_url" in claim["context"]["render_context"]

        async def batch(events: list[dict[str, Any]]) -> None:
            headers = {"Idempotency-Key": f"{self.worker_id}:{eid}:{uuid.uuid4()}"}
            body = {"execution_id": eid, "worker_id": self.worker_id, "events": events}
            async with self.http.post(f"{base}/api/events/batch", json=body, headers=headers) as r:
                assert r.status == 200, await r.text()

        meta = {"command_id": cid}
        await batch(
            [
                {
                    "step": step,
                    "name": "command.started",
                    "payload": {"command_id": cid, "worker_id": self.worker_id},
                    "actionable": False,
                    "informative": True,
                    "meta": meta,
                },
                {
                    "step": step,
                    "name": "step.enter",
                    "payload": {"status": "started"},
                    "actionable": False,
                    "meta": meta,
                },
            ]
        )
        try:
            data = self.runner(claim)
        except Exception as exc:
            await batch(
                [
                    {
                        "step": step,
                        "name": "call.error",
                        "meta": meta,
                        "actionable": True,
                        "payload": {
                            "error": str(exc),
                            "response": {"status": "error", "error": str(exc)},
                            "result": {"status": "FAILED", "context": {}},
                        },
                    },
                    {
                        "step": step,
                        "name": "step.exit",
                        "meta": meta,
                        "payload": {"status": "FAILED", "error": str(exc), "command_id": cid},
                    },
                    {
                        "step": step,
                        "name": "command.failed",
                        "meta": meta,
                        "payload": {"command_id": cid, "worker_id": self.worker_id, "error": str(exc)},
                    },
                ]
            )
            return
        await batch(
            [
                {
                    "step": step,
                    "name": "call.done",
                    "meta": meta,
                    "actionable": True,
                    "payload": {
                        "response": data,
                        "result": {"status": "COMPLETED", "context": data if isinstance(data, dict) else {}},
                        "command_id": cid,
                        "loop_event_id": claim["meta"].get("loop_event_id"),
                        "loop_iteration_index": claim["meta"].get("iteration_index"),
                    },
                },
                {
                    "step": step,
                    "name": "step.exit",
                    "meta": meta,
                    "payload": {"status": "COMPLETED", "result": data, "error": None, "command_id": cid},
                },
                {
                    "step": step,
                    "name": "command.completed",
                    "meta": meta,
                    "payload": {"command_id": cid, "worker_id": self.worker_id, "result": data},
                },
            ]
        )
