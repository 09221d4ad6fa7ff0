"""Running one claimed command (playbook-dsl §5.4): cancellation check, events, tool, outcome."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from app.domain.playbook import TASK_SEQUENCE
from app.ids import SnowflakeGenerator
from app.worker.api import ApiError, HttpServerApi
from app.worker.pipeline import run_pipeline
from app.worker.registry import get_tool
from app.worker.tools.base import Credentials, ToolCancelled, ToolContext, ToolError

log = logging.getLogger(__name__)

CredentialsFactory = Callable[[HttpServerApi, int], Credentials]


@dataclass
class ExecutorConfig:
    """What the executor needs from WorkerSettings."""

    worker_id: str
    command_timeout_seconds: float = 180.0
    cancel_poll_seconds: float = 3.0
    nats_url: str = ""


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


async def run_tool(kind: str, config: dict[str, Any], ctx: ToolContext) -> Any:
    """Look the tool up by kind and run it."""
    return await get_tool(kind)(config, ctx)


class CommandExecutor:
    """Executes claimed commands and reports them over HTTP events."""

    def __init__(self, cfg: ExecutorConfig, ids: SnowflakeGenerator, credentials: CredentialsFactory) -> None:
        self.cfg = cfg
        self.ids = ids
        self.credentials = credentials

    async def execute(self, api: HttpServerApi, claim: Mapping[str, Any]) -> str:
        """Run a claimed command to its reported outcome: completed / failed / cancelled / dropped."""
        eid = int(claim["execution_id"])
        step = str(claim.get("node_name") or claim.get("node_id") or "")
        kind = str(claim.get("action") or "")
        context = _mapping(claim.get("context"))
        meta = _mapping(claim.get("meta"))
        cid = str(meta.get("command_id") or "")
        attempt = int(meta.get("attempt") or meta.get("attempts") or 1)
        if await self._cancelled(api, eid):
            log.info("command dropped: execution cancelled", extra={"execution_id": eid, "step": step})
            return "dropped"
        base_meta: dict[str, Any] = {"attempts": attempt, "attempt": attempt, "command_id": cid}
        for key in ("iteration_index", "iteration_total", "loop_event_id", "iterator_step"):
            if key in meta:
                base_meta[key] = meta[key]
        started_id = self.ids.next_id()
        await self._post_events(
            api,
            eid,
            [self._event(step, "command.started", "STARTED", {"command_id": cid}, base_meta, started_id)],
        )
        ctx = ToolContext(
            execution_id=eid,
            step=step,
            command_id=cid,
            worker_id=self.cfg.worker_id,
            server_url=api.base_url,
            api=api,
            credentials=self.credentials(api, eid),
            render_context=dict(context.get("render_context") or {}),
            timeout_seconds=self.cfg.command_timeout_seconds,
            nats_url=self.cfg.nats_url,
        )
        poller = asyncio.create_task(self._poll_cancel(api, eid, ctx.cancelled))
        outcome: str
        try:
            data = await self._run_cancellable(kind, context, ctx)
        except ToolCancelled:
            outcome = "cancelled"
            await self._report_error(api, eid, step, cid, base_meta, "cancelled", None)
        except ToolError as exc:
            outcome = "failed"
            await self._report_error(api, eid, step, cid, base_meta, exc.message, exc.data)
        except Exception as exc:  # a bug in a tool still ends the command with a readable error
            log.exception("tool crashed", extra={"execution_id": eid, "step": step, "kind": kind})
            outcome = "failed"
            await self._report_error(api, eid, step, cid, base_meta, f"{type(exc).__name__}: {exc}", None)
        else:
            outcome = "completed"
            payload_done = {
                "command_id": cid,
                "call_index": 0,
                "result": {"status": "ok", "context": data},
            }
            await self._post_events(
                api,
                eid,
                [
                    self._event(step, "call.done", "COMPLETED", payload_done, base_meta),
                    self._event(
                        step,
                        "command.completed",
                        "success",
                        {"command_id": cid, "status": "success"},
                        base_meta,
                    ),
                ],
            )
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller
        return outcome

    async def _run_cancellable(self, kind: str, context: Mapping[str, Any], ctx: ToolContext) -> Any:
        """Run the tool; when the execution is cancelled, stop it (tools that own subprocesses kill them)."""
        work = asyncio.ensure_future(self._run(kind, context, ctx))
        flag = asyncio.ensure_future(ctx.cancelled.wait())
        try:
            await asyncio.wait({work, flag}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            work.cancel()
            raise
        finally:
            flag.cancel()
        if not work.done():
            # give a tool that watches ctx.cancelled a moment to clean up its subprocess itself
            done, _ = await asyncio.wait({work}, timeout=5)
            if not done:
                work.cancel()
            # retrieve the tool's own ToolCancelled too, or asyncio logs it as never retrieved
            with contextlib.suppress(BaseException):
                await work
            raise ToolCancelled()
        return work.result()

    async def _run(self, kind: str, context: Mapping[str, Any], ctx: ToolContext) -> Any:
        config = dict(context.get("tool_config") or {})
        step_input = _mapping(context.get("input"))
        if kind == TASK_SEQUENCE:
            raw_tasks = config.get("tasks")
            tasks: list[Mapping[str, Any]] = (
                [t for t in raw_tasks if isinstance(t, Mapping)] if isinstance(raw_tasks, list) else []
            )
            return await run_pipeline(tasks, ctx.render_context, dict(step_input or {}), ctx, run_tool)
        if "input" not in config and step_input:
            config["input"] = dict(step_input)
        return await run_tool(kind, config, ctx)

    async def _report_error(
        self,
        api: HttpServerApi,
        eid: int,
        step: str,
        cid: str,
        meta: dict[str, Any],
        error: str,
        data: Any,
    ) -> None:
        call_payload: dict[str, Any] = {"command_id": cid, "call_index": 0, "error": error}
        if data is not None:
            call_payload["result"] = {"status": "error", "context": data, "error": error}
        await self._post_events(
            api,
            eid,
            [
                self._event(step, "call.error", "FAILED", call_payload, meta),
                self._event(step, "command.failed", "FAILED", {"command_id": cid, "error": error}, meta),
            ],
        )

    def _event(
        self,
        step: str,
        event_type: str,
        status: str,
        payload: dict[str, Any],
        meta: dict[str, Any],
        event_id: int | None = None,
    ) -> dict[str, Any]:
        return {
            "step": step,
            "event_type": event_type,
            "status": status,
            "payload": payload,
            "event_id": event_id or self.ids.next_id(),
            "created_at": _now(),
            "worker_id": self.cfg.worker_id,
            "meta": dict(meta),
            "actionable": event_type != "command.started",
        }

    async def _post_events(self, api: HttpServerApi, eid: int, events: list[dict[str, Any]]) -> None:
        """One batch per lifecycle point; stable event ids and an Idempotency-Key make re-sends safe."""
        key = f"{self.cfg.worker_id}:{eid}:{events[0]['event_id']}"
        body = {"execution_id": eid, "worker_id": self.cfg.worker_id, "events": events}
        await api.request("POST", "/api/events/batch", body=body, headers={"Idempotency-Key": key})

    async def _cancelled(self, api: HttpServerApi, eid: int) -> bool:
        try:
            out = await api.get_json(f"/api/executions/{eid}/cancellation-check")
        except ApiError as exc:
            log.warning("cancellation check failed", extra={"execution_id": eid, "status": exc.status})
            return False
        return bool(isinstance(out, Mapping) and (out.get("cancelled") or out.get("is_cancelled")))

    async def _poll_cancel(self, api: HttpServerApi, eid: int, flag: asyncio.Event) -> None:
        """While the tool runs, poll the cancellation check and raise the flag the tools watch."""
        while not flag.is_set():
            await asyncio.sleep(self.cfg.cancel_poll_seconds)
            with contextlib.suppress(Exception):
                if await self._cancelled(api, eid):
                    flag.set()


def new_request_id() -> str:
    """A random id for logs."""
    return uuid.uuid4().hex
