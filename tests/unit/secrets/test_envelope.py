"""At-rest crypto: blob, envelope v1, legacy formats, rewrap, key managers (secrets.md §1, §12.2)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.config.secrets import SecretsSettings
from app.errors import ConfigError
from app.secrets import blob, envelope, keys
from app.secrets.encoding import Base64Error, b64decode_strict, b64encode
from app.secrets.errors import EncryptionError

MASTER = bytes(range(32))
MASTER_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
DATA = {"username": "admin", "password": "secret123", "host": "db.example.com"}
PLAIN = '{"host":"db.example.com","password":"secret123","username":"admin"}'
L1 = (
    "AAECAwQFBgcICQoLPCC+dLaR4CGvJfWl1JEZAPO64hqTFDJeFEWV5G4ad91zdIzGjbJ3+wbBC9y6tAoUzCwT6Ci4wrdatRA7eYeYh54eu"
    "y0JiwcRrcwH1+1cvjwh7lA="
)
CT = (
    "oKGio6SlpqeoqaqrBR7MW7ejopCDTM+UQyUXy+ETpClf20sAI7C7mKAV2JdtMR+OJNqmGbiHp9x8Rb/SVCYISYXr0QIUTKJO7qKQqzZFrz8B/"
    "ZmICbM2cSUdMuIfnGs="
)
E1 = (
    '{"v":1,"alg":"AES-256-GCM","ct":"'
    + CT
    + '","dek":{"p":"local","kid":"env:NOETL_ENCRYPTION_KEY","kv":"v1",'
    '"ct":"sLGys7S1tre4ubq7uXR4iMjonXhv0b2J4XCm7bQNe+EhG7kCZve4ymC/zCloQfsgvHnM22+2zHEY+a6v"}}'
)
E1_V2 = (
    '{"v":1,"alg":"AES-256-GCM","ct":"'
    + CT
    + '","dek":{"p":"local","kid":"env:NOETL_ENCRYPTION_KEY","kv":"v2",'
    '"ct":"wMHCw8TFxsfIycrLIGkFRFNdsHmw8NeJHoHGeXxC0QwI1ymNEvpxMQtAQYmfpVB7Q/4aZEePVZeohZD+"}}'
)


def _cipher(key: bytes = MASTER) -> envelope.EnvelopeCipher:
    return envelope.EnvelopeCipher(keys.LocalDevKms(key))


def _mutate(raw: str, **over: object) -> str:
    d = json.loads(raw)
    dek_over = over.pop("dek", None)
    d.update(over)
    if dek_over:
        d["dek"].update(dek_over)
    return json.dumps(d)


class VersionedKms(keys.LocalDevKms):
    """Local KMS reporting a configurable current version and counting calls."""

    def __init__(self, key: bytes, version: str, nonce: int | None = None) -> None:
        super().__init__(key, nonce_source=(lambda: bytes(nonce + i for i in range(12))) if nonce else None)
        self.version = version
        self.wraps = 0
        self.unwraps = 0

    async def wrap_dek(self, dek: bytes) -> keys.WrappedDek:
        self.wraps += 1
        w = await super().wrap_dek(dek)
        return keys.WrappedDek(w.provider, w.key_id, self.version, w.ciphertext)

    async def unwrap_dek(self, wrapped: keys.WrappedDek) -> bytes:
        self.unwraps += 1
        return await super().unwrap_dek(wrapped)

    async def current_key_version(self) -> str:
        return self.version


def test_blob_layout_and_errors() -> None:
    b = blob.encrypt(MASTER, b"abc")
    assert len(b) == 12 + 3 + 16
    assert blob.decrypt(MASTER, b) == b"abc"
    with pytest.raises(EncryptionError, match=r"^Ciphertext too short \(missing nonce\)$"):
        blob.decrypt(MASTER, bytes(11))
    for n in (12, 20, 27):
        with pytest.raises(EncryptionError, match=r"^Decryption failed: aead::Error$"):
            blob.decrypt(MASTER, bytes(n))
    for n in (16, 24):
        with pytest.raises(EncryptionError, match=f"expected 32 bytes, got {n}"):
            blob.encrypt(bytes(n), b"x")


async def test_e1_vector_byte_exact() -> None:  # §12.2 case 16
    kms = keys.LocalDevKms(MASTER, nonce_source=lambda: bytes(range(0xB0, 0xBC)))
    c = envelope.EnvelopeCipher(
        kms, dek_source=lambda: bytes(range(0x20, 0x40)), nonce_source=lambda: bytes(range(0xA0, 0xAC))
    )
    assert await c.seal(DATA) == E1
    assert await _cipher().open(E1) == DATA
    value, kv = await _cipher().open_with_version(E1)
    assert kv == "v1"
    assert len(base64.b64decode(json.loads(E1)["dek"]["ct"])) == 60


async def test_fresh_dek_per_write() -> None:
    c = _cipher()
    a, b = await c.seal(DATA), await c.seal(DATA)
    assert json.loads(a)["ct"] != json.loads(b)["ct"]
    assert json.loads(a)["dek"]["ct"] != json.loads(b)["dek"]["ct"]
    assert await c.open(a) == await c.open(b) == DATA


async def test_l1_vector_via_migration_only() -> None:  # case 15
    assert blob.decrypt(MASTER, base64.b64decode(L1)).decode() == PLAIN
    assert envelope.classify(L1, MASTER) == "L1"
    assert envelope.read_legacy(L1, MASTER) == DATA
    with pytest.raises(EncryptionError) as ei:
        await _cipher().open(L1)
    assert str(ei.value) == "not a wallet envelope record: expected value at line 1 column 1"


def test_classify() -> None:
    assert envelope.classify(E1, MASTER) == "E1"
    assert envelope.classify('{"username": "x"}', MASTER) == "L0"
    assert envelope.classify("[]", MASTER) == "L0"
    assert envelope.classify(L1, bytes(32)) == "corrupt"
    assert envelope.classify("garbage", MASTER) == "corrupt"


async def test_wrong_master_key() -> None:  # case 17
    with pytest.raises(EncryptionError) as ei:
        await _cipher(bytes(32)).open(E1)
    assert str(ei.value) == "Decryption failed: aead::Error"
    assert envelope.rotation_status(str(ei.value)) == "failed"


async def test_foreign_provider() -> None:  # case 18
    with pytest.raises(EncryptionError) as ei:
        await _cipher().open(_mutate(E1, dek={"p": "gcp-kms"}))
    assert str(ei.value) == "LocalDevKms cannot unwrap a DEK from provider 'gcp-kms'"
    assert envelope.rotation_status(str(ei.value)) == "failed_unwrap"


async def test_kv_ignored_and_rewrap() -> None:  # case 19
    v9 = _mutate(E1, dek={"kv": "v9"})
    assert await _cipher().open(v9) == DATA
    out = await _cipher().rewrap(v9)
    assert isinstance(out, envelope.Rewrapped)
    assert (out.old_key_version, out.new_key_version) == ("v9", "v1")
    new = json.loads(out.new_storage_string)
    assert new["ct"] == CT
    assert list(new) == ["v", "alg", "ct", "dek"]
    assert new["dek"]["kv"] == "v1"
    assert await _cipher().open(out.new_storage_string) == DATA


async def test_rewrap_vector_v2() -> None:
    kms = VersionedKms(MASTER, "v2", nonce=0xC0)
    out = await envelope.EnvelopeCipher(kms).rewrap(E1)
    assert isinstance(out, envelope.Rewrapped)
    assert out.new_storage_string == E1_V2
    assert "secret123" not in repr(out)


async def test_rewrap_current_skipped_no_kms() -> None:  # case 20
    kms = VersionedKms(MASTER, "v1")
    out = await envelope.EnvelopeCipher(kms).rewrap(E1)
    assert out == envelope.Skipped("v1")
    assert kms.wraps == kms.unwraps == 0


@pytest.mark.parametrize("raw", ["", "AAAAlegacy-base64==", '{"username":"x"}', "[]"])
async def test_non_envelope_inputs(raw: str) -> None:  # case 21
    with pytest.raises(EncryptionError) as ei:
        await _cipher().open(raw)
    assert str(ei.value).startswith("not a wallet envelope record: ")
    assert envelope.rotation_status(str(ei.value)) == "parse_error"
    with pytest.raises(EncryptionError):
        await _cipher().rewrap(raw)


def test_l0_message_shape() -> None:
    with pytest.raises(EncryptionError) as ei:
        envelope.parse_record('{"username":"x"}')
    assert str(ei.value) == "not a wallet envelope record: missing field `v` at line 1 column 16"


async def test_bad_base64_fields() -> None:  # case 22
    with pytest.raises(EncryptionError, match="^envelope ct base64: ") as ei:
        await _cipher().open(_mutate(E1, ct="%%%"))
    assert envelope.rotation_status(str(ei.value)) == "parse_error"
    with pytest.raises(EncryptionError, match="^envelope dek base64: ") as ei:
        await _cipher().open(_mutate(E1, dek={"ct": "AB=="}))
    assert envelope.rotation_status(str(ei.value)) == "parse_error"


async def test_short_content() -> None:  # case 23
    with pytest.raises(EncryptionError, match=r"^Ciphertext too short \(missing nonce\)$"):
        await _cipher().open(_mutate(E1, ct=b64encode(bytes(11))))
    with pytest.raises(EncryptionError, match="^Decryption failed"):
        await _cipher().open(_mutate(E1, ct=b64encode(bytes(20))))


async def test_short_dek() -> None:  # case 24
    wrapped = blob.encrypt(MASTER, bytes(16))
    with pytest.raises(EncryptionError) as ei:
        await _cipher().open(_mutate(E1, dek={"ct": b64encode(wrapped)}))
    assert str(ei.value) == "Invalid key length: expected 32 bytes, got 16"


async def test_non_json_content() -> None:  # case 25
    dek = bytes(range(0x20, 0x40))
    content = blob.encrypt(dek, b"not json secret123")
    with pytest.raises(EncryptionError) as ei:
        await _cipher().open(_mutate(E1, ct=b64encode(content)))
    assert str(ei.value).startswith("deserialize: ")
    assert "secret123" not in str(ei.value)


async def test_whitespace_extra_keys_and_version_alg() -> None:  # case 26
    raw = "  \n" + _mutate(E1, extra=1, dek={"more": "x"}) + "\t "
    assert await _cipher().open(raw) == DATA
    with pytest.raises(EncryptionError) as ei:
        await _cipher().open(_mutate(E1, v=2))
    assert str(ei.value) == "unsupported envelope version 2"
    assert envelope.rotation_status(str(ei.value)) == "parse_error"
    with pytest.raises(EncryptionError) as ei:
        await _cipher().open(_mutate(E1, alg="x"))
    assert str(ei.value) == "unsupported envelope alg 'x'"
    assert envelope.rotation_status(str(ei.value)) == "parse_error"
    for bad in ({"v": 40000}, {"v": "1"}, {"v": True}):
        with pytest.raises(EncryptionError, match="^not a wallet envelope record"):
            await _cipher().open(_mutate(E1, **bad))


def test_key_version_of() -> None:  # key-status helper (case 30 at library level)
    assert envelope.key_version_of(E1) == "v1"
    assert envelope.key_version_of(E1_V2) == "v2"
    assert envelope.key_version_of(L1) == "invalid"
    assert envelope.key_version_of('{"a": 1}') == "invalid"


def _settings(**kw: object) -> SecretsSettings:
    return SecretsSettings.model_validate(kw)


def test_master_key_startup() -> None:  # case 27 (library half)
    assert keys.parse_master_key(_settings(NOETL_ENCRYPTION_KEY=MASTER_B64)) == MASTER
    assert keys.parse_master_key(_settings()) is None
    assert keys.parse_master_key(_settings(NOETL_ENCRYPTION_KEY="   ")) is None
    assert keys.build_key_manager(_settings(NOETL_ENCRYPTION_KEY="   ")) is None
    with pytest.raises(ConfigError, match="^Invalid key length: expected 32 bytes, got 16$"):
        keys.parse_master_key(_settings(NOETL_ENCRYPTION_KEY=b64encode(bytes(16))))
    with pytest.raises(ConfigError, match="^Invalid base64 key: "):
        keys.parse_master_key(_settings(NOETL_ENCRYPTION_KEY="not base64!"))
    with pytest.raises(ConfigError, match="^Invalid base64 key: "):
        keys.parse_master_key(_settings(NOETL_ENCRYPTION_KEY=" " + MASTER_B64))
    a = keys.parse_master_key(_settings(NOETL_ALLOW_INSECURE_DEFAULT_KEY="YES"))
    b = keys.parse_master_key(_settings(NOETL_ALLOW_INSECURE_DEFAULT_KEY="YES"))
    assert a is not None and b is not None and len(a) == 32 and a != b
    explicit = _settings(NOETL_ENCRYPTION_KEY=MASTER_B64, NOETL_ALLOW_INSECURE_DEFAULT_KEY="true")
    assert keys.parse_master_key(explicit) == MASTER


def test_kms_provider_selection() -> None:  # case 28
    gcp_key = "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    km = keys.build_key_manager(_settings(NOETL_KMS_PROVIDER=" GCP-KMS ", NOETL_GCP_KMS_KEY=gcp_key))
    assert isinstance(km, keys.GcpKms)
    assert keys.kms_mode(_settings(NOETL_KMS_PROVIDER="gcp")) == "gcp-kms"
    assert keys.kms_mode(_settings(NOETL_KMS_PROVIDER="")) == "local"
    with pytest.raises(ConfigError) as ei:
        keys.build_key_manager(_settings(NOETL_KMS_PROVIDER="vault-xyz"))
    assert str(ei.value) == "unknown NOETL_KMS_PROVIDER 'vault-xyz' (expected 'local' or 'gcp-kms')"
    with pytest.raises(ConfigError):
        keys.build_key_manager(_settings(NOETL_KMS_PROVIDER="gcp-kms"))
    with pytest.raises(ConfigError):
        keys.build_key_manager(_settings(NOETL_KMS_PROVIDER="gcp-kms", NOETL_GCP_KMS_KEY="projects/p/keys/k"))


def test_kms_version_parsing() -> None:  # case 29
    assert keys.version_from_name("projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/7") == "7"
    assert keys.version_from_name("") == "primary"
    assert keys.version_from_name(None) == "primary"
    assert keys.version_from_name("projects/p/cryptoKeys/k") == "primary"


def test_reprs_hide_key() -> None:
    km = keys.LocalDevKms(MASTER)
    assert MASTER_B64 not in repr(km) and repr(MASTER) not in repr(km)
    w = keys.WrappedDek("local", "kid", "v1", b"\x01secret")
    assert "secret" not in repr(w)
    s = _settings(NOETL_ENCRYPTION_KEY=MASTER_B64)
    assert MASTER_B64 not in repr(s)


async def test_migrate_and_key_status() -> None:  # §1.6, case 30 (library half)
    c = _cipher()
    new_l1 = await envelope.migrate_value(L1, MASTER, c)
    new_l0 = await envelope.migrate_value(
        '{"username": "admin", "password": "secret123", "host": "db.example.com"}', MASTER, c
    )
    assert new_l1 is not None and new_l0 is not None
    assert await c.open(new_l1) == DATA and await c.open(new_l0) == DATA
    assert await envelope.migrate_value(E1, MASTER, c) is None
    with pytest.raises(EncryptionError, match="corrupt"):
        await envelope.migrate_value("garbage", MASTER, c)
    counts = envelope.count_key_versions([E1, E1_V2, E1, '{"a": 1}', L1])
    assert counts == {"invalid": 2, "v1": 2, "v2": 1}
    assert list(counts) == ["invalid", "v1", "v2"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_strict_base64_round_trip(data: bytes) -> None:
    assert b64decode_strict(b64encode(data)) == data


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ABCDabcd0123+/=-_ \\n", max_size=12))
def test_strict_base64_accepts_only_canonical(text: str) -> None:
    try:
        data = b64decode_strict(text)
    except Base64Error:
        return
    assert b64encode(data) == text
