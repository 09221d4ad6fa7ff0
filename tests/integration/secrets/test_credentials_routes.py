"""Credential store routes (secrets.md §3.1, §3.7; §12 cases 32–39, 68) against a real database."""

from __future__ import annotations

import json

import asyncpg

from app.secrets.envelope import parse_record
from tests.integration.secrets.conftest import KEY
from tests.support.server import Api

DB_DATA = {"username": "admin", "password": "s3cr3t-Pa55", "host": "db.example.com"}


async def _post(api: Api, body: dict) -> tuple[int, dict]:
    return await api.post("/api/credentials", json=body)


async def test_round_trip_json_types_and_upsert(api: Api) -> None:
    # 32: POST → 200 without data; id is a string, tags an array
    status, created = await _post(
        api,
        {"name": "pg-main", "type": "postgres", "data": DB_DATA, "meta": {"b": 1, "a": 2}, "tags": ["x"]},
    )
    assert status == 200, created
    assert isinstance(created["id"], str) and int(created["id"]) > 0
    assert "data" not in created
    assert created["tags"] == ["x"] and created["meta"] == {"a": 2, "b": 1}
    assert list(created) == ["id", "name", "type", "meta", "tags", "created_at", "updated_at"]
    assert created["created_at"].endswith("Z")

    # same name → same id, every field replaced; omitted meta/tags become absent (never null)
    status, again = await _post(api, {"name": "pg-main", "credential_type": "mysql", "data": {"k": "v"}})
    assert status == 200, again
    assert again["id"] == created["id"] and again["type"] == "mysql"
    assert "meta" not in again and "tags" not in again and "description" not in again

    # comma-string tags (Python-era clients)
    status, tagged = await _post(api, {"name": "t", "type": "x", "data": {}, "tags": "a, b,,c"})
    assert status == 200 and tagged["tags"] == ["a", "b", "c"]

    # 33: include_data → data with sorted keys; without it → no data key
    async with api.http.get(f"{api.url}/api/credentials/pg-main?include_data=true") as r:
        assert r.status == 200
        raw = await r.text()
    assert '"data":{"k":"v"}' in raw
    body = json.loads(raw)
    assert isinstance(body["id"], str) and body["data"] == {"k": "v"}
    status, plain = await api.get("/api/credentials/pg-main")
    assert status == 200 and "data" not in plain

    await _post(api, {"name": "sorted", "type": "x", "data": {"z": 1, "a": {"y": 2, "b": 3}}})
    async with api.http.get(f"{api.url}/api/credentials/sorted?include_data=true") as r:
        assert '"data":{"a":{"b":3,"y":2},"z":1}' in await r.text()

    # by id
    status, by_id = await api.get(f"/api/credentials/{created['id']}?include_data=true")
    assert status == 200 and by_id["name"] == "pg-main"


async def test_numeric_name_falls_back_and_404(api: Api) -> None:
    # 34: a numeric identifier that matches no id but a name
    assert (await _post(api, {"name": "12345", "type": "x", "data": {"a": 1}}))[0] == 200
    status, body = await api.get("/api/credentials/12345?include_data=true")
    assert status == 200 and body["name"] == "12345" and body["data"] == {"a": 1}
    # 35: unknown → 404 with the exact body
    status, body = await api.get("/api/credentials/x")
    assert status == 404
    assert body["error"] == "Credential 'x' not found" and body["status"] == 404
    status, body = await api.get("/api/credentials/x?include_data=true")
    assert status == 404 and body["error"] == "Credential 'x' not found"


async def test_request_rejections(api: Api) -> None:
    await _post(api, {"name": "c", "type": "x", "data": {}})
    # 36
    assert (await api.get("/api/credentials/c?include_data=1"))[0] == 400
    assert (await api.get("/api/credentials/c?include_data=true&execution_id=abc"))[0] == 400
    # 37 / 68: 2 MiB + 1 → 413; missing type → 422; text/plain → 415; malformed JSON → 400
    big = b'{"name":"big","type":"x","data":"' + b"a" * (2 * 1024 * 1024) + b'"}'
    status, body, _ = await api.request(
        "POST", "/api/credentials", data=big, headers={"Content-Type": "application/json"}
    )
    assert status == 413 and body["status"] == 413
    status, body = await _post(api, {"name": "n", "data": {}})
    assert status == 422 and body["status"] == 422
    status, body = await _post(api, {"name": "", "type": "x", "data": {}})
    assert status == 422
    status, body = await _post(api, {"name": "n", "type": "x"})
    assert status == 422
    status, _, _ = await api.request(
        "POST",
        "/api/credentials",
        data=b'{"name":"n","type":"x","data":{}}',
        headers={"Content-Type": "text/plain"},
    )
    assert status == 415
    status, _, _ = await api.request(
        "POST", "/api/credentials", data=b'{"name":', headers={"Content-Type": "application/json"}
    )
    assert status == 400
    # a value just under the limit is accepted (large values pass through)
    value = "v" * (1024 * 1024)
    assert (await _post(api, {"name": "mib", "type": "x", "data": {"blob": value}}))[0] == 200
    status, body = await api.get("/api/credentials/mib?include_data=true")
    assert status == 200 and body["data"]["blob"] == value


async def test_delete_and_list(api: Api) -> None:
    _, a = await _post(api, {"name": "alpha", "type": "postgres", "data": {}, "description": "primary 100%"})
    await _post(api, {"name": "beta", "type": "http", "data": {}})
    # 39: no parameters → no filter key; newest first; items never carry data
    status, listing = await api.get("/api/credentials")
    assert status == 200 and "filter" not in listing
    assert [i["name"] for i in listing["items"]] == ["beta", "alpha"]
    assert all("data" not in i for i in listing["items"])
    status, listing = await api.get("/api/credentials?type=postgres")
    assert listing["filter"] == {"type": "postgres"} and [i["name"] for i in listing["items"]] == ["alpha"]
    status, listing = await api.get("/api/credentials?q=100%25")
    assert listing["filter"] == {"q": "100%"} and [i["name"] for i in listing["items"]] == ["alpha"]
    status, listing = await api.get("/api/credentials?q=_")
    assert listing["items"] == []  # '_' is escaped, not a wildcard
    # 38: DELETE → message + id; again → 404
    status, body, _ = await api.request("DELETE", "/api/credentials/alpha")
    assert status == 200 and body == {"message": "Credential deleted successfully", "id": a["id"]}
    status, body, _ = await api.request("DELETE", "/api/credentials/alpha")
    assert status == 404 and body["error"] == "Credential 'alpha' not found"


async def test_envelope_at_rest(api: Api, db_dsn: str) -> None:
    """The column holds an E1 envelope (local KEK v1) and never the plaintext."""
    secret = "plain-text-never-stored-9f8e"
    await _post(api, {"name": "rest", "type": "x", "data": {"password": secret}})
    conn = await asyncpg.connect(db_dsn)
    try:
        raw = await conn.fetchval("SELECT data_encrypted FROM noetl.credential WHERE name = 'rest'")
        dump = await conn.fetchval("SELECT row_to_json(c)::text FROM noetl.credential c WHERE name = 'rest'")
    finally:
        await conn.close()
    assert secret not in raw and secret not in dump and "password" not in raw
    rec = parse_record(raw)
    assert (rec.v, rec.alg, rec.p, rec.kid, rec.kv) == (
        1,
        "AES-256-GCM",
        "local",
        "env:NOETL_ENCRYPTION_KEY",
        "v1",
    )
    assert raw.startswith('{"v":1,"alg":')
    assert KEY not in raw
