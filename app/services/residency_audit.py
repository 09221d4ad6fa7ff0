"""Residency audit: keychain entries' region and policy checked against NOETL_SERVER_REGION and the
secret-audit trail; violations become metrics and secret_audit rows (operation `residency_audit`)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg

from app.bootstrap import Deps
from app.ids import SnowflakeGenerator
from app.secrets.audit import AuditEvent
from app.secrets.residency import decide, effective_region
from app.secrets.resolver import KeychainParseError, parse_keychain
from app.services import secret_audit

log = logging.getLogger(__name__)

KINDS = ("entry_policy", "cached_outside_region", "denied_resolutions")
VIOLATIONS = ("violation_blocked", "violation_allowed")

# Latest non-archived version of each playbook that declares a keychain.
CATALOG_SQL = """
SELECT DISTINCT ON (path) catalog_id, path, version, content FROM catalog
 WHERE archived_at IS NULL AND content LIKE '%keychain%'
 ORDER BY path, version DESC
"""
CACHED_SQL = (
    "SELECT keychain_name, catalog_id, count(*)::int AS n FROM keychain GROUP BY keychain_name, catalog_id"
)
AUDIT_SQL = """
SELECT credential, count(*)::int AS n FROM secret_audit
 WHERE outcome = 'residency_violation' AND occurred_at >= now() - make_interval(secs => $1)
   AND operation <> 'residency_audit'
 GROUP BY credential ORDER BY credential
"""


@dataclass(frozen=True)
class Violation:
    kind: str  # entry_policy | cached_outside_region | denied_resolutions
    credential: str
    path: str | None
    entry_region: str | None
    policy: str | None
    decision: str | None
    count: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "credential": self.credential,
            "path": self.path,
            "entry_region": self.entry_region,
            "policy": self.policy,
            "decision": self.decision,
            "count": self.count,
        }


async def audit(
    pool: asyncpg.Pool[Any],
    ids: SnowflakeGenerator,
    server_region: str,
    *,
    window_seconds: float = 900.0,
    record: bool = True,
) -> dict[str, Any]:
    """Run the audit once; with `record`, write one audit row per violation found."""
    violations: list[Violation] = []
    checked = 0
    unparsable = 0
    async with pool.acquire() as conn:
        catalogs = await conn.fetch(CATALOG_SQL)
        cached = {(r["keychain_name"], r["catalog_id"]): r["n"] for r in await conn.fetch(CACHED_SQL)}
        for row in catalogs:
            try:
                entries = parse_keychain(row["content"] or "")
            except KeychainParseError:
                unparsable += 1
                continue
            for entry in entries:
                checked += 1
                region = effective_region(entry.region, server_region)
                decision = decide(entry.residency, region, server_region, entry.allowed_regions)
                if decision not in VIOLATIONS:
                    continue
                base = dict(
                    credential=entry.name,
                    path=row["path"],
                    entry_region=region,
                    policy=entry.residency.value,
                    decision=decision,
                )
                violations.append(Violation(kind="entry_policy", **base))  # type: ignore[arg-type]
                n = cached.get((entry.name, row["catalog_id"]))
                if n:
                    violations.append(Violation(kind="cached_outside_region", count=n, **base))  # type: ignore[arg-type]
        for r in await conn.fetch(AUDIT_SQL, float(window_seconds)):
            violations.append(
                Violation(
                    "denied_resolutions", r["credential"], None, None, None, "residency_violation", r["n"]
                )
            )
        written = 0
        if record:
            now = datetime.now(UTC)
            for v in violations:
                notes = (
                    f"{v.kind}: path={v.path or '-'} entry_region={v.entry_region or '-'} "
                    f"policy={v.policy or '-'} count={v.count}"
                )
                await secret_audit.insert(
                    conn,
                    AuditEvent(
                        audit_id=ids.next_id(),
                        occurred_at=now,
                        credential=v.credential,
                        operation="residency_audit",
                        outcome="residency_violation",
                        server_region=server_region or None,
                        notes=notes[:500],
                    ),
                )
                written += 1
    return {
        "server_region": server_region,
        "entries_checked": checked,
        "playbooks_checked": len(catalogs),
        "unparsable_playbooks": unparsable,
        "violations": [v.as_dict() for v in violations],
        "audit_events_written": written,
    }


async def run(
    deps: Deps, trigger: str, *, record: bool = True, window_seconds: float | None = None
) -> dict[str, Any]:
    """Audit once, export the violations per kind as gauges, count the run."""
    window = (
        window_seconds if window_seconds is not None else deps.settings.ops.residency_audit_interval_seconds
    )
    try:
        out = await audit(
            deps.pool, deps.ids, deps.settings.server.region, window_seconds=window or 900.0, record=record
        )
    except Exception:
        deps.metrics.residency_audit_runs.labels(trigger, "error").inc()
        raise
    for kind in KINDS:
        n = sum(v["count"] for v in out["violations"] if v["kind"] == kind)
        deps.metrics.residency_audit_violations.labels(kind).set(n)
    deps.metrics.residency_audit_runs.labels(trigger, "violations" if out["violations"] else "clean").inc()
    return out


async def residency_loop(deps: Deps) -> None:
    """The scheduled audit of the consumers role (NOETL_RESIDENCY_AUDIT_INTERVAL_SECONDS; 0 = off)."""
    interval = deps.settings.ops.residency_audit_interval_seconds
    if interval <= 0:
        return
    while True:
        try:
            out = await run(deps, "schedule", window_seconds=interval)
            if out["violations"]:
                log.warning("residency violations", extra={"violations": len(out["violations"])})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # retried at the next interval
            log.warning("residency audit failed", extra={"error": str(exc)[:200]})
        await asyncio.sleep(interval)
