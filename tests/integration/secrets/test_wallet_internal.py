"""Internal wallet routes: gate, key status, KEK rotation, audit trail and its query
(secrets.md §1.7, §3.5, §3.6, §6.3; §12 cases 30, 31, 44, 61)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from app.secrets.blob import encrypt
from app.secrets.encoding import b64decode_strict, b64encode
from app.secrets.envelope import parse_record
from tests.integration.secrets.conftest import (
    AUTH,
    TOKEN,
    FakeVault,
    register_worker,
    sample,
    settings,
    start_execution,
)
from tests.support.server import Api, make_settings, running_api
from tests.support.wait import eventually

INTERNAL = [
    ("POST", "/api/internal/wallet/rotate-kek", {}),
    ("GET", "/api/internal/wallet/key-status", None),
    ("GET", "/api/internal/secret-audit", None),
    ("POST", "/api/internal/cross-region/resolve", {}),
]


async def test_internal_gate(db_dsn: str) -> None:
    """44: unset token → 401; missing/Basic/wrong → 403; lower-case bearer → passes the gate."""
    async with running_api(make_settings(db_dsn)) as bare:
        for method, path, body in INTERNAL:
            status, _, _ = await bare.request(method, path, json=body, headers=AUTH)
            assert status == 401, path
    async with running_api(settings(db_dsn)) as api:
        for method, path, body in INTERNAL:
            for headers in ({}, {"Authorization": "Basic x"}, {"Authorization": "Bearer wrong"}):
                status, err, _ = await api.request(method, path, json=body, headers=headers)
                assert status == 403 and err["status"] == 403, (path, headers)
            status, _, _ = await api.request(
                method, path, json=body, headers={"Authorization": f"bearer {TOKEN}"}
            )
            # the broker body {} is a 422 from the route itself: the gate let it through
            assert status == (422 if path.endswith("resolve") else 200), path


async def _db(db_dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(db_dsn, server_settings={"search_path": "noetl"})


async def test_key_status_and_rotation(api: Api, db_dsn: str) -> None:
    cipher = api.deps.wallet.cipher()  # type: ignore[union-attr]
    v1 = await cipher.seal({"k": "rotate-me"})
    v9 = v1.replace('"kv":"v1"', '"kv":"v9"')
    v2 = v1.replace('"kv":"v1"', '"kv":"v2"')
    l1 = b64encode(encrypt(bytes(range(32)), b'{"legacy":true}'))
    conn = await _db(db_dsn)
    try:
        await conn.executemany(
            "INSERT INTO credential (id, name, type, data_encrypted) VALUES ($1, $2, 'x', $3)",
            [(i, f"c{i:04d}", v9) for i in range(1, 251)]
            + [(251, "l0", '{"username":"x"}'), (252, "l1", l1), (253, "cur", v1), (254, "old2", v2)],
        )
        status, cid = await api.post(
            "/api/catalog/register",
            json={
                "content": b64encode(
                    b"apiVersion: noetl.io/v2\nkind: Playbook\nmetadata: {name: r, path: t/r}\n"
                    b"workflow:\n  - step: start\n    tool: {kind: noop}\n"
                ),
                "resource_type": "Playbook",
            },
        )
        assert status == 200, cid
        cat = int(cid["catalog_id"])
        await conn.executemany(
            "INSERT INTO keychain (cache_key, keychain_name, catalog_id, credential_type, cache_type, scope_type,"
            " data_encrypted, expires_at) VALUES ($1, $1, $2, 'secret', 'secret', 'global', $3, now() + interval '1h')",
            [(f"k{i}", cat, v9) for i in range(3)],
        )
        # 30: key status counts every version, non-envelope rows as invalid, keys sorted
        status, ks = await api.get("/api/internal/wallet/key-status", headers=AUTH)
        assert status == 200
        assert ks == {"credential": {"invalid": 2, "v1": 1, "v2": 1, "v9": 250}, "keychain": {"v9": 3}}
        assert list(ks["credential"]) == ["invalid", "v1", "v2", "v9"]

        # 31: batch_size 0 → 1, max_batches bounds the pass
        status, out = await api.post(
            "/api/internal/wallet/rotate-kek", json={"batch_size": 0, "max_batches": 2}, headers=AUTH
        )
        assert status == 200
        assert out["credential"] == {"processed": 2, "rewrapped": 2, "skipped": 0, "failed": 0, "last_id": 2}
        assert out["keychain"] == {
            "processed": 2,
            "rewrapped": 2,
            "skipped": 0,
            "failed": 0,
            "last_id": 0,
            "last_key": "k1",
        }
        assert list(out["keychain"]) == ["processed", "rewrapped", "skipped", "failed", "last_id", "last_key"]
        # {} body → defaults; resume with after_id; a failing row does not stop later ones
        status, out = await api.post("/api/internal/wallet/rotate-kek", json={"after_id": 2}, headers=AUTH)
        assert status == 200
        assert out["credential"] == {
            "processed": 252,
            "rewrapped": 249,
            "skipped": 1,
            "failed": 2,
            "last_id": 254,
        }
        assert out["keychain"] == {
            "processed": 3,
            "rewrapped": 1,
            "skipped": 2,
            "failed": 0,
            "last_id": 0,
            "last_key": "k2",
        }
        # the L0 and L1 rows are parse errors; the pass carried on past them
        assert sample(api, "noetl_wallet_rotate_total", table="credential", status="parse_error") == 2
        assert sample(api, "noetl_wallet_rotate_total", table="keychain", status="rewrapped") == 3
        # the content ct is byte-identical; only the dek changed; the value still opens
        after = await conn.fetchval("SELECT data_encrypted FROM credential WHERE id = 7")
        assert parse_record(after).ct == parse_record(v9).ct and parse_record(after).kv == "v1"
        assert parse_record(after).dek_ct != parse_record(v9).dek_ct
        status, body = await api.get("/api/credentials/c0007?include_data=true")
        assert status == 200 and body["data"] == {"k": "rotate-me"}
        # 250 rows with batch 100 → last_id = max id; current-version rows are skipped untouched
        status, out = await api.post("/api/internal/wallet/rotate-kek", json={}, headers=AUTH)
        assert out["credential"]["rewrapped"] == 0 and out["credential"]["skipped"] == 252
        assert out["credential"]["last_id"] == 254 and out["keychain"]["skipped"] == 3
        status, out = await api.post(
            "/api/internal/wallet/rotate-kek", json={"batch_size": 100}, headers=AUTH
        )
        assert out["credential"]["processed"] == 254 and out["credential"]["last_id"] == 254
        status, ks = await api.get("/api/internal/wallet/key-status", headers=AUTH)
        assert ks == {"credential": {"invalid": 2, "v1": 252}, "keychain": {"v1": 3}}
        assert b64decode_strict(parse_record(after).ct)  # still valid base64 content
    finally:
        await conn.close()


async def _audit(api: Api, query: str = "") -> list[dict[str, Any]]:
    status, body = await api.get(f"/api/internal/secret-audit{query}", headers=AUTH)
    assert status == 200, body
    return body["rows"]  # type: ignore[no-any-return]


async def test_audit_rows_and_query(db_dsn: str, vault: FakeVault) -> None:
    secret_values = ["pw-audit-61", "tok-stored-61"]
    vault.values = {"app/prod/db": "pw-audit-61"}
    keychain = """
