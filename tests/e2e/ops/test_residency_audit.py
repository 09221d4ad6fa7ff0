"""POST /api/internal/residency/audit and the consumers role's scheduled audit."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from app.secrets.audit import AuditEvent
from app.services import secret_audit
from handlers.roles.consumers import run_consumers
from tests.e2e.ops.conftest import MakeOps
from tests.support.playbooks import register
from tests.support.server import Api, running_api
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

TOKEN = "a0d1" * 16
AUTH = {"Authorization": f"Bearer {TOKEN}"}

PLAYBOOK = """
apiVersion: noetl.io/v2
kind: Playbook
metadata: {name: resident, path: tests/resident}
keychain:
  - name: local_db
    provider: vault
  - name: eu_strict
    provider: vault
    region: eu-central-1
    residency: strict
  - name: eu_advisory
    provider: vault
    region: eu-central-1
    residency: advisory
  - name: eu_but_allowed
    provider: vault
    region: eu-central-1
    residency: strict
    allowed_regions: [us-east-1]
  - name: us_strict
    provider: vault
    region: us-east-1
    residency: strict
workflow:
  - step: start
    tool: {kind: noop}
"""


async def audit_rows(api: Api) -> list[dict[str, object]]:
    rows = await api.deps.pool.fetch(
        "SELECT credential, outcome, notes FROM secret_audit WHERE operation = 'residency_audit' ORDER BY credential"
    )
    return [dict(r) for r in rows]


async def denied(api: Api, credential: str) -> None:
    """A denial as the resolver records it (secrets.md audit trail)."""
    await secret_audit.insert(
        api.deps.pool,
        AuditEvent(
            audit_id=api.deps.ids.next_id(),
            occurred_at=datetime.now(UTC),
            credential=credential,
            operation="resolve_keychain",
            outcome="residency_violation",
            server_region="us-east-1",
        ),
    )


async def test_audit_reports_violations_as_metrics_and_audit_rows(db_dsn: str, ops_settings: MakeOps) -> None:
    settings = ops_settings(db_dsn, NOETL_SERVER_REGION="us-east-1", NOETL_INTERNAL_API_TOKEN=TOKEN)
    async with running_api(settings) as api:
        status, clean = await api.post("/api/internal/residency/audit", json={}, headers=AUTH)
        assert status == 200 and clean["violations"] == [] and clean["audit_events_written"] == 0

        await register(api, PLAYBOOK)
        await denied(api, "eu_strict")
        for bad in ({"record": "perhaps"}, {"window_seconds": 0}, {"extra": 1}):
            status, body = await api.post("/api/internal/residency/audit", json=bad, headers=AUTH)
            assert status in (400, 422), (bad, body)
        assert await audit_rows(api) == []

        status, dry = await api.post("/api/internal/residency/audit", json={"record": False}, headers=AUTH)
        assert status == 200, dry
        found = {(v["kind"], v["credential"], v["decision"]) for v in dry["violations"]}
        assert found == {
            ("entry_policy", "eu_strict", "violation_blocked"),
            ("entry_policy", "eu_advisory", "violation_allowed"),
            ("denied_resolutions", "eu_strict", "residency_violation"),
        }
        assert (
            dry["entries_checked"] == 5 and dry["audit_events_written"] == 0 and await audit_rows(api) == []
        )

        status, done = await api.post("/api/internal/residency/audit", json={}, headers=AUTH)
        assert status == 200 and done["audit_events_written"] == 3
        rows = await audit_rows(api)
        assert [r["credential"] for r in rows] == ["eu_advisory", "eu_strict", "eu_strict"]
        assert all(r["outcome"] == "residency_violation" for r in rows)
        metrics = (await api.get("/metrics"))[1]
        assert 'noetl_residency_audit_violations{kind="entry_policy"} 2.0' in metrics
        assert 'noetl_residency_audit_violations{kind="denied_resolutions"} 1.0' in metrics
        # Its own rows are not counted as new denials by the next run.
        status, again = await api.post("/api/internal/residency/audit", json={"record": False}, headers=AUTH)
        assert sum(v["count"] for v in again["violations"] if v["kind"] == "denied_resolutions") == 1


async def test_consumers_role_runs_the_scheduled_audit(
    db_dsn: str, nats_url: str, ops_settings: MakeOps
) -> None:
    settings = ops_settings(
        db_dsn,
        nats_url,
        NOETL_SERVER_REGION="us-east-1",
        NOETL_RESIDENCY_AUDIT_INTERVAL_SECONDS="0.3",
        NOETL_CLEANUP_INTERVAL_SECONDS="0",
        NOETL_PROJECTIONS_ENABLED="false",
    )
    stop = asyncio.Event()
    async with running_api(settings) as api:
        await register(api, PLAYBOOK)
        task = asyncio.create_task(run_consumers(settings, stop=stop))
        try:

            async def recorded() -> bool:
                return len([r for r in await audit_rows(api) if r["credential"] == "eu_advisory"]) >= 2

            await eventually(recorded, timeout=20, what="two scheduled audit runs")
        finally:
            stop.set()
            await asyncio.wait_for(task, 20)
