"""Credential/keychain resolution order of secrets.md §4.2 over injected lookups."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from jinja2 import ChainableUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from app.errors import NotFound
from app.secrets.audit import AuditSink, outcome_for
from app.secrets.cache import (
    KEYCHAIN_CACHE_TTL_SECS,
    CacheFor,
    InflightSlots,
    effective_cache_ttl,
    resolver_cache_key,
    should_refresh,
)
from app.secrets.envelope import EnvelopeCipher
from app.secrets.errors import CipherNotConfigured, SecretConfigError
from app.secrets.metrics import SecretsMetrics, region_label
from app.secrets.providers.base import SecretRef
from app.secrets.registry import ProviderRegistry, implementation_id
from app.secrets.residency import Residency, check_residency, effective_region

log = logging.getLogger(__name__)

# Catalog rows are immutable, so parsed keychains are cached; the bound only caps memory.
CATALOG_CACHE_MAX = 4096
TEMPLATE_CACHE_MAX = 4096


# ------------------------------------------------------------------ injected shapes


@dataclass(frozen=True)
class CredentialRecord:
    """A ``noetl.credential`` row as returned by the lead's lookup (id first, then name)."""

    id: int
    name: str
    type: str
    data_encrypted: str = field(repr=False)
    meta: Any = None
    tags: list[str] | None = None
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class StartEvent:
    """The execution's start event: its catalog id and ``context.workload``."""

    catalog_id: int
    workload: Mapping[str, Any]


@dataclass(frozen=True)
class CacheHit:
    """A successful keychain GET (row present, not expired, decrypted, ``access_count`` bumped)."""

    data: Any = field(repr=False)
    expires_at: datetime | None
    kek_version: str | None = None


@dataclass(frozen=True)
class CacheWrite:
    """A keychain upsert in scope ``local``; the row expires at ``expires_at`` (= now + effective TTL)."""

    cache_key: str
    keychain_name: str
    catalog_id: int
    execution_id: int
    data: Any = field(repr=False)
    expires_at: datetime
    credential_type: str = "secret"
    cache_type: str = "secret"
    scope_type: str = "local"


CredentialLookup = Callable[[str], Awaitable[CredentialRecord | None]]
StartEventLookup = Callable[[int], Awaitable[StartEvent | None]]
CatalogLookup = Callable[[int], Awaitable[str | None]]
CacheGet = Callable[[str], Awaitable[CacheHit | None]]
CachePut = Callable[[CacheWrite], Awaitable[None]]


# ------------------------------------------------------------------ keychain entries


@dataclass(frozen=True)
class KeychainDef:
    """One entry of a playbook's top-level ``keychain:`` list (§4.1)."""

    name: str
    credential: str | None = None
    provider: str | None = None
    map: dict[str, str] | None = None
    region: str | None = None
    residency: Residency = Residency.NONE
    allowed_regions: tuple[str, ...] = ()
    no_broker_fallback: bool = False
    auto_renew: bool = False
    token_type: str | None = None
    scope: str | None = None
    auth: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class KeychainParseError(ValueError):
    """The playbook's keychain section is malformed (the alias then resolves to 404)."""


_KNOWN = {
    "name",
    "credential",
    "provider",
    "map",
    "region",
    "residency",
    "allowed_regions",
    "no_broker_fallback",
    "auto_renew",
    "token_type",
    "scope",
    "auth",
}


def _opt_str(d: Mapping[str, Any], key: str) -> str | None:
    v = d.get(key)
    if v is None:
        return None
    if not isinstance(v, str):
        raise KeychainParseError(f"keychain field '{key}' must be a string")
    return v