- name: kc_db
  provider: vault
  map: {password: "app/{{ env }}/db"}
- name: eu_only
  provider: vault
  region: eu-central-1
  residency: strict
"""
    async with running_api(settings(db_dsn, NOETL_SERVER_REGION="us-east-1")) as api:
        _, eid = await start_execution(api, "tests/secrets/audit", keychain)
        await api.post(
            "/api/credentials", json={"name": "stored", "type": "x", "data": {"t": "tok-stored-61"}}
        )
        worker = await register_worker(api, "w-audit")
        t0 = datetime.now(UTC) - timedelta(seconds=1)
        assert (await api.get(f"/api/credentials/stored?include_data=true&execution_id={eid}"))[0] == 200
        assert (await api.get("/api/credentials/ghost?include_data=true"))[0] == 404
        assert (await api.get("/api/credentials/stored/sealed?worker_id=nobody"))[0] == 400
        assert (await api.get(f"/api/credentials/stored/sealed?worker_id=w-audit&execution_id={eid}"))[
            0
        ] == 200
        assert (await api.get(f"/api/credentials/kc_db?include_data=true&execution_id={eid}"))[0] == 200
        assert (await api.get(f"/api/credentials/eu_only?include_data=true&execution_id={eid}"))[0] == 403
        req = {
            "alias": "stored",
            "worker_public_key_b64": worker.public_b64,
            "worker_id": "w-audit",
            "execution_id": eid,
            "expected_entry_region": "eu-central-1",
            "requesting_region": "x",
        }
        assert (await api.post("/api/internal/cross-region/resolve", json=req, headers=AUTH))[0] == 403

        rows = await eventually(lambda: _rows_when(api, 9), what="9 audit rows")
        got = {(r["operation"], r["credential"], r["outcome"]) for r in rows}
        assert got == {
            ("get_credential", "stored", "ok"),
            ("get_credential", "ghost", "credential_not_found"),
            ("get_sealed", "stored", "no_pubkey"),
            ("get_sealed", "stored", "ok"),
            ("resolve_keychain", "kc_db", "ok"),
            ("get_credential", "kc_db", "ok"),
            ("resolve_keychain", "eu_only", "residency_violation"),
            ("get_credential", "eu_only", "residency_violation"),
            ("cross_region_broker_serve", "stored", "wrong_region"),
        }
        ok_get = next(r for r in rows if r["operation"] == "get_credential" and r["credential"] == "stored")
        assert ok_get["kek_version"] == "v1" and ok_get["execution_id"] == eid
        assert isinstance(ok_get["audit_id"], int) and ok_get["occurred_at"].endswith("Z")
        assert ok_get["server_region"] == "us-east-1"
        assert list(ok_get) == [
            "audit_id",
            "occurred_at",
            "credential",
            "operation",
            "outcome",
            "worker_id",
            "execution_id",
            "parent_execution_id",
            "server_region",
            "broker_region",
            "kek_version",
            "notes",
        ]
        sealed_ok = next(r for r in rows if r["operation"] == "get_sealed" and r["outcome"] == "ok")
        assert sealed_ok["worker_id"] == "w-audit" and sealed_ok["kek_version"] == "v1"
        dump = json.dumps(rows)
        assert not any(v in dump for v in secret_values)
        # newest first
        assert [r["occurred_at"] for r in rows] == sorted((r["occurred_at"] for r in rows), reverse=True)

        # filters
        assert {r["credential"] for r in await _audit(api, "?credential=stored")} == {"stored"}
        assert len(await _audit(api, "?credential=stored")) == 4
        assert {r["outcome"] for r in await _audit(api, "?outcome=residency_violation")} == {
            "residency_violation"
        }
        assert len(await _audit(api, f"?execution_id={eid}")) == 7
        assert len(await _audit(api, "?limit=0")) == 1
        assert len(await _audit(api, "?limit=3")) == 3
        frm = t0.isoformat().replace("+00:00", "Z")
        assert len(await _audit(api, f"?from={frm}")) == 9
        assert await _audit(api, f"?to={frm}") == []
        future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        assert len(await _audit(api, f"?from={t0.isoformat()}&to={future}")) == 9  # unencoded '+'
        assert (await api.get("/api/internal/secret-audit?limit=x", headers=AUTH))[0] == 400
        assert (await api.get("/api/internal/secret-audit?from=yesterday", headers=AUTH))[0] == 400


async def _rows_when(api: Api, n: int) -> list[dict[str, Any]] | None:
    rows = await _audit(api)
    return rows if len(rows) >= n else None


async def test_audit_modes_when_the_insert_fails(db_dsn: str) -> None:
    """61: strict → the value is withheld (500, failed_strict); async → returned (dropped_async)."""
    conn = await _db(db_dsn)
    try:
        await conn.execute("ALTER TABLE secret_audit RENAME TO secret_audit_moved")
    finally:
        await conn.close()
    async with running_api(settings(db_dsn, NOETL_SECRET_AUDIT_REQUIRED=" Yes ")) as strict:
        await strict.post("/api/credentials", json={"name": "s", "type": "x", "data": {"v": "strict-61"}})
        status, body = await strict.get("/api/credentials/s?include_data=true")
        assert status == 500 and "strict-61" not in json.dumps(body)
        labels = {"operation": "get_credential", "outcome": "ok", "status": "failed_strict"}
        assert sample(strict, "noetl_secret_audit_writes_total", **labels) == 1
    async with running_api(settings(db_dsn)) as relaxed:
        status, body = await relaxed.get("/api/credentials/s?include_data=true")
        assert status == 200 and body["data"] == {"v": "strict-61"}
        labels = {"operation": "get_credential", "outcome": "ok", "status": "dropped_async"}

        async def dropped() -> bool:
            return sample(relaxed, "noetl_secret_audit_writes_total", **labels) == 1

        await eventually(dropped, what="dropped_async")
