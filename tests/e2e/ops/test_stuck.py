"""Why is an execution not moving? The command-state read model joined with outbox and runtime rows."""

from __future__ import annotations

import pytest
from faststream.nats import NatsBroker

from app.devstack.nats import EmbeddedNats
from app.loops import SERVER_LOOPS
from handlers.nats import projector
from tests.e2e.ops.conftest import MakeOps
from tests.support.playbooks import LINEAR, register
from tests.support.server import running_api
from tests.support.test_worker import TestWorker
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

TOKEN = "5c0c" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def test_stuck_execution_is_explained(
    db_dsn: str, own_nats: EmbeddedNats, ops_settings: MakeOps
) -> None:
    settings = ops_settings(db_dsn, own_nats.url, NOETL_INTERNAL_API_TOKEN=TOKEN)
    async with running_api(settings, SERVER_LOOPS) as api, TestWorker(own_nats.url) as worker:
        broker = NatsBroker(**settings.nats.connect_options())  # type: ignore[arg-type]
        projector.register(broker, api.deps)
        await broker.start()
        try:
            await register(api, LINEAR)
            for name, pool in (("w-shared", "shared"), ("w-other", "system")):
                status, _ = await api.post(
                    "/api/worker/pool/register", json={"name": name, "labels": {"pool": pool}}
                )
                assert status == 200
            worker.hold.clear()  # the notification is delivered but never claimed
            _, res = await api.post("/api/execute", json={"path": "tests/linear"})
            eid = res["execution_id"]

            async def explained() -> dict[str, object] | None:
                status, body = await api.get(f"/api/internal/executions/{eid}/stuck", headers=AUTH)
                assert status == 200, body
                pending = body["pending_commands"]
                if pending and pending[0]["outbox_status"] == "PUBLISHED" and body["summary"]:
                    return body  # type: ignore[no-any-return]
                return None

            body = await eventually(explained, timeout=20, what="a projected pending command")
        finally:
            await broker.stop()
        (cmd,) = body["pending_commands"]  # type: ignore[index]
        assert cmd["step_name"] == "start" and cmd["status"] == "PENDING" and cmd["worker_id"] is None
        assert cmd["pool"] == "shared" and cmd["outbox_subject"] == f"noetl.commands.shared.{eid}"
        assert [w["name"] for w in cmd["live_workers"]] == ["w-shared"]
        assert body["summary"]["status"] == "RUNNING"  # type: ignore[index]

        status, err = await api.get("/api/internal/executions/abc/stuck", headers=AUTH)
        assert status == 400 and "decimal integer" in err["error"]
        status, empty = await api.get("/api/internal/executions/42/stuck", headers=AUTH)
        assert status == 200 and empty["summary"] is None and empty["pending_commands"] == []
