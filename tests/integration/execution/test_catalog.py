"""Catalog API (server-contract §7): validation at registration stores nothing; versions; batch; list."""

from __future__ import annotations

import base64

import pytest

from tests.support.playbooks import LINEAR, b64, register
from tests.support.server import make_settings, running_api

pytestmark = pytest.mark.integration

HEAD = "apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: bad, path: tests/bad}\n"
MALFORMED = [
    "just: [unclosed",
    "- a\n- list\n",
    "kind: Playbook\nmetadata: {name: x}\nworkflow: [{step: a, tool: {kind: noop}}]\n",
    "apiVersion: noetl.io/v2\nkind: Playbook\nworkflow: [{step: a, tool: {kind: noop}}]\n",
    HEAD,
    HEAD + "workflow: []\n",
    HEAD + "workflow:\n  - {step: a, tool: {kind: noop}}\n  - {step: a, tool: {kind: noop}}\n",
    HEAD + "workflow:\n  - {step: a, tool: {kind: noop}, next: {arcs: [{step: nowhere}]}}\n",
    HEAD + "executor: {spec: {entry_step: ghost}}\nworkflow:\n  - {step: a, tool: {kind: noop}}\n",
    HEAD + "workflow:\n  - {step: a}\n",
    HEAD + "workflow:\n  - {step: a, tool: {kind: teleport}}\n",
    HEAD + "workflow:\n  - {step: a, tool: {kind: workbook, name: missing}}\n",
    HEAD + "workflow:\n  - {step: a, type: python, tool: {kind: noop}}\n",
    HEAD + "workflow:\n  - {step: a, case: [], tool: {kind: noop}}\n",
    HEAD + "workflow:\n  - {step: a, set_ctx: {x: 1}, tool: {kind: noop}}\n",
    HEAD + "workflow:\n  - {step: a, tool: {kind: noop, message: '{{ broken '}}\n",
    HEAD + "workflow:\n  - {step: a, loop: {iterator: x}, tool: {kind: noop}}\n",
    HEAD + "workflow:\n  - {step: a, loop: {in: '{{ xs }}'}, tool: {kind: noop}}\n",
    HEAD + "workflow:\n  - {step: a, tool: {kind: noop}, next: {arcs: [{step: a, when: true}]}}\n",
    HEAD + "workflow:\n  - {step: a, tool: {kind: python, code: 'x = {% if %}'}}\n",
]


async def test_twenty_malformed_playbooks_answer_4xx_and_store_nothing(db_dsn: str) -> None:
    assert len(MALFORMED) == 20
    async with running_api(make_settings(db_dsn)) as api:
        for i, text in enumerate(MALFORMED):
            status, body = await api.post(
                "/api/catalog/register",
                json={"content": base64.b64encode(text.encode()).decode(), "resource_type": "Playbook"},
            )
            assert 400 <= status < 500, (i, status, body)
            assert body["error"] and body["status"] == status, (i, body)
        assert await api.deps.pool.fetchval("SELECT count(*) FROM catalog") == 0


async def test_validation_error_names_step_field_reason(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        status, body = await api.post("/api/catalog/register", json={"content": b64(MALFORMED[7])})
        assert status == 422
        problem = body["detail"][0]
        assert problem["step"] == "a" and "nowhere" in problem["reason"] and problem["field"]


async def test_versions_batch_list_resource_delete(db_dsn: str) -> None:
    token = "x" * 40
    async with running_api(make_settings(db_dsn, NOETL_INTERNAL_API_TOKEN=token)) as api:
        first = await register(api, LINEAR)
        again = await register(api, LINEAR)
        assert (first["version"], again["version"]) == (1, 1) and first["catalog_id"] == again["catalog_id"]
        second = await register(api, LINEAR + "\n# changed\n")
        assert (
            second["version"] == 2 and second["message"] == "Resource 'tests/linear' version '2' registered."
        )
        raw = await api.post(
            "/api/catalog/register", json={"content": LINEAR.replace("tests/linear", "tests/raw")}
        )
        assert raw[0] == 200 and raw[1]["path"] == "tests/raw"
        status, batch = await api.post(
            "/api/catalog/register/batch",
            json={
                "items": [
                    {"content": b64(LINEAR.replace("tests/linear", "tests/b1")), "resource_type": "Playbook"},
                    {"content": b64(MALFORMED[6]), "resource_type": "Playbook"},
                    {"content": b64(LINEAR.replace("tests/linear", "tests/b2")), "resource_type": "Playbook"},
                ]
            },
        )
        assert status == 200 and (batch["registered"], batch["failed"]) == (2, 1)
        assert batch["results"][1]["status"] == "error" and batch["results"][1]["error"]
        status, listed = await api.post("/api/catalog/list", json={"resource_type": "Playbook"})
        assert status == 200 and len(listed["entries"]) == 5
        assert all(isinstance(e["catalog_id"], str) for e in listed["entries"])
        status, res = await api.post(
            "/api/catalog/resource", json={"path": "tests/linear", "version": "latest"}
        )
        assert status == 200 and res["version"] == 2
        status, res = await api.post("/api/catalog/resource", json={"path": "tests/linear", "version": "1"})
        assert res["version"] == 1
        assert (await api.post("/api/catalog/resource", json={"path": "nope"}))[0] == 404
        assert (await api.post("/api/catalog/resource", json={}))[0] == 422
        auth = {"Authorization": f"Bearer {token}"}
        assert (await api.post("/api/catalog/delete", json={"path": "tests/b1"}))[0] == 403
        status, deleted = await api.post("/api/catalog/delete", json={"path": "tests/b1"}, headers=auth)
        assert status == 200 and deleted["count"] == 1
        status, deleted = await api.post("/api/catalog/delete", json={"path": "tests/b1"}, headers=auth)
        assert deleted["count"] == 0


async def test_execute_validation(db_dsn: str) -> None:
    async with running_api(make_settings(db_dsn)) as api:
        await register(api, LINEAR)
        assert (await api.post("/api/execute", json={}))[0] == 422
        status, body = await api.post("/api/execute", json={"path": "no/such"})
        assert status == 404 and body["error"] == "Playbook not found: no/such"
        assert (await api.post("/api/execute", json={"path": "tests/linear", "resource_kind": "notebook"}))[
            0
        ] == 422
        assert (await api.post("/api/execute", json={"path": "tests/linear", "workload": [1]}))[0] == 422
        status, ok = await api.post(
            "/api/execute",
            json={"path": "tests/linear", "version": 1, "payload": {"n": 9}, "workload": {"n": 1}},
        )
        assert status == 200
        wl = await api.deps.pool.fetchval(
            "SELECT workload FROM execution WHERE execution_id = $1", int(ok["execution_id"])
        )
        assert wl == {"n": 9}