def _bool(d: Mapping[str, Any], key: str) -> bool:
    v = d.get(key, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise KeychainParseError(f"keychain field '{key}' must be a boolean")
    return v


def parse_keychain_entry(d: Any) -> KeychainDef:
    """Parse one entry; strict types (``residency`` lower case only)."""
    if not isinstance(d, Mapping):
        raise KeychainParseError("keychain entry must be a mapping")
    name = d.get("name")
    if not isinstance(name, str):
        raise KeychainParseError("keychain entry needs a string 'name'")
    residency_raw = d.get("residency", "none")
    try:
        residency = Residency(residency_raw if residency_raw is not None else "none")
    except ValueError:
        raise KeychainParseError("keychain residency must be one of none, advisory, strict") from None
    mapping = d.get("map")
    if mapping is not None:
        if not isinstance(mapping, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in mapping.items()
        ):
            raise KeychainParseError("keychain map must map strings to strings")
        mapping = dict(mapping)
    allowed = d.get("allowed_regions") or []
    if not isinstance(allowed, list) or not all(isinstance(r, str) for r in allowed):
        raise KeychainParseError("keychain allowed_regions must be a list of strings")
    return KeychainDef(
        name=name,
        credential=_opt_str(d, "credential"),
        provider=_opt_str(d, "provider"),
        map=mapping,
        region=_opt_str(d, "region") or None,
        residency=residency,
        allowed_regions=tuple(allowed),
        no_broker_fallback=_bool(d, "no_broker_fallback"),
        auto_renew=_bool(d, "auto_renew"),
        token_type=_opt_str(d, "token_type"),
        scope=_opt_str(d, "scope"),
        auth=_opt_str(d, "auth"),
        extra={k: v for k, v in d.items() if k not in _KNOWN},
    )


def parse_keychain(playbook: str | Mapping[str, Any]) -> list[KeychainDef]:
    """The keychain entries of a playbook (YAML text or parsed mapping)."""
    if isinstance(playbook, str):
        try:
            doc = yaml.safe_load(playbook)
        except yaml.YAMLError:
            raise KeychainParseError("playbook YAML does not parse") from None
    else:
        doc = playbook
    if not isinstance(doc, Mapping):
        raise KeychainParseError("playbook is not a mapping")
    entries = doc.get("keychain") or []
    if not isinstance(entries, list):
        raise KeychainParseError("keychain must be a list")
    return [parse_keychain_entry(e) for e in entries]


def find_entry(entries: list[KeychainDef], alias: str) -> KeychainDef | None:
    """The first entry whose name equals ``alias``."""
    return next((e for e in entries if e.name == alias), None)


# ------------------------------------------------------------------ results


@dataclass(frozen=True)
class Resolved:
    """Outcome of a resolution: a stored credential or a keychain value."""

    source: str  # "credential" | "keychain"
    data: Any = field(repr=False)
    record: CredentialRecord | None = None
    kek_version: str | None = None
    expires_at: datetime | None = None
    from_cache: bool = False
    entry: KeychainDef | None = None


def not_found(identifier: str) -> NotFound:
    """The 404 of §3.1."""
    return NotFound(f"Credential '{identifier}' not found")


class TemplateRenderError(SecretConfigError):
    """A keychain template failed to render (500, metric ``template_error``)."""

    audit_outcome = "template_error"


def _utcnow() -> datetime:
    return datetime.now(UTC)


# ------------------------------------------------------------------ the resolver


class SecretResolver:
    """Implements §4.2 steps 1–7 over injected async lookups; one instance per process."""

    def __init__(
        self,
        *,
        cipher: EnvelopeCipher | None,
        credential_lookup: CredentialLookup,
        start_event_lookup: StartEventLookup,
        catalog_lookup: CatalogLookup,
        cache_get: CacheGet,
        cache_put: CachePut,
        registry: ProviderRegistry,
        metrics: SecretsMetrics,
        audit: AuditSink | None = None,
        server_region: str = "",
        cache_margin_secs: float = 60.0,
        refresh_window_secs: float = 60.0,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._cipher = cipher
        self._credential_lookup = credential_lookup
        self._start_event_lookup = start_event_lookup
        self._catalog_lookup = catalog_lookup
        self._cache_get = cache_get
        self._cache_put = cache_put
        self.registry = registry
        self._metrics = metrics
        self._audit = audit
        self.server_region = server_region
        self._margin = cache_margin_secs
        self._window = refresh_window_secs
        self._clock = clock
        self._catalogs: OrderedDict[int, list[KeychainDef] | None] = OrderedDict()
        self._slots = InflightSlots()
        self._refresh_tasks: set[asyncio.Task[None]] = set()
        self._jinja = SandboxedEnvironment(undefined=ChainableUndefined, autoescape=False)
        self._templates: dict[str, Any] = {}

    # -- step 1: the credential store

    async def open_record(self, record: CredentialRecord) -> tuple[Any, str]:
        """Decrypt a stored credential; returns (data, ``dek.kv``)."""
        if self._cipher is None:
            raise CipherNotConfigured()
        return await self._cipher.open_with_version(record.data_encrypted)

    async def resolve(
        self,
        identifier: str,
        execution_id: int | None,
        *,
        parent_execution_id: int | None = None,
    ) -> Resolved:
        """Credential store first, then (with ``execution_id``) the playbook's keychain entry."""
        if self._cipher is None:
            raise CipherNotConfigured()
        record = await self._credential_lookup(identifier)
        if record is not None:
            data, kv = await self.open_record(record)
            return Resolved("credential", data, record=record, kek_version=kv)
        if execution_id is None:
            raise not_found(identifier)
        try:
            resolved = await self._resolve_keychain(identifier, execution_id)
        except Exception as exc:
            try:
                await self._audit_keychain(identifier, execution_id, parent_execution_id, exc, None)
            except Exception:
                # Strict mode already counted failed_strict; the original error is the useful one.
                log.warning("secret audit write failed while reporting a failed resolution")
            raise
        # Strict mode: the row must exist before the value is released.
        await self._audit_keychain(identifier, execution_id, parent_execution_id, None, resolved.kek_version)
        return resolved

    async def _audit_keychain(
        self,
        alias: str,
        execution_id: int,
        parent_execution_id: int | None,
        exc: BaseException | None,
        kek_version: str | None,
    ) -> None:
        if self._audit is None:
            return
        ev = self._audit.event(
            alias,
            "resolve_keychain",
            outcome_for(exc),
            execution_id=execution_id,
            parent_execution_id=parent_execution_id,
            kek_version=kek_version,
        )
        await self._audit.record(ev)

    # -- steps 2–3: start event and keychain entry

    async def _entries(self, catalog_id: int) -> list[KeychainDef] | None:
        if catalog_id in self._catalogs:
            self._catalogs.move_to_end(catalog_id)
            return self._catalogs[catalog_id]
        content = await self._catalog_lookup(catalog_id)
        entries: list[KeychainDef] | None
        if content is None:
            entries = None
        else:
            try:
                entries = parse_keychain(content)
            except KeychainParseError as exc:
                log.warning("catalog %s: keychain section unparsable: %s", catalog_id, exc)
                entries = None
            # Catalog rows are immutable, so a parse (or its failure) is cached for good.
            self._catalogs[catalog_id] = entries
            if len(self._catalogs) > CATALOG_CACHE_MAX:
                self._catalogs.popitem(last=False)
        return entries

    async def keychain_entry(self, alias: str, execution_id: int) -> tuple[StartEvent, KeychainDef]:
        """Steps 2–3: the start event and the alias's entry (404 when either is missing)."""
        start = await self._start_event_lookup(execution_id)
        if start is None:
            raise not_found(alias)
        entries = await self._entries(start.catalog_id)
        entry = find_entry(entries, alias) if entries is not None else None
        if entry is None:
            raise not_found(alias)
        return start, entry

    async def _resolve_keychain(self, alias: str, execution_id: int) -> Resolved:
        start, entry = await self.keychain_entry(alias, execution_id)
        region = effective_region(entry.region, self.server_region)
        # Step 4: the gate runs before any cache read or provider work.
        check_residency(
            alias,
            entry.residency,
            region,
            self.server_region,
            entry.allowed_regions,
            self._metrics,
            no_broker_fallback=entry.no_broker_fallback,
        )
        # Step 5: cache read (errors are misses).
        cache_key = resolver_cache_key(alias, start.catalog_id, execution_id)
        try:
            hit = await self._cache_get(cache_key)
        except Exception as exc:
            log.warning("keychain cache read failed: %s", type(exc).__name__)
            hit = None
        if hit is not None:
            if entry.provider is not None:
                self._maybe_refresh(alias, start, entry, region, execution_id, hit)
            return Resolved(
                "keychain",
                hit.data,
                kek_version=hit.kek_version,
                expires_at=hit.expires_at,
                from_cache=True,
                entry=entry,
            )
        if entry.provider is None:
            return await self._resolve_credential_entry(alias, start, entry)
        data, expires_at = await self._fetch_entry(start, entry, region)
        await self._write_cache(alias, start.catalog_id, execution_id, data, expires_at)
        return Resolved("keychain", data, expires_at=expires_at, entry=entry)

    async def _resolve_credential_entry(self, alias: str, start: StartEvent, entry: KeychainDef) -> Resolved:
        if not entry.credential:
            raise not_found(alias)
        name = self.render(entry.credential, start.workload).strip()
        if not name:
            raise not_found(alias)
        record = await self._credential_lookup(name)
        if record is None:
            raise not_found(alias)
        data, kv = await self.open_record(record)
        return Resolved("keychain", data, record=record, kek_version=kv, entry=entry)

    # -- step 6: provider fetch

    def render(self, template: str, workload: Mapping[str, Any]) -> str:
        """Render a reference template against the workload's top-level keys (undefined → empty)."""
        try:
            tpl = self._templates.get(template)
            if tpl is None:
                tpl = self._jinja.from_string(template)
                if len(self._templates) >= TEMPLATE_CACHE_MAX:
                    self._templates.clear()
                self._templates[template] = tpl
            return str(tpl.render(**dict(workload)))
        except (TemplateError, ArithmeticError, TypeError, ValueError, LookupError, AttributeError) as exc:
            raise TemplateRenderError(f"keychain template error: {type(exc).__name__}") from None

    async def _fetch_entry(
        self, start: StartEvent, entry: KeychainDef, region: str
    ) -> tuple[Any, datetime | None]:
        """Fetch the entry's value(s): map → object of strings, map-less → string (by entry name)."""
        assert entry.provider is not None
        impl = implementation_id(entry.provider)
        labels = {"provider": impl, "region": region_label(region)}
        try:
            provider = await self.registry.get(entry.provider, region)
        except Exception as exc:
            self._metrics.resolve.labels(status="provider_build_error", **labels).inc()
            exc.audit_outcome = "provider_build_error"  # type: ignore[attr-defined]
            raise
        refs: list[tuple[str | None, str]]
        if entry.map is not None:
            refs = []
            for key, template in entry.map.items():
                try:
                    refs.append((key, self.render(template, start.workload)))
                except TemplateRenderError as exc:
                    self._metrics.resolve.labels(status="template_error", **labels).inc()
                    exc.audit_outcome = "template_error"
                    raise
        else:
            refs = [(None, entry.name)]
        values: dict[str, str] = {}
        expires: datetime | None = None
        for out_key, ref_name in refs:
            began = time.perf_counter()
            try:
                value = await provider.fetch(SecretRef(name=ref_name, region=region or None))
            except Exception as exc:
                self._metrics.resolve.labels(status="provider_fetch_error", **labels).inc()
                exc.audit_outcome = "provider_fetch_error"  # type: ignore[attr-defined]
                raise
            finally:
                self._metrics.resolve_duration.labels(**labels).observe(time.perf_counter() - began)
            if value.expires_at is not None and (expires is None or value.expires_at < expires):
                expires = value.expires_at
            if out_key is None:
                self._metrics.resolve.labels(status="ok", **labels).inc()
                self._observe_ttl(expires)
                return value.value, expires
            values[out_key] = value.value
        self._metrics.resolve.labels(status="ok", **labels).inc()
        self._observe_ttl(expires)
        return dict(sorted(values.items())), expires

    def _observe_ttl(self, expires_at: datetime | None) -> None:
        if expires_at is not None:
            self._metrics.dynamic_ttl.observe(max(0.0, (expires_at - self._clock()).total_seconds()))

    # -- step 7: cache write

    async def _write_cache(
        self, alias: str, catalog_id: int, execution_id: int, data: Any, expires_at: datetime | None
    ) -> None:
        now = self._clock()
        decision = effective_cache_ttl(expires_at, KEYCHAIN_CACHE_TTL_SECS, now, self._margin)
        if not isinstance(decision, CacheFor):
            log.warning("keychain value already inside its expiry margin; not cached")
            self._metrics.cache_skip.labels(reason="already_expired").inc()
            return
        write = CacheWrite(
            cache_key=resolver_cache_key(alias, catalog_id, execution_id),
            keychain_name=alias,
            catalog_id=catalog_id,
            execution_id=execution_id,
            data=data,
            expires_at=now + timedelta(seconds=decision.secs),
        )
        try:
            await self._cache_put(write)
        except Exception as exc:
            log.warning("keychain cache write failed: %s", type(exc).__name__)

    # -- background refresh

    def _maybe_refresh(
        self, alias: str, start: StartEvent, entry: KeychainDef, region: str, execution_id: int, hit: CacheHit
    ) -> None:
        try:
            due = should_refresh(hit.expires_at, self._window, self._clock())
        except Exception:
            self._metrics.refresh.labels(outcome="decision_failed").inc()
            return
        if not due:
            return
        self._metrics.refresh.labels(outcome="triggered").inc()
        slot = (start.catalog_id, alias)
        if not self._slots.claim(slot):
            self._metrics.refresh.labels(outcome="stampede_collapsed").inc()
            return
        task = asyncio.get_running_loop().create_task(
            self._refresh(slot, alias, start, entry, region, execution_id)
        )
        self._refresh_tasks.add(task)
        task.add_done_callback(self._refresh_tasks.discard)

    async def _refresh(
        self,
        slot: tuple[int, str],
        alias: str,
        start: StartEvent,
        entry: KeychainDef,
        region: str,
        execution_id: int,
    ) -> None:
        began = time.perf_counter()
        try:
            data, expires_at = await self._fetch_entry(start, entry, region)
            await self._write_cache(alias, start.catalog_id, execution_id, data, expires_at)
        except Exception as exc:
            self._metrics.refresh.labels(outcome="failed").inc()
            log.warning("keychain background refresh failed: %s", type(exc).__name__)
        else:
            self._metrics.refresh.labels(outcome="succeeded").inc()
        finally:
            self._slots.release(slot)
            self._metrics.refresh_duration.observe(time.perf_counter() - began)

    async def drain(self) -> None:
        """Wait for in-flight background refreshes (shutdown, tests)."""
        while self._refresh_tasks:
            await asyncio.gather(*list(self._refresh_tasks), return_exceptions=True)

    def is_refreshing(self, catalog_id: int, alias: str) -> bool:
        """True while a refresh holds the slot."""
        return (catalog_id, alias) in self._slots


__all__ = [
    "CacheHit",
    "CacheWrite",
    "CredentialRecord",
    "KeychainDef",
    "Resolved",
    "SecretResolver",
    "StartEvent",
    "parse_keychain",
]
