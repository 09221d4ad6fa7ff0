"""The nats tool against the shared test NATS server (buckets and streams unique per test)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from nats.js.api import StreamConfig

from app.worker.tools import nats as nats_tool
from app.worker.tools.base import ToolError
from tests.support.tool_context import StaticCredentials, make_ctx
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def js(nats_url: str) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_url)
    yield nc.jetstream()
    await nc.close()


def uid() -> str:
    return uuid.uuid4().hex[:10]


async def test_kv_operations(nats_url: str, js: Any) -> None:
    bucket = f"tool_kv_{uid()}"
    await js.create_key_value(bucket=bucket)
    try:
        ctx = make_ctx(nats_url=nats_url)

        async def op(operation: str, **cfg: Any) -> Any:
            return await nats_tool.run({"operation": operation, "bucket": bucket, **cfg}, ctx)

        missing = await op("kv_get", key="k1")
        assert missing == {"status": "not_found", "bucket": bucket, "key": "k1", "value": None}
        put = await op("kv_put", key="k1", value={"a": [1, 2]})
        assert put["status"] == "success" and put["bucket"] == bucket and put["key"] == "k1"
        assert isinstance(put["revision"], int) and put["revision"] >= 1
        await op("kv_put", key="k2", value="plain")
        await op("kv_put", key="other.x", value=3)
        got = await op("kv_get", key="k1")
        assert got["status"] == "success" and got["value"] == {"a": [1, 2]}
        assert (await op("kv_get", key="k2"))["value"] == "plain"
        keys = await op("kv_keys")
        assert keys["keys"] == ["k1", "k2", "other.x"]
        assert (await op("kv_keys", pattern="other.*"))["keys"] == ["other.x"]
        assert (await op("kv_delete", key="k1"))["status"] == "success"
        assert (await op("kv_get", key="k1"))["status"] == "not_found"
        assert (await op("kv_purge", key="k2"))["status"] == "success"
        assert (await op("kv_keys"))["keys"] == ["other.x"]
        kv = await js.key_value(bucket)
        assert (await kv.get("other.x")).value == b"3"
    finally:
        await js.delete_key_value(bucket)


async def test_missing_bucket_is_an_error(nats_url: str) -> None:
    with pytest.raises(ToolError) as err:
        await nats_tool.run(
            {"operation": "kv_get", "bucket": f"nope_{uid()}", "key": "k"}, make_ctx(nats_url=nats_url)
        )
    assert err.value.code == "bucket_not_found"


async def test_unknown_operation(nats_url: str) -> None:
    with pytest.raises(ToolError, match="unknown operation 'kv_frob'"):
        await nats_tool.run({"operation": "kv_frob"}, make_ctx(nats_url=nats_url))


async def test_js_publish_get_and_consume(nats_url: str, js: Any) -> None:
    stream, subject = f"TOOL_{uid()}", f"tool.{uid()}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject}.>"]))
    try:
        ctx = make_ctx(nats_url=nats_url)
        pub = await nats_tool.run(
            {"operation": "js_publish", "subject": f"{subject}.a", "data": {"n": 1}, "msg_id": "m-1"}, ctx
        )
        assert pub == {
            "status": "success",
            "subject": f"{subject}.a",
            "stream": stream,
            "seq": 1,
            "duplicate": False,
        }
        dup = await nats_tool.run(
            {"operation": "js_publish", "subject": f"{subject}.a", "data": {"n": 1}, "msg_id": "m-1"}, ctx
        )
        assert dup["duplicate"] is True
        await nats_tool.run({"operation": "js_publish", "subject": f"{subject}.b", "data": "two"}, ctx)
        msg = await js.get_msg(stream, seq=1)
        assert msg.data == b'{"n":1}'
        got = await nats_tool.run({"operation": "js_get_msg", "stream": stream, "seq": 2}, ctx)
        assert got["status"] == "success" and got["data"] == "two" and got["subject"] == f"{subject}.b"
        last = await nats_tool.run(
            {"operation": "js_get_msg", "stream": stream, "subject": f"{subject}.a"}, ctx
        )
        assert last["seq"] == 1 and last["data"] == {"n": 1}
        consumed = await nats_tool.run(
            {"operation": "js_consume", "stream": stream, "subject": f"{subject}.>", "batch": 5, "wait": 1},
            ctx,
        )
        assert consumed["count"] == 2 and [m["data"] for m in consumed["messages"]] == [{"n": 1}, "two"]
    finally:
        await js.delete_stream(stream)


async def test_js_publish_batch_reports_each_message(nats_url: str, js: Any) -> None:
    stream, subject = f"TOOL_{uid()}", f"tool.{uid()}"
    await js.add_stream(StreamConfig(name=stream, subjects=[f"{subject}.>"]))
    try:
        ctx = make_ctx(nats_url=nats_url)
        messages = [
            {"id": 1, "subject": f"{subject}.a", "data": {"n": 1}, "msg_id": "b-1"},
            {"id": 2, "subject": "no.stream.here", "data": {"n": 2}, "msg_id": "b-2"},
            {"id": 3, "subject": f"{subject}.b", "data": {"n": 3}, "msg_id": "b-1"},
            {"id": 4, "data": {}},
        ]
        out = await nats_tool.run({"operation": "js_publish", "messages": messages}, ctx)
        assert out["status"] == "success" and (out["published"], out["failed"]) == (2, 2)
        by_id = {r["id"]: r for r in out["results"]}
        assert by_id[1]["seq"] == 1 and by_id[1]["duplicate"] is False
        assert "error" in by_id[2] and "seq" not in by_id[2]
        assert by_id[3]["duplicate"] is True  # same Nats-Msg-Id as message 1
        assert by_id[4]["error"] == "subject is required"
        assert (await js.stream_info(stream)).state.messages == 1
        with pytest.raises(ToolError, match="messages must be a list"):
            await nats_tool.run({"operation": "js_publish", "messages": {"subject": "x"}}, ctx)
    finally:
        await js.delete_stream(stream)


async def test_object_store(nats_url: str, js: Any) -> None:
    bucket = f"tool_obj_{uid()}"
    await js.create_object_store(bucket=bucket)
    try:
        ctx = make_ctx(nats_url=nats_url)

        async def op(operation: str, **cfg: Any) -> Any:
            return await nats_tool.run({"operation": operation, "bucket": bucket, **cfg}, ctx)

        put = await op("object_put", name="report.json", data={"rows": 3})
        assert put["status"] == "success" and put["size"] == len(b'{"rows":3}')
        assert (await op("object_get", name="report.json"))["data"] == {"rows": 3}
        listed = await op("object_list")
        assert [o["name"] for o in listed["objects"]] == ["report.json"]
        assert (await op("object_delete", name="report.json"))["status"] == "success"
        assert (await op("object_get", name="report.json"))["status"] == "not_found"
    finally:
        await js.delete_object_store(bucket)


async def test_connection_from_a_nats_credential(nats_url: str, js: Any) -> None:
    bucket = f"tool_kv_{uid()}"
    await js.create_key_value(bucket=bucket)
    try:
        creds = StaticCredentials({"bus": {"type": "nats", "data": {"nats_url": nats_url}}})
        ctx = make_ctx(
            credentials=creds, nats_url="nats://127.0.0.1:1"
        )  # ctx url would fail: the credential wins
        res = await nats_tool.run(
            {"operation": "kv_put", "auth": "bus", "bucket": bucket, "key": "k", "value": 1}, ctx
        )
        assert res["status"] == "success" and creds.asked == ["bus"]
    finally:
        await js.delete_key_value(bucket)


async def test_kv_put_with_ttl_expires(nats_url: str, js: Any) -> None:
    bucket = f"tool_kv_{uid()}"
    await js.create_key_value(bucket=bucket)  # nats-py buckets allow per-message TTL
    try:
        ctx = make_ctx(nats_url=nats_url)
        put = await nats_tool.run(
            {"operation": "kv_put", "bucket": bucket, "key": "t", "value": "v", "ttl": 1}, ctx
        )
        assert put["status"] == "success" and put["revision"] >= 1
        assert (await nats_tool.run({"operation": "kv_get", "bucket": bucket, "key": "t"}, ctx))[
            "value"
        ] == "v"

        async def expired() -> bool:
            got = await nats_tool.run({"operation": "kv_get", "bucket": bucket, "key": "t"}, ctx)
            return bool(got["status"] == "not_found")

        await eventually(expired, timeout=10, interval=0.2, what="the key to expire")
    finally:
        await js.delete_key_value(bucket)
