"""Push-ingress envelope, header directives and workload (gateway.md §11.4–§11.5); pure functions."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

AUTH_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
ROUTING = frozenset({"dispatch.playbook", "dispatch.execution_pool"})
FREE = frozenset({"idempotency_key", "content_type", "schema_hint"})
CONTROLS = ROUTING | FREE | {"priority"}
TRACEPARENT_RE = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")

Headers = dict[str, str | list[str]]


def _visible(value: str) -> bool:
    return all(32 <= ord(c) < 127 or c == "\t" for c in value)


def normalise_headers(items: Iterable[tuple[str, str]]) -> Headers:
    """Lower-cased names; repeated headers collapse to a list; non-visible-ASCII values dropped."""
    out: Headers = {}
    for name, value in items:
        if not _visible(value):
            continue
        key = name.lower()
        prev = out.get(key)
        if prev is None:
            out[key] = value
        elif isinstance(prev, list):
            prev.append(value)
        else:
            out[key] = [prev, value]
    return out


def _last(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        return value[-1] if value else None
    return value


def _first(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _json_or_text(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw.decode("utf-8", "replace")


@dataclass
class Message:
    """A verified delivery: envelope, directive channel and message id."""

    envelope: dict[str, Any]
    channel: Headers
    message_id: str


def build_message(source: str, body: bytes, headers: Headers, signature_header: str | None) -> Message:
    """The envelope of §11.4 for a webhook or a Pub/Sub push body."""
    if source == "pubsub":
        parsed = _json_or_text(body)
        msg = parsed.get("message") if isinstance(parsed, dict) else None
        if isinstance(msg, dict):
            return _pubsub(msg)
    strip = AUTH_HEADERS | ({signature_header.lower()} if signature_header else set())
    safe = {k: v for k, v in headers.items() if k not in strip}
    mid = _first(headers.get("x-message-id")) or str(uuid.uuid4())
    envelope = {
        "id": mid,
        "data": _json_or_text(body),
        "headers": safe,
        "attributes": {},
        "metadata": {"source": source, "mode": "push"},
    }
    return Message(envelope, safe, mid)


def _pubsub(msg: dict[str, Any]) -> Message:
    raw = msg.get("data")
    data: Any = None
    if isinstance(raw, str) and raw:
        try:
            data = _json_or_text(base64.b64decode(raw, validate=True))
        except (binascii.Error, ValueError):
            data = raw  # undecodable base64 is kept as the raw string
    attrs = msg.get("attributes")
    attributes: dict[str, Any] = attrs if isinstance(attrs, dict) else {}
    channel: Headers = {str(k).lower(): str(v) for k, v in attributes.items()}
    mid = msg.get("messageId") or msg.get("message_id") or str(uuid.uuid4())
    envelope = {
        "id": str(mid),
        "data": data,
        "headers": channel,
        "attributes": attributes,
        "metadata": {"source": "pubsub", "mode": "push"},
    }
    return Message(envelope, channel, str(mid))


@dataclass
class Directives:
    """What the allowlisted headers changed."""

    playbook: str | None = None
    pool: str | None = None
    free: dict[str, str] = field(default_factory=dict)
    applied: list[dict[str, Any]] = field(default_factory=list)
    trace: dict[str, str] | None = None


def _valid_block(block: Any) -> bool:
    if not isinstance(block, dict):
        return False
    items = block.get("directives", [])
    if not isinstance(items, list):
        return False
    for d in items:
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("header"), str)
            or d.get("controls") not in CONTROLS
        ):
            return False
        if d["controls"] in ROUTING and not (isinstance(d.get("allowed"), list) and d["allowed"]):
            return False
        if d["controls"] == "priority" and not (isinstance(d.get("map"), dict) and d["map"]):
            return False
    trace = block.get("trace")
    return trace is None or (isinstance(trace, dict) and trace.get("propagate", "none") in {"none", "w3c"})


def resolve_directives(block: Any, channel: Headers) -> Directives:
    """Apply the allowlist of spec.headers to the verified delivery's safe headers (§11.4)."""
    out = Directives()
    if block is None:
        return out
    if not _valid_block(block):
        log.warning("ingress: invalid directive block ignored")
        return out
    mapped_pool: str | None = None
    for d in block.get("directives", []):
        value = _last(channel.get(d["header"].lower()))
        if value is None:
            continue
        controls = d["controls"]
        effective: str | None = None
        if controls in ROUTING:
            if value in [str(a) for a in d["allowed"]]:
                effective = value
                if controls == "dispatch.playbook":
                    out.playbook = value
                else:
                    out.pool = value
        elif controls == "priority":
            target = d["map"].get(value)
            if isinstance(target, str) and target:
                effective = mapped_pool = target
        else:
            effective = out.free[controls] = value
        if effective is not None:
            out.applied.append(
                {"header": d["header"].lower(), "controls": controls, "effective_value": effective}
            )
    if out.pool is None:
        out.pool = mapped_pool  # an explicit dispatch.execution_pool wins regardless of order
    trace = block.get("trace") or {}
    if trace.get("propagate") == "w3c":
        out.trace = _w3c(channel, trace.get("baggage_allowlist") or [])
    return out


def _w3c(channel: Headers, allow: list[Any]) -> dict[str, str] | None:
    found: dict[str, str] = {}
    parent = _last(channel.get("traceparent"))
    if parent and TRACEPARENT_RE.match(parent.strip()):
        found["traceparent"] = parent.strip()
    state = _last(channel.get("tracestate"))
    if state:
        found["tracestate"] = state
    baggage = _last(channel.get("baggage"))
    if baggage:
        names = {str(a) for a in allow}
        kept = [m.strip() for m in baggage.split(",") if m.split("=", 1)[0].strip() in names]
        if kept:
            found["baggage"] = ",".join(kept)
    return found or None


def workload(cfg: dict[str, Any], message: Message, directives: Directives) -> dict[str, Any]:
    """The workload of §11.5."""
    env = message.envelope
    out: dict[str, Any] = {"message": env, "subscription": cfg.get("catalog_path"), "source": cfg["source"]}
    payload_from = cfg.get("dispatch", {}).get("payload_from") or "message.json"
    primary: Any
    if payload_from == "message.attributes":
        primary = env["attributes"]
    elif payload_from == "message.body":
        data = env["data"]
        primary = "" if data is None else data if isinstance(data, str) else json.dumps(data)
    else:
        primary = env["data"]
    if isinstance(primary, dict):
        for key, value in primary.items():
            out.setdefault(key, value)
    else:
        out["body"] = primary
    for name in ("idempotency_key", "content_type"):
        if name in directives.free:
            out[name] = directives.free[name]
    return out
