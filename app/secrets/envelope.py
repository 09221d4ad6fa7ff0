"""Envelope v1 storage strings, legacy-format detection and KEK rewrap (secrets.md §1.3–§1.7)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from app.secrets import blob
from app.secrets.encoding import Base64Error, b64decode_strict, b64encode, canonical_json, loads
from app.secrets.errors import EncryptionError
from app.secrets.keys import KeyManager, WrappedDek

ENVELOPE_V = 1
ENVELOPE_ALG = "AES-256-GCM"
_PREFIX = "not a wallet envelope record: "


@dataclass(frozen=True)
class EnvelopeRecord:
    """A parsed E1 storage string (before base64 decoding)."""

    v: int
    alg: str
    ct: str = field(repr=False)
    p: str
    kid: str
    kv: str
    dek_ct: str = field(repr=False)


@dataclass(frozen=True)
class Skipped:
    """Rewrap not needed: the record is already on the current key version."""

    key_version: str


@dataclass(frozen=True)
class Rewrapped:
    """Rewrap done: only ``dek`` changed."""

    old_key_version: str
    new_key_version: str
    new_storage_string: str = field(repr=False)


RewrapOutcome = Skipped | Rewrapped


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "floating point"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "sequence"
    return "map"


def _fail(msg: str, text: str) -> EncryptionError:
    return EncryptionError(f"{_PREFIX}{msg} at line 1 column {len(text)}")


def _get_str(obj: dict, name: str, text: str) -> str:
    if name not in obj:
        raise _fail(f"missing field `{name}`", text)
    value = obj[name]
    if not isinstance(value, str):
        raise _fail(f"invalid type: {_kind(value)}, expected a string", text)
    return value


def parse_record(raw: str) -> EnvelopeRecord:
    """Parse a storage string (trimmed) into its record; serde-like messages on failure."""
    text = raw.strip()
    if not text:
        raise EncryptionError(f"{_PREFIX}EOF while parsing a value at line 1 column 0")
    try:
        obj = loads(text)
    except json.JSONDecodeError as exc:
        msg = "expected value" if exc.pos == 0 else exc.msg
        raise EncryptionError(f"{_PREFIX}{msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:
        raise EncryptionError(f"{_PREFIX}invalid number") from None
    if not isinstance(obj, dict):
        # serde would accept the positional array form; the spec rejects it.
        raise _fail(f"invalid type: {_kind(obj)}, expected struct EnvelopeRecord", text)
    if "v" not in obj:
        raise _fail("missing field `v`", text)
    v = obj["v"]
    if isinstance(v, bool) or not isinstance(v, int):
        raise _fail(f"invalid type: {_kind(v)}, expected i16", text)
    if not -(2**15) <= v < 2**15:
        raise _fail(f"invalid value: integer `{v}`, expected i16", text)
    alg = _get_str(obj, "alg", text)
    ct = _get_str(obj, "ct", text)
    if "dek" not in obj:
        raise _fail("missing field `dek`", text)
    dek = obj["dek"]
    if not isinstance(dek, dict):
        raise _fail(f"invalid type: {_kind(dek)}, expected struct WrappedDekRecord", text)
    p = _get_str(dek, "p", text)
    kid = _get_str(dek, "kid", text)
    kv = _get_str(dek, "kv", text)
    dek_ct = _get_str(dek, "ct", text)
    return EnvelopeRecord(v, alg, ct, p, kid, kv, dek_ct)


def _validate(rec: EnvelopeRecord) -> tuple[bytes, WrappedDek]:
    if rec.v != ENVELOPE_V:
        raise EncryptionError(f"unsupported envelope version {rec.v}")
    if rec.alg != ENVELOPE_ALG:
        raise EncryptionError(f"unsupported envelope alg '{rec.alg}'")
    try:
        content = b64decode_strict(rec.ct)
    except Base64Error as exc:
        raise EncryptionError(f"envelope ct base64: {exc}") from None
    try:
        wrapped = b64decode_strict(rec.dek_ct)
    except Base64Error as exc:
        raise EncryptionError(f"envelope dek base64: {exc}") from None
    return content, WrappedDek(rec.p, rec.kid, rec.kv, wrapped)


def storage_string(ct_b64: str, wrapped: WrappedDek) -> str:
    """Serialise the E1 record with fields in declaration order."""
    return json.dumps(
        {
            "v": ENVELOPE_V,
            "alg": ENVELOPE_ALG,
            "ct": ct_b64,
            "dek": {
                "p": wrapped.provider,
                "kid": wrapped.key_id,
                "kv": wrapped.key_version,
                "ct": b64encode(wrapped.ciphertext),
            },
        },
        separators=(",", ":"),
        ensure_ascii=False,
    )


class EnvelopeCipher:
    """Seals free-form JSON into E1 storage strings and opens them; one instance per process."""

    def __init__(
        self,
        key_manager: KeyManager,
        *,
        dek_source: Callable[[], bytes] | None = None,
        nonce_source: Callable[[], bytes] | None = None,
    ) -> None:
        self.key_manager = key_manager
        # Test hooks only; production uses fresh random DEKs and nonces.
        self._dek_source = dek_source
        self._nonce_source = nonce_source

    def __repr__(self) -> str:
        return f"EnvelopeCipher(provider={self.key_manager.provider!r})"

    async def seal(self, data: Any) -> str:
        """Encrypt ``data`` under a fresh 32-byte DEK and return the storage string."""
        dek = bytearray(self._dek_source() if self._dek_source else os.urandom(blob.KEY_LEN))
        try:
            nonce = self._nonce_source() if self._nonce_source else None
            content = blob.encrypt(bytes(dek), canonical_json(data).encode("utf-8"), nonce=nonce)
            wrapped = await self.key_manager.wrap_dek(bytes(dek))
        finally:
            # Best effort: Python cannot guarantee that no other copy of the key exists.
            dek[:] = b"\x00" * len(dek)
        return storage_string(b64encode(content), wrapped)

    async def open(self, raw: str) -> Any:
        """Decrypt a storage string to its JSON value."""
        value, _ = await self.open_with_version(raw)
        return value

    async def open_with_version(self, raw: str) -> tuple[Any, str]:
        """Decrypt and also return the record's ``dek.kv`` (for the audit ``kek_version``)."""
        rec = parse_record(raw)
        content, wrapped = _validate(rec)
        dek = await self.key_manager.unwrap_dek(wrapped)
        if len(dek) != blob.KEY_LEN:
            raise EncryptionError(f"Invalid key length: expected 32 bytes, got {len(dek)}")
        return blob.decrypt_json(dek, content), rec.kv

    async def rewrap(self, raw: str) -> RewrapOutcome:
        """Re-wrap the DEK under the current KEK version, leaving the content ``ct`` untouched."""
        rec = parse_record(raw)
        _, wrapped = _validate(rec)
        current = await self.key_manager.current_key_version()
        if rec.kv == current:
            return Skipped(rec.kv)
        dek = await self.key_manager.unwrap_dek(wrapped)
        new_wrapped = await self.key_manager.wrap_dek(dek)
        return Rewrapped(rec.kv, current, storage_string(rec.ct, new_wrapped))


