"""The `nats` tool (playbook-dsl.md §2.3.9): KV, object store and JetStream operations with nats-py."""

from __future__ import annotations

import base64
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext

from app.worker.credentials import nats_params
from app.worker.tools._auth import resolve_auth
from app.worker.tools._cancel import cancellable, seconds
from app.worker.tools.base import ToolContext, ToolError

DEFAULT_TIMEOUT = 30.0
MAX_CONSUME = 1000

Op = Callable[[JetStreamContext, Mapping[str, Any]], Awaitable[dict[str, Any]]]


def _require(config: Mapping[str, Any], *names: str) -> str:
    for name in names:
        value = config.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip()
    raise ToolError(f"nats {config.get('operation')}: {names[0]} is required", code="invalid_config")


def _encode(value: Any) -> bytes:
    if value is None:
        return b""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _decode(raw: bytes | None) -> Any:
    """Text values back as text, JSON text as the value it encodes, binary as base64."""
    if raw is None:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(raw).decode("ascii")}
    try:
        return json.loads(text)
    except ValueError:
        return text


def _subject_match(pattern: str, subject: str) -> bool:
    """NATS wildcard match: `*` one token, `>` the rest."""
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)


# ------------------------------------------------------------------ key/value


async def _kv(js: JetStreamContext, config: Mapping[str, Any]) -> Any:
    bucket = _require(config, "bucket")
    try:
        return await js.key_value(bucket)
    except nats.js.errors.NotFoundError:
        raise ToolError(f"nats: KV bucket '{bucket}' does not exist", code="bucket_not_found") from None


