"""The push-ingress listener config the gateway asks for (gateway.md §11.2, server-contract §8)."""

from __future__ import annotations

from typing import Any

import yaml

from app.bootstrap import Deps
from app.errors import NotFound, Unavailable, ValidationFailed

SECRET_FIELDS = ("secret", "token", "value", "key", "password")
SECRET_SCHEMES = frozenset({"hmac_sha256", "bearer"})

# Latest non-archived version per path; subscriptions are few, so a scan per cache miss is fine
# (the gateway caches the answer for 30 s per listener).
SUBSCRIPTIONS_SQL = (
    "SELECT DISTINCT ON (path) catalog_id, path, content FROM catalog "
    "WHERE lower(kind) = 'subscription' AND archived_at IS NULL ORDER BY path, version DESC"
)


def listener_of(gateway_path: str) -> str:
    """The last non-empty segment of spec.ingress.gateway_path."""
    return gateway_path.rstrip("/").rsplit("/", 1)[-1]


def _spec(content: str) -> dict[str, Any] | None:
    try:
        doc = yaml.safe_load(content)
    except yaml.YAMLError:
        return None
    spec = doc.get("spec") if isinstance(doc, dict) else None
    return spec if isinstance(spec, dict) else None


def _secret_string(data: Any, alias: str) -> str:
    if isinstance(data, str) and data:
        return data
    if isinstance(data, dict):
        for name in SECRET_FIELDS:
            value = data.get(name)
            if isinstance(value, str) and value:
                return value
    raise ValidationFailed(f"verify secret alias {alias!r} did not yield a string secret")


async def _resolve_secret(deps: Deps, alias: str) -> str:
    if deps.wallet is None:
        raise Unavailable("secrets wallet not configured: cannot resolve the ingress verify secret")
    try:
        resolved = await deps.wallet.get_with_data(alias, None, None)
    except NotFound:
        # Not a 404: the gateway reads 404 as "unknown listener"; a missing secret is a config error.
        raise ValidationFailed(f"verify secret alias {alias!r} not found in the wallet") from None
    return _secret_string(resolved.data, alias)


def _text(block: dict[str, Any], name: str) -> str | None:
    value = block.get(name)
    return value if isinstance(value, str) and value else None


async def listener_config(deps: Deps, listener: str) -> dict[str, Any]:
    """The §11.2 config of one listener; NotFound when no subscription declares it."""
    found: tuple[Any, dict[str, Any]] | None = None
    for row in await deps.pool.fetch(SUBSCRIPTIONS_SQL):
        spec = _spec(row["content"])
        ingress = spec.get("ingress") if spec else None
        path = ingress.get("gateway_path") if isinstance(ingress, dict) else None
        if spec is not None and isinstance(path, str) and listener_of(path) == listener:
            found = (row, spec)
            break
    if found is None:
        raise NotFound(f"No push subscription for ingress listener '{listener}'")
    row, spec = found
    verify = spec["ingress"].get("verify")
    if not isinstance(verify, dict) or not _text(verify, "type"):
        raise ValidationFailed("subscription ingress has no verify.type")
    vtype = str(verify["type"])
    out_verify: dict[str, Any] = {"type": vtype}
    if header := _text(verify, "header"):
        out_verify["header"] = header.lower()
    for name in ("audience", "service_account"):
        if value := _text(verify, name):
            out_verify[name] = value
    if vtype in SECRET_SCHEMES:
        alias = _text(verify, "secret")
        if alias is None:
            raise ValidationFailed(f"ingress.verify.secret (a wallet alias) is required for {vtype!r}")
        out_verify["secret"] = await _resolve_secret(deps, alias)
    dispatch = spec.get("dispatch")
    if not isinstance(dispatch, dict) or not _text(dispatch, "playbook"):
        raise ValidationFailed("subscription has no dispatch.playbook")
    out_dispatch: dict[str, Any] = {
        "playbook": dispatch["playbook"],
        "payload_from": _text(dispatch, "payload_from") or "message.json",
    }
    if pool := _text(dispatch, "execution_pool"):
        out_dispatch["execution_pool"] = pool
    out: dict[str, Any] = {
        "listener": listener,
        "catalog_path": row["path"],
        "subscription_id": str(row["catalog_id"]),
        "source": _text(spec, "source") or "webhook",
        "verify": out_verify,
        "dispatch": out_dispatch,
    }
    if spec.get("headers") is not None:
        out["directives"] = spec["headers"]
    return out
