"""Sealed delivery: X25519 + HKDF-SHA256 + ChaCha20-Poly1305, envelope v1 (secrets.md §2)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.errors import BadRequest
from app.secrets.encoding import Base64Error, b64decode_strict, b64encode, loads
from app.secrets.errors import SealError, SealingRefused

SEAL_ALG = "x25519-hkdf-sha256-chacha20-poly1305"
SEAL_V = 1
HKDF_INFO = b"noetl-sealed-v1"
AAD = f"{SEAL_ALG}|v={SEAL_V}".encode("ascii")
KEY_LEN = 32
_ZERO = bytes(KEY_LEN)
_SHA256 = hashes.SHA256()
# One encoder for every envelope: json.dumps with non-default separators builds a new one per call.
_ENVELOPE_JSON = json.JSONEncoder(separators=(",", ":"))
# Fixed probe scalar for the low-order check: a clamped X25519 scalar is a multiple of the cofactor 8
# and never of 8*l, so the shared secret is all-zero exactly for small-order points, whatever the
# scalar; a fresh key per check (a second scalar multiplication) buys nothing.
_PROBE = X25519PrivateKey.from_private_bytes(bytes(range(1, KEY_LEN + 1)))
# Worker keys repeat on every sealed request; parsing and validating each is work done once per key.
_KEY_CACHE = 1024


@dataclass(frozen=True)
class SealedEnvelope:
    """The wire envelope; ``to_json`` keeps the field order alg, v, eph_pub, ciphertext."""

    alg: str
    v: int
    eph_pub: str
    ciphertext: str = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """Field-ordered dict."""
        return {"alg": self.alg, "v": self.v, "eph_pub": self.eph_pub, "ciphertext": self.ciphertext}

    def to_json(self) -> str:
        """Compact JSON in declaration order."""
        return _ENVELOPE_JSON.encode(self.to_dict())


def _derive(shared: bytes) -> tuple[bytes, bytes]:
    okm = HKDF(_SHA256, 44, salt=None, info=HKDF_INFO).derive(shared)
    return okm[:32], okm[32:44]


def public_key_bytes(sk: X25519PrivateKey) -> bytes:
    """Raw 32-byte public key of ``sk``."""
    return sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


@lru_cache(maxsize=_KEY_CACHE)
def _recipient(pub: bytes) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(pub)


def seal(
    recipient_pub: bytes, plaintext: bytes, *, ephemeral: X25519PrivateKey | None = None
) -> SealedEnvelope:
    """Seal ``plaintext`` to ``recipient_pub``; ``ephemeral`` is a test hook (fresh key per call)."""
    if len(recipient_pub) != KEY_LEN:
        raise SealingRefused(f"recipient public key must be 32 bytes, got {len(recipient_pub)}")
    e = ephemeral if ephemeral is not None else X25519PrivateKey.generate()
    try:
        shared = e.exchange(_recipient(recipient_pub))
    except ValueError:
        # cryptography raises for an all-zero shared secret (low-order point).
        raise SealingRefused("refusing to seal to a low-order X25519 public key") from None
    if shared == _ZERO:
        raise SealingRefused("refusing to seal to a low-order X25519 public key")
    k, n = _derive(shared)
    ct = ChaCha20Poly1305(k).encrypt(n, plaintext, AAD)
    return SealedEnvelope(SEAL_ALG, SEAL_V, b64encode(public_key_bytes(e)), b64encode(ct))


def _parse(envelope: str | bytes | dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    try:
        obj = loads(envelope) if isinstance(envelope, str | bytes) else envelope
    except (ValueError, UnicodeDecodeError) as exc:
        raise SealError(f"sealed open: json: {type(exc).__name__}") from None
    if not isinstance(obj, dict):
        raise SealError("sealed open: json: expected an object")
    for name in ("alg", "v", "eph_pub", "ciphertext"):
        if name not in obj:
            raise SealError(f"sealed open: json: missing field `{name}`")
    alg, v, eph, ct = obj["alg"], obj["v"], obj["eph_pub"], obj["ciphertext"]
    if not isinstance(alg, str) or not isinstance(eph, str) or not isinstance(ct, str):
        raise SealError("sealed open: json: invalid type, expected a string")
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255:
        raise SealError("sealed open: json: invalid value for `v`, expected u8")
    return alg, v, eph, ct


def open_sealed(recipient_sk: X25519PrivateKey, envelope: str | bytes | dict[str, Any]) -> bytes:
    """Open an envelope with the exact check order of §2.4 (alg, v before any cryptography)."""
    alg, v, eph_b64, ct_b64 = _parse(envelope)
    if alg != SEAL_ALG:
        raise SealError(f"sealed open: unsupported alg '{alg}' (expected '{SEAL_ALG}')")
    if v != SEAL_V:
        raise SealError(f"sealed open: unsupported version {v} (expected 1)")
    try:
        eph = b64decode_strict(eph_b64)
    except Base64Error as exc:
        raise SealError(f"sealed open: eph_pub base64: {exc}") from None
    if len(eph) != KEY_LEN:
        raise SealError(f"sealed open: eph_pub must be 32 bytes, got {len(eph)}")
    try:
        ct = b64decode_strict(ct_b64)
    except Base64Error as exc:
        raise SealError(f"sealed open: ciphertext base64: {exc}") from None
    try:
        shared = recipient_sk.exchange(X25519PublicKey.from_public_bytes(eph))
    except ValueError:
        raise SealError("sealed open: eph_pub is a low-order point") from None
    if shared == _ZERO:
        raise SealError("sealed open: eph_pub is a low-order point")
    k, n = _derive(shared)
    try:
        return ChaCha20Poly1305(k).decrypt(n, ct, AAD)
    except (InvalidTag, ValueError):
        raise SealError("sealed open: AEAD verify/decrypt: aead::Error") from None


@lru_cache(maxsize=_KEY_CACHE)
def is_low_order(pub: bytes) -> bool:
    """True when X25519 with this public key yields the all-zero shared secret."""
    try:
        shared = _PROBE.exchange(X25519PublicKey.from_public_bytes(pub))
    except ValueError:
        return True
    return shared == _ZERO


def decode_worker_pubkey(worker_id: str, value: str) -> bytes:
    """Validate a registered ``worker_public_key`` (§2.5); messages are the 400 bodies of the sealed route."""
    try:
        key = b64decode_strict(value)
    except Base64Error as exc:
        raise BadRequest(f"worker '{worker_id}' worker_public_key base64: {exc}") from None
    if len(key) != KEY_LEN:
        raise BadRequest(f"worker '{worker_id}' worker_public_key must be 32 bytes, got {len(key)}")
    if is_low_order(key):
        raise BadRequest(f"worker '{worker_id}' worker_public_key is not a valid X25519 public key")
    return key


def decode_broker_pubkey(value: str) -> bytes:
    """Decode the broker request's ``worker_public_key_b64`` (the one decoder that trims whitespace)."""
    prefix = "cross-region: invalid worker_public_key_b64"
    try:
        key = b64decode_strict(value.strip())
    except Base64Error as exc:
        raise BadRequest(f"{prefix}: base64 decode: {exc}") from None
    if len(key) != KEY_LEN:
        raise BadRequest(f"{prefix}: expected 32 bytes, got {len(key)}")
    if is_low_order(key):
        raise BadRequest(f"{prefix}: not a valid X25519 public key")
    return key
