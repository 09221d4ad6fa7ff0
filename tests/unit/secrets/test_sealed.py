"""Sealed delivery (secrets.md §2, §10, §12.1)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import BadRequest
from app.secrets import sealed
from app.secrets.encoding import b64encode
from app.secrets.errors import SealError, SealingRefused

BOB = X25519PrivateKey.from_private_bytes(
    bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
)
ALICE = X25519PrivateKey.from_private_bytes(
    bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
)
BOB_PUB = sealed.public_key_bytes(BOB)
HELLO_ENV = (
    '{"alg":"x25519-hkdf-sha256-chacha20-poly1305","v":1,'
    '"eph_pub":"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",'
    '"ciphertext":"1bomrwHtQsXiIqMcWNMCSQTPP6g2kmEN9bAOrQ=="}'
)
CRED_PLAIN = (
    b'{"id":"1234567890","name":"duffel-token","type":"bearer","data":{"token":"sk-test-AbCdEf123"},'
    b'"created_at":"2026-01-01T00:00:00Z","updated_at":"2026-01-01T00:00:00Z"}'
)
CRED_CT_HEX = (
    "c6fd23a74cfa1391b363f25da95cec19b038b899179029f6dd694649c8fccaeb8ee775c45d18fdc10cb8c502b66d85add148"
    "0e5782941cb77a54bceb57b56e165c7257ee3aafb20de2c722ae42e138b3365d92547663f04fbb3fa8b4289fcf662134b683"
    "c76510c3aa135fb16ef2491fb9fd798cff99d5849556e27a9c9d2956986c70ee727d4b10516eb21a1ad069cf25fb9caef111"
    "791dcaf02c47faa24bfbca3ee8d0c49b72463d038b58f4c4606fcb69de6c4da6"
)
CRED_ENV = (
    '{"alg":"x25519-hkdf-sha256-chacha20-poly1305","v":1,'
    '"eph_pub":"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",'
    '"ciphertext":"xv0jp0z6E5GzY/JdqVzsGbA4uJkXkCn23WlGScj8yuuO53XEXRj9wQy4xQK2bYWt0UgOV4KUHLd6VLzrV7VuFlxyV'
    "+46r7IN4scirkLhOLM2XZJUdmPwT7s/qLQon89mITS2g8dlEMOqE1+xbvJJH7n9eYz/mdWElVbiepydKVaYbHDucn1LEFFushoa0GnP"
    'JfucrvEReR3K8CxH+qJL+8o+6NDEm3JGPQOLWPTEYG/Lad5sTaY="}'
)


def _env(**over: object) -> str:
    d = json.loads(HELLO_ENV)
    d.update(over)
    return json.dumps(d)


def test_constants() -> None:
    assert sealed.AAD == b"x25519-hkdf-sha256-chacha20-poly1305|v=1"
    assert len(sealed.AAD) == 40
    assert BOB_PUB.hex() == "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f"


def test_hkdf_vector() -> None:
    shared = ALICE.exchange(BOB.public_key())
    assert shared.hex() == "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    k, n = sealed._derive(shared)
    assert k.hex() == "587317c7837ce495e6e8475335520fef4cb16b8f22e219472feb4d3e77fdf95c"
    assert n.hex() == "a4a725fafe0ce075b7b23a48"


@pytest.mark.parametrize(("env", "plain"), [(HELLO_ENV, b"hello-secret"), (CRED_ENV, CRED_PLAIN)])
def test_open_vectors(env: str, plain: bytes) -> None:  # §12.1 case 1
    assert sealed.open_sealed(BOB, env) == plain


def test_empty_vector() -> None:
    env = sealed.seal(BOB_PUB, b"", ephemeral=ALICE)
    assert env.ciphertext == "78vsTJd2sMYegFjLubWj/A=="
    assert sealed.open_sealed(BOB, env.to_json()) == b""


def test_seal_fixed_ephemeral_byte_identical() -> None:  # case 2
    assert sealed.seal(BOB_PUB, b"hello-secret", ephemeral=ALICE).to_json() == HELLO_ENV
    env = sealed.seal(BOB_PUB, CRED_PLAIN, ephemeral=ALICE)
    assert env.to_json() == CRED_ENV
    assert len(CRED_PLAIN) == 166
    import base64

    assert base64.b64decode(env.ciphertext).hex() == CRED_CT_HEX


@pytest.mark.parametrize("size", [0, 1, 13, 1024 * 1024])
def test_round_trip_sizes(size: int) -> None:  # case 3
    sk = X25519PrivateKey.generate()
    plain = bytes(range(256)) * (size // 256) + bytes(size % 256)
    env = sealed.seal(sealed.public_key_bytes(sk), plain)
    import base64

    assert len(base64.b64decode(env.ciphertext)) == size + 16
    assert sealed.open_sealed(sk, env.to_json()) == plain


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=512))
def test_round_trip_property(plain: bytes) -> None:
    env = sealed.seal(BOB_PUB, plain)
    assert sealed.open_sealed(BOB, env.to_dict()) == plain


def test_two_seals_differ() -> None:  # case 4
    a = sealed.seal(BOB_PUB, b"same")
    b = sealed.seal(BOB_PUB, b"same")
    assert a.eph_pub != b.eph_pub
    assert a.ciphertext != b.ciphertext


def _ct_mutated(fn) -> str:  # type: ignore[no-untyped-def]
    import base64

    ct = bytearray(base64.b64decode(json.loads(HELLO_ENV)["ciphertext"]))
    return _env(ciphertext=b64encode(bytes(fn(ct))))


def _flip_first(ct: bytearray) -> bytearray:
    ct[0] ^= 1
    return ct


def _flip_last(ct: bytearray) -> bytearray:
    ct[-1] ^= 1
    return ct


@pytest.mark.parametrize("mut", [_flip_first, _flip_last, lambda ct: ct[:15]])
def test_tamper_fails(mut) -> None:  # type: ignore[no-untyped-def]  # case 5
    with pytest.raises(SealError, match=r"^sealed open: AEAD verify/decrypt: aead::Error$"):
        sealed.open_sealed(BOB, _ct_mutated(mut))


def test_wrong_eph_or_recipient() -> None:  # case 6
    other = b64encode(sealed.public_key_bytes(X25519PrivateKey.generate()))
    with pytest.raises(SealError, match="AEAD"):
        sealed.open_sealed(BOB, _env(eph_pub=other))
    with pytest.raises(SealError, match="AEAD"):
        sealed.open_sealed(X25519PrivateKey.generate(), HELLO_ENV)


def test_unsupported_alg_before_crypto() -> None:  # case 7
    # eph_pub is garbage too: alg must be reported first.
    with pytest.raises(SealError) as ei:
        sealed.open_sealed(BOB, _env(alg="x25519-hkdf-sha256-aes-gcm-v2", eph_pub="%%%"))
    assert str(ei.value) == (
        "sealed open: unsupported alg 'x25519-hkdf-sha256-aes-gcm-v2' "
        "(expected 'x25519-hkdf-sha256-chacha20-poly1305')"
    )


def test_version_checks() -> None:  # case 8
    with pytest.raises(SealError) as ei:
        sealed.open_sealed(BOB, _env(v=8, eph_pub="%%%"))
    assert str(ei.value) == "sealed open: unsupported version 8 (expected 1)"
    for bad in (256, -1, "1", 1.5, True):
        with pytest.raises(SealError, match="^sealed open: json"):
            sealed.open_sealed(BOB, _env(v=bad))


@pytest.mark.parametrize("n", [16, 0])
def test_eph_pub_length(n: int) -> None:  # case 9
    with pytest.raises(SealError) as ei:
        sealed.open_sealed(BOB, _env(eph_pub=b64encode(bytes(n))))
    assert str(ei.value) == f"sealed open: eph_pub must be 32 bytes, got {n}"


@pytest.mark.parametrize(
    "bad",
    [
        "%not base64%",
        "1bomrwHtQsXiIqMcWNMCSQTPP6g2kmEN9bAOrR==",  # non-zero trailing bits
        "1bomrwHtQsXiIqMcWNMCSQTPP6g2kmEN9b-OrQ==",  # url-safe alphabet
        "1bomrwHtQsXiIqMcWNMCSQTPP6g2kmEN9bAOrQ",
        "1bomrwHtQsXiIqMc\nWNMCSQTPP6g2kmEN9bAOrQ==",
        "AB==",
    ],
)
def test_ciphertext_base64_strict(bad: str) -> None:  # case 10
    with pytest.raises(SealError, match="^sealed open: ciphertext base64: "):
        sealed.open_sealed(BOB, _env(ciphertext=bad))


def test_eph_pub_base64_strict() -> None:
    with pytest.raises(SealError, match="^sealed open: eph_pub base64: "):
        sealed.open_sealed(BOB, _env(eph_pub="hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo="))


def test_low_order_eph_pub() -> None:  # case 11
    with pytest.raises(SealError) as ei:
        sealed.open_sealed(BOB, _env(eph_pub=b64encode(bytes(32))))
    assert str(ei.value) == "sealed open: eph_pub is a low-order point"


def test_wrong_aad_version_label() -> None:  # case 12
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    k, n = sealed._derive(ALICE.exchange(BOB.public_key()))
    ct = ChaCha20Poly1305(k).encrypt(n, b"x", b"x25519-hkdf-sha256-chacha20-poly1305|v=2")
    with pytest.raises(SealError, match="AEAD"):
        sealed.open_sealed(BOB, _env(ciphertext=b64encode(ct)))


def test_extra_keys_ignored() -> None:  # case 13
    assert sealed.open_sealed(BOB, _env(extra="x", nonce="y")) == b"hello-secret"


def test_seal_to_low_order_refused() -> None:
    with pytest.raises(SealingRefused):
        sealed.seal(bytes(32), b"x")
    one = (1).to_bytes(32, "little")
    with pytest.raises(SealingRefused):
        sealed.seal(one, b"x")


def test_worker_pubkey_validation() -> None:  # case 14 (library half) + §2.5 messages
    assert sealed.decode_worker_pubkey("w", b64encode(BOB_PUB)) == BOB_PUB
    with pytest.raises(BadRequest, match=r"^worker 'w' worker_public_key base64: "):
        sealed.decode_worker_pubkey("w", "abc")
    with pytest.raises(BadRequest, match=r"^worker 'w' worker_public_key must be 32 bytes, got 3$"):
        sealed.decode_worker_pubkey("w", "YWJj")
    with pytest.raises(BadRequest, match="is not a valid X25519 public key$"):
        sealed.decode_worker_pubkey("w", b64encode(bytes(32)))


def test_broker_pubkey_trims() -> None:  # §12.5 case 60 (decoder half)
    assert sealed.decode_broker_pubkey(" " + b64encode(BOB_PUB) + "\n") == BOB_PUB
    with pytest.raises(BadRequest, match=r"expected 32 bytes, got 31$"):
        sealed.decode_broker_pubkey(b64encode(bytes(31)))
    with pytest.raises(BadRequest, match="base64 decode"):
        sealed.decode_broker_pubkey("a b")
    with pytest.raises(BadRequest, match="not a valid X25519 public key"):
        sealed.decode_broker_pubkey(b64encode(bytes(32)))


# The small-order points of Curve25519 (and their non-canonical u + p encodings), RFC 7748 / libsodium's
# blocklist: the fixed probe key must flag exactly these, like a fresh key would.
_P = 2**255 - 19
_SMALL_ORDER_U = [
    0,
    1,
    325606250916557431795983626356110631294008115727848805560023387167927233504,
    39382357235489614581723060781553021112529911719440698176882885853963445705823,
    _P - 1,
    _P,
    _P + 1,
]


@pytest.mark.parametrize("u", _SMALL_ORDER_U)
def test_low_order_points_flagged(u: int) -> None:
    pub = u.to_bytes(32, "little")
    assert sealed.is_low_order(pub)
    with pytest.raises(SealingRefused):
        sealed.seal(pub, b"x")


@settings(max_examples=100, deadline=None)
@given(st.binary(min_size=32, max_size=32))
def test_probe_agrees_with_fresh_key(pub: bytes) -> None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    try:
        fresh = X25519PrivateKey.generate().exchange(X25519PublicKey.from_public_bytes(pub)) == bytes(32)
    except ValueError:
        fresh = True
    assert sealed.is_low_order(pub) is fresh


def test_valid_keys_not_low_order() -> None:
    for _ in range(20):
        assert not sealed.is_low_order(sealed.public_key_bytes(X25519PrivateKey.generate()))
    assert not sealed.is_low_order(BOB_PUB)


@pytest.mark.parametrize(
    "text",
    [
        '{"a":1}',
        b'{"a":[1,2.5,"x"]}',
        '{"a":1}'.encode("utf-16"),
        '{"a":"é"}'.encode("utf-32-le"),
        "\ufeff{}",
        "[NaN]",
        b"[Infinity]",
        "{",
        b"\xff\xfe\x00",
    ],
)
def test_loads_matches_json_loads(text: str | bytes) -> None:
    from app.secrets.encoding import loads

    def reject(name: str) -> None:
        raise ValueError(f"invalid number {name}")

    try:
        want: object = json.loads(text, parse_constant=reject)
    except Exception as exc:
        want = (type(exc), str(exc))
    try:
        got: object = loads(text)
    except Exception as exc:
        got = (type(exc), str(exc))
    assert got == want
