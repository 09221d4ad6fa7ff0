"""AES-256-GCM blob primitive: nonce(12) || ciphertext || tag(16), no AAD (secrets.md §1.2)."""

from __future__ import annotations

import json
import os
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.secrets.encoding import canonical_json, loads
from app.secrets.errors import EncryptionError

NONCE_LEN = 12
KEY_LEN = 32


def check_key(key: bytes) -> None:
    """Require exactly 32 bytes (AESGCM alone would accept 16/24)."""
    if len(key) != KEY_LEN:
        raise EncryptionError(f"Invalid key length: expected 32 bytes, got {len(key)}")


def encrypt(key: bytes, plaintext: bytes, *, nonce: bytes | None = None) -> bytes:
    """Encrypt to a blob; ``nonce`` is a test hook (random in production)."""
    check_key(key)
    n = os.urandom(NONCE_LEN) if nonce is None else nonce
    if len(n) != NONCE_LEN:
        raise EncryptionError("nonce must be 12 bytes")
    return n + AESGCM(key).encrypt(n, plaintext, None)


def decrypt(key: bytes, blob: bytes) -> bytes:
    """Decrypt a blob produced by :func:`encrypt`."""
    check_key(key)
    if len(blob) < NONCE_LEN:
        raise EncryptionError("Ciphertext too short (missing nonce)")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_LEN], blob[NONCE_LEN:], None)
    except (InvalidTag, ValueError):
        raise EncryptionError("Decryption failed: aead::Error") from None


def encrypt_json(key: bytes, value: Any, *, nonce: bytes | None = None) -> bytes:
    """Encrypt the canonical JSON of ``value``."""
    return encrypt(key, canonical_json(value).encode("utf-8"), nonce=nonce)


def decrypt_json(key: bytes, blob: bytes) -> Any:
    """Decrypt a blob and parse its JSON."""
    return parse_json_plaintext(decrypt(key, blob))


def parse_json_plaintext(plain: bytes) -> Any:
    """Parse decrypted JSON; the error names the position only, never the content."""
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        raise EncryptionError("deserialize: invalid UTF-8") from None
    try:
        return loads(text)
    except json.JSONDecodeError as exc:
        raise EncryptionError(f"deserialize: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError:
        raise EncryptionError("deserialize: invalid number") from None