async def kv_get(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    kv, key, bucket = await _kv(js, config), _require(config, "key"), _require(config, "bucket")
    base = {"bucket": bucket, "key": key}
    try:
        entry = await kv.get(key)
    except nats.js.errors.KeyNotFoundError:
        return {"status": "not_found", **base, "value": None}
    return {"status": "success", **base, "value": _decode(entry.value), "revision": entry.revision}


async def kv_put(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    kv, key, bucket = await _kv(js, config), _require(config, "key"), _require(config, "bucket")
    value = _encode(config.get("value", config.get("data")))
    ttl = seconds(config.get("ttl"))
    if ttl is not None:
        # Per-message TTL needs a bucket created with it allowed (NATS 2.11+); publish on the KV subject.
        ack = await js.publish(f"$KV.{bucket}.{key}", value, msg_ttl=ttl)
        revision = ack.seq
    else:
        revision = await kv.put(key, value)
    return {"status": "success", "bucket": bucket, "key": key, "revision": revision}


async def kv_delete(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    kv, key, bucket = await _kv(js, config), _require(config, "key"), _require(config, "bucket")
    await kv.delete(key)
    return {"status": "success", "bucket": bucket, "key": key}


async def kv_purge(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    kv, key, bucket = await _kv(js, config), _require(config, "key"), _require(config, "bucket")
    await kv.purge(key)
    return {"status": "success", "bucket": bucket, "key": key}


async def kv_keys(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    kv, bucket = await _kv(js, config), _require(config, "bucket")
    try:
        keys = await kv.keys()
    except nats.js.errors.NoKeysError:
        keys = []
    pattern = config.get("pattern")
    if isinstance(pattern, str) and pattern.strip():
        keys = [k for k in keys if _subject_match(pattern.strip(), k)]
    return {"status": "success", "bucket": bucket, "keys": sorted(keys), "count": len(keys)}


# ------------------------------------------------------------------ object store


async def _obj(js: JetStreamContext, config: Mapping[str, Any]) -> Any:
    bucket = _require(config, "bucket")
    try:
        return await js.object_store(bucket)
    except nats.js.errors.NotFoundError:
        raise ToolError(f"nats: object bucket '{bucket}' does not exist", code="bucket_not_found") from None


async def object_put(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    store, name = await _obj(js, config), _require(config, "name", "key")
    info = await store.put(name, _encode(config.get("data", config.get("value"))))
    return {
        "status": "success",
        "bucket": info.bucket,
        "name": name,
        "size": info.size,
        "digest": info.digest,
    }


async def object_get(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    store, name = await _obj(js, config), _require(config, "name", "key")
    bucket = str(config.get("bucket"))
    try:
        res = await store.get(name)
    except nats.js.errors.NotFoundError:
        return {"status": "not_found", "bucket": bucket, "name": name, "data": None}
    return {
        "status": "success",
        "bucket": bucket,
        "name": name,
        "data": _decode(res.data),
        "size": res.info.size,
    }


async def object_delete(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    store, name = await _obj(js, config), _require(config, "name", "key")
    bucket = str(config.get("bucket"))
    try:
        await store.delete(name)
    except nats.js.errors.NotFoundError:
        return {"status": "not_found", "bucket": bucket, "name": name}
    return {"status": "success", "bucket": bucket, "name": name}


async def object_list(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    store = await _obj(js, config)
    try:
        infos = await store.list(ignore_deletes=True)
    except nats.js.errors.NotFoundError:
        infos = []
    objects = [{"name": i.name, "size": i.size, "digest": i.digest, "mtime": i.mtime} for i in infos]
    return {
        "status": "success",
        "bucket": str(config.get("bucket")),
        "objects": objects,
        "count": len(objects),
    }


# ------------------------------------------------------------------ JetStream


def _headers(raw: Any) -> dict[str, str] | None:
    if not isinstance(raw, Mapping) or not raw:
        return None
    return {str(k): str(v) for k, v in raw.items() if v is not None}


MAX_BATCH = 1000


async def _publish_each(js: JetStreamContext, item: Mapping[str, Any], stream: str | None) -> dict[str, Any]:
    """One message of a batch; a failure is reported in its result, never raised."""
    subject = item.get("subject")
    out: dict[str, Any] = {"id": item.get("id"), "subject": subject}
    if not isinstance(subject, str) or not subject.strip():
        return {**out, "error": "subject is required"}
    headers = _headers(item.get("headers")) or {}
    if item.get("msg_id") not in (None, ""):
        headers["Nats-Msg-Id"] = str(item["msg_id"])
    try:
        ack = await js.publish(subject, _encode(item.get("data")), stream=stream, headers=headers or None)
    except nats.js.errors.APIError as exc:
        return {**out, "error": exc.description or "server error"}
    except (nats.errors.Error, TimeoutError) as exc:
        return {**out, "error": type(exc).__name__}
    return {**out, "stream": ack.stream, "seq": ack.seq, "duplicate": bool(ack.duplicate)}


async def _publish_batch(js: JetStreamContext, config: Mapping[str, Any], messages: Any) -> dict[str, Any]:
    # Extension for relays such as system/outbox_publisher: one command publishes a whole claim batch.
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise ToolError("nats js_publish: messages must be a list of objects", code="invalid_config")
    if len(messages) > MAX_BATCH:
        raise ToolError(f"nats js_publish: at most {MAX_BATCH} messages per call", code="invalid_config")
    stream = config.get("stream") if isinstance(config.get("stream"), str) else None
    results = [await _publish_each(js, m, stream) for m in messages]
    failed = sum(1 for r in results if "error" in r)
    return {"status": "success", "published": len(results) - failed, "failed": failed, "results": results}


async def js_publish(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    if config.get("messages") is not None:
        return await _publish_batch(js, config, config["messages"])
    subject = _require(config, "subject", "name")
    stream = config.get("stream") if isinstance(config.get("stream"), str) else None
    headers = _headers(config.get("headers")) or {}
    msg_id = config.get("msg_id")
    if msg_id not in (None, ""):
        headers["Nats-Msg-Id"] = str(msg_id)
    ack = await js.publish(
        subject, _encode(config.get("data", config.get("value"))), stream=stream, headers=headers or None
    )
    return {
        "status": "success",
        "subject": subject,
        "stream": ack.stream,
        "seq": ack.seq,
        "duplicate": bool(ack.duplicate),
    }


def _message(msg: Any, stream: str) -> dict[str, Any]:
    return {
        "subject": msg.subject,
        "seq": msg.seq,
        "stream": stream,
        "data": _decode(msg.data),
        "headers": dict(msg.headers or {}),
    }


async def js_get_msg(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    stream = _require(config, "stream")
    seq = config.get("seq", config.get("sequence"))
    subject = config.get("subject") or config.get("last_by_subject")
    if seq in (None, "") and not subject:
        raise ToolError("nats js_get_msg: seq or subject is required", code="invalid_config")
    try:
        if seq not in (None, ""):
            msg = await js.get_msg(stream, seq=int(seq))
        else:
            msg = await js.get_last_msg(stream, str(subject))
    except nats.js.errors.NotFoundError:
        return {"status": "not_found", "stream": stream, "seq": seq, "subject": subject, "data": None}
    return {"status": "success", **_message(msg, stream)}


async def js_consume(js: JetStreamContext, config: Mapping[str, Any]) -> dict[str, Any]:
    stream = _require(config, "stream")
    subject = config.get("subject") if isinstance(config.get("subject"), str) else None
    durable = config.get("consumer") or config.get("durable")
    batch = max(1, min(MAX_CONSUME, int(config.get("batch", config.get("max_messages", 10)) or 10)))
    wait = seconds(config.get("fetch_timeout", config.get("wait"))) or 2.0
    sub = await js.pull_subscribe(subject or "", durable=str(durable) if durable else None, stream=stream)
    messages: list[dict[str, Any]] = []
    try:
        try:
            fetched = await sub.fetch(batch, timeout=wait)
        except (nats.errors.TimeoutError, TimeoutError):
            fetched = []
        for msg in fetched:
            meta = msg.metadata
            messages.append(
                {
                    "subject": msg.subject,
                    "seq": meta.sequence.stream,
                    "stream": stream,
                    "data": _decode(msg.data),
                    "headers": dict(msg.headers or {}),
                }
            )
            if config.get("ack", True) is not False:
                await msg.ack()
    finally:
        await sub.unsubscribe()
    return {"status": "success", "stream": stream, "messages": messages, "count": len(messages)}


OPERATIONS: dict[str, Op] = {
    "kv_get": kv_get,
    "kv_put": kv_put,
    "kv_delete": kv_delete,
    "kv_keys": kv_keys,
    "kv_purge": kv_purge,
    "object_put": object_put,
    "object_get": object_get,
    "object_delete": object_delete,
    "object_list": object_list,
    "js_publish": js_publish,
    "js_get_msg": js_get_msg,
    "js_consume": js_consume,
}


async def _connect(config: Mapping[str, Any], ctx: ToolContext) -> Client:
    credential = await resolve_auth(config.get("auth"), ctx.credentials, want="nats")
    params = nats_params(credential) if credential else {}
    if "servers" not in params:
        url = config.get("nats_url") or ctx.nats_url
        if not url:
            raise ToolError("nats: no server (set auth to a nats credential)", code="invalid_config")
        params["servers"] = [s.strip() for s in str(url).split(",") if s.strip()]
    try:
        return await nats.connect(
            **params, connect_timeout=5, max_reconnect_attempts=0, allow_reconnect=False
        )
    except (OSError, nats.errors.Error, TimeoutError) as exc:
        raise ToolError(f"nats: connection failed: {type(exc).__name__}", code="connection") from None


async def run(config: dict[str, Any], ctx: ToolContext) -> Any:
    """Run one operation; unknown buckets and server errors raise ToolError."""
    name = str(config.get("operation") or "").strip()
    op = OPERATIONS.get(name)
    if op is None:
        known = ", ".join(OPERATIONS)
        raise ToolError(f"nats: unknown operation '{name}' (expected one of {known})", code="invalid_config")
    timeout = seconds(config.get("timeout", config.get("timeout_seconds"))) or ctx.timeout_seconds
    nc = await _connect(config, ctx)
    try:
        return await cancellable(op(nc.jetstream(), config), ctx, timeout=timeout or DEFAULT_TIMEOUT)
    except nats.js.errors.APIError as exc:
        raise ToolError(
            f"nats {name}: {exc.description or 'server error'}", code=str(exc.err_code or "")
        ) from None
    except (nats.errors.Error, TimeoutError) as exc:
        raise ToolError(f"nats {name}: {type(exc).__name__}", code="nats_error") from None
    finally:
        await nc.close()