def key_version_of(raw: str) -> str:
    """The stored ``dek.kv`` of a storage string, or ``invalid`` (key-status semantics)."""
    try:
        return parse_record(raw).kv
    except EncryptionError:
        return "invalid"


def rotation_status(message: str) -> str:
    """Bucket a rewrap error message into a ``noetl_wallet_rotate_total`` status."""
    if "not a wallet envelope" in message or "unsupported envelope" in message:
        return "parse_error"
    if "envelope" in message and "base64" in message:
        return "parse_error"
    if "unwrap" in message:
        return "failed_unwrap"
    if "wrap" in message:
        return "failed_wrap"
    return "failed"


StoredFormat = Literal["E1", "L0", "L1", "corrupt"]


def classify(raw: str, master_key: bytes | None) -> StoredFormat:
    """Classify a stored value for the migration tool (§1.6)."""
    text = raw.strip()
    try:
        parse_record(text)
        return "E1"
    except EncryptionError:
        pass
    try:
        value = loads(text)
        if isinstance(value, dict | list):
            return "L0"
    except ValueError:
        pass
    if master_key is not None:
        try:
            data = b64decode_strict(text)
            if len(data) >= 28:
                blob.decrypt(master_key, data)
                return "L1"
        except (Base64Error, EncryptionError):
            pass
    return "corrupt"


def read_legacy(raw: str, master_key: bytes | None) -> Any:
    """Decode an L0 or L1 value to its JSON (migration tool only; the API never reads legacy rows)."""
    kind = classify(raw, master_key)
    text = raw.strip()
    if kind == "L0":
        return loads(text)
    if kind == "L1" and master_key is not None:
        return blob.decrypt_json(master_key, b64decode_strict(text))
    raise EncryptionError(f"not a legacy record ({kind})")


async def migrate_value(raw: str, master_key: bytes | None, cipher: EnvelopeCipher) -> str | None:
    """Re-seal an L0/L1 value as E1 (migration tool); None for E1 (left alone); corrupt → EncryptionError."""
    kind = classify(raw, master_key)
    if kind == "E1":
        return None
    if kind == "corrupt":
        raise EncryptionError("corrupt stored value (neither E1, L0 nor L1 under the master key)")
    return await cipher.seal(read_legacy(raw, master_key))


def count_key_versions(values: list[str]) -> dict[str, int]:
    """Key-status counts per ``dek.kv`` (``invalid`` for non-E1 rows), keys sorted."""
    counts: dict[str, int] = {}
    for raw in values:
        kv = key_version_of(raw)
        counts[kv] = counts.get(kv, 0) + 1
    return dict(sorted(counts.items()))
