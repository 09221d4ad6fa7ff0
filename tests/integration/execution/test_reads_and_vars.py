"""Execution reads, finalize, cleanup, rerun, variables and the result store."""

from __future__ import annotations

import pytest

from tests.support.playbooks import LINEAR, register
from tests.support.server import make_settings, running_api

pytestmark = pytest.mark.integration


async def test_reads_finalize_rerun_cleanup(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        await register(api, LINEAR)
        _, started = await api.post("/api/execute", json={"path": "tests/linear", "workload": {"n": 4}})
        eid = started["execution_id"]
        status, st = await api.get(f"/api/executions/{eid}/status")
        assert (
            status == 200 and st["status"] == "RUNNING" and st["completed"] is False and st["failed"] is False
        )
        assert st["current_step"] == "start" and st["completed_steps"] == []
        assert set(st["progress"]) == {"total_steps", "completed_steps", "running_steps", "failed_steps"}
        assert st["variables"]["n"] == 4
        status, items = await api.get("/api/executions?limit=10")
        assert status == 200 and items[0]["execution_id"] == eid and items[0]["status"] == "RUNNING"
        status, page = await api.get(f"/api/executions/{eid}/events?page_size=10")
        assert status == 200 and page["pagination"]["total_events"] == 3
        assert page["events"][0]["event_type"] == "command.issued"
        assert (await api.get("/api/executions/123/status"))[0] == 404
        assert (await api.get("/api/executions/abc/status"))[0] == 400
        status, fin = await api.post(f"/api/executions/{eid}/finalize", json={"status": "BOGUS"})
        assert status == 422
        status, fin = await api.post(f"/api/executions/{eid}/finalize", json={"reason": "stuck"})
        assert status == 200 and fin["status"] == "finalized"
        _, st = await api.get(f"/api/executions/{eid}/status")
        assert st["status"] == "FAILED" and st["error"] == "stuck"
        status, fin = await api.post(f"/api/executions/{eid}/finalize", json={})
        assert fin["status"] == "already_completed"
        status, re = await api.post(f"/api/executions/{eid}/rerun", json={"workload": {"extra": 1}})
        assert status == 200 and re["execution_id"] != eid
        wl = await api.deps.pool.fetchval(
            "SELECT workload FROM execution WHERE execution_id = $1", int(re["execution_id"])
        )
        assert wl == {"n": 4, "extra": 1}
        status, dry = await api.post(
            "/api/executions/cleanup", json={"older_than_minutes": 1, "dry_run": True}
        )
        assert status == 200 and dry["cancelled_count"] == 0
        await api.deps.pool.execute("UPDATE execution SET start_time = now() - interval '10 minutes'")
        status, out = await api.post("/api/executions/cleanup", json={"older_than_minutes": 5})
        assert out["cancelled_count"] == 1 and out["execution_ids"] == [int(re["execution_id"])]


async def test_vars_every_body_shape(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        assert (await api.post("/api/vars/7", json={"variables": {"a": 1}, "var_type": "computed"}))[1] == {
            "execution_id": "7",
            "variables_set": 1,
            "var_names": ["a"],
        }
        await api.post("/api/vars/7", json={"variables": [{"var_name": "b", "var_value": {"x": 1}}]})
        await api.post("/api/vars/7", json={"c": [1, 2]})
        assert (await api.post("/api/vars/7", json={"variables": {"a": 1}, "var_type": "weird"}))[0] == 422
        status, one = await api.get("/api/vars/7/b")
        assert status == 200 and one["value"] == one["var_value"] == {"x": 1} and one["access_count"] == 1
        status, all_ = await api.get("/api/vars/7")
        assert all_["count"] == 3 and all_["variables"]["a"]["type"] == "computed"
        assert (await api.get("/api/vars/7/zzz"))[0] == 404
        status, _, _ = await api.request("DELETE", "/api/vars/7/a")
        assert status == 200
        status, out, _ = await api.request("DELETE", "/api/vars/7")
        assert out["deleted_count"] == 2


async def test_result_store(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        status, saved, _ = await api.request(
            "PUT", "/api/result/42", json={"name": "big", "data": {"rows": [1] * 100}}
        )
        assert status == 200 and saved["ref"].startswith("noetl://execution/42/result/big/")
        status, data = await api.get("/api/result/resolve", params={"ref": saved["ref"]})
        assert status == 200 and data == {"rows": [1] * 100}
        assert (await api.get("/api/result/resolve", params={"ref": "bogus"}))[0] == 400
        assert (await api.get("/api/result/resolve", params={"ref": "noetl://execution/42/result/x/1"}))[
            0
        ] == 404
