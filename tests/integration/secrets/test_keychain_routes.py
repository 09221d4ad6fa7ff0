"""Keychain cache API (secrets.md §3.3; §12 cases 42, 43, 68) in the shapes the NoETL Python worker reads."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from tests.integration.secrets.conftest import start_execution
from tests.support.server import Api


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


async def _catalog(api: Api) -> int:
    catalog_id, _ = await start_execution(api, "tests/secrets/kcapi", "- name: unused\n  kind: secrets")
    return catalog_id


async def test_set_get_expire_delete_list(api: Api, db_dsn: str) -> None:
    cid = await _catalog(api)
    base = f"/api/keychain/{cid}"
    # expires_in: 60 → expires_at ≈ now + 60
    before = datetime.now(UTC)
    status, body = await api.post(f"{base}/tok", json={"data": {"b": 2, "a": 1}, "expires_in": 60})
    assert status == 200, body
    assert body["status"] == "success" and body["catalog_id"] == str(cid)
    assert body["cache_key"] == f"tok:{cid}:global" and body["keychain_name"] == "tok"
    assert abs((_ts(body["expires_at"]) - (before + timedelta(seconds=60))).total_seconds()) < 5
    assert 55 <= body["ttl_seconds"] <= 60 and body["auto_renew"] is False
    # GET twice: access_count 1 then 2, token_data == data, sorted keys
    status, got = await api.get(f"{base}/tok")
    assert status == 200 and got["status"] == "success" and got["access_count"] == 1
    assert got["data"] == {"a": 1, "b": 2} and got["token_data"] == got["data"]
    assert list(got["data"]) == ["a", "b"]
    assert got["expired"] is False and got["catalog_id"] == str(cid) and got["scope_type"] == "global"
    assert got["credential_type"] == "secret" and got["cache_type"] == "secret"
    assert got["accessed_at"].endswith("Z")
    assert (await api.get(f"{base}/tok"))[1]["access_count"] == 2
    # the Python worker's body: token_data + ttl_seconds + credential_type + cache_type
    status, body = await api.post(
        f"{base}/py",
        json={
            "token_data": {"access_token": "t"},
            "ttl_seconds": 120,
            "credential_type": "oauth2",
            "cache_type": "token",
            "scope_type": "local",
            "execution_id": "77",
            "auto_renew": True,
            "renew_config": {"url": "x"},
        },
    )
    assert status == 200 and body["cache_key"] == f"py:{cid}:77" and body["auto_renew"] is True
    status, got = await api.get(f"{base}/py?scope_type=local&execution_id=77")
    assert got["status"] == "success" and got["token_data"] == {"access_token": "t"}
    assert (
        got["cache_type"] == "token"
        and got["credential_type"] == "oauth2"
        and got["renew_config"] == {"url": "x"}
    )
    # expires_at wins over expires_in
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    status, body = await api.post(
        f"{base}/both",
        json={"data": "s", "expires_at": at.isoformat().replace("+00:00", "Z"), "expires_in": 5},
    )
    assert status == 200 and _ts(body["expires_at"]) == at
    # neither → 422; no data → 422; bad cache_type → 422
    status, body = await api.post(f"{base}/none", json={"data": "s"})
    assert status == 422 and body["error"] == "expires_at or expires_in is required"
    assert (await api.post(f"{base}/none", json={"expires_in": 5}))[0] == 422
    assert (await api.post(f"{base}/none", json={"data": 1, "expires_in": 5, "cache_type": "x"}))[0] == 422
    # past expiry → expired, no data, no bump
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    await api.post(f"{base}/old", json={"data": {"v": 1}, "expires_at": past})
    status, got = await api.get(f"{base}/old")
    assert status == 200 and got["status"] == "expired" and got["expired"] is True and "data" not in got
    assert got["access_count"] == 0 and "token_data" not in got
    # not found
    assert (await api.get(f"{base}/absent"))[1] == {"status": "not_found"}
    # list: catalog_id and execution_id as strings, never data
    status, listing = await api.get(f"/api/keychain/catalog/{cid}")
    assert status == 200 and listing["status"] == "success" and listing["catalog_id"] == str(cid)
    assert listing["count"] == 4 and len(listing["entries"]) == 4
    by_name = {e["keychain_name"]: e for e in listing["entries"]}
    assert by_name["py"]["execution_id"] == "77" and "execution_id" not in by_name["tok"]
    assert by_name["old"]["expired"] is True and by_name["tok"]["access_count"] == 2
    assert all("data" not in e and "token_data" not in e for e in listing["entries"])
    # DELETE twice
    status, body, _ = await api.request("DELETE", f"{base}/tok")
    assert body == {"status": "deleted", "cache_key": f"tok:{cid}:global"}
    assert (await api.request("DELETE", f"{base}/tok"))[1] == {"status": "not_found"}
    # values are encrypted at rest
    conn = await asyncpg.connect(db_dsn)
    try:
        raws = [r[0] for r in await conn.fetch("SELECT data_encrypted FROM noetl.keychain")]
    finally:
        await conn.close()
    assert raws and all(r.startswith('{"v":1,') and "access_token" not in r for r in raws)


async def test_cache_keys_and_rejections(api: Api) -> None:
    cid = await _catalog(api)
    cases = [
        ("local", "5", f"n:{cid}:5"),
        ("local", None, f"n:{cid}:local"),
        ("shared", "5", f"n:{cid}:shared:5"),
        ("shared", None, f"n:{cid}:shared"),
        ("global", "5", f"n:{cid}:global"),
        ("global", None, f"n:{cid}:global"),
    ]
    for scope, eid, expected in cases:  # 43
        body = {"data": 1, "expires_in": 60, "scope_type": scope}
        if eid is not None:
            body["execution_id"] = eid
        status, out = await api.post(f"/api/keychain/{cid}/n", json=body)
        assert status == 200 and out["cache_key"] == expected, (scope, eid, out)
    status, body = await api.get(f"/api/keychain/{cid}/n?scope_type=weird")
    assert status == 422 and body["status"] == 422
    assert (
        await api.post(f"/api/keychain/{cid}/n", json={"data": 1, "expires_in": 1, "scope_type": "weird"})
    )[0] == 422
    assert (await api.get("/api/keychain/abc/n"))[0] == 400  # catalog_id not an i64
    assert (await api.get(f"/api/keychain/{cid}/n?execution_id=x"))[0] == 400
    # unknown catalog → 404; body above 2 MiB → 413
    assert (await api.post("/api/keychain/999/n", json={"data": 1, "expires_in": 60}))[0] == 404
    big = b'{"expires_in":60,"data":"' + b"a" * (2 * 1024 * 1024) + b'"}'
    status, _, _ = await api.request(
        "POST", f"/api/keychain/{cid}/big", data=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413
