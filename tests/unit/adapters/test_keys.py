"""ES256 signing keys: loading, RFC 7638 key ids, key rings and their JWKS."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from usermgmt.adapters.keys import ALGORITHM, KeyConfigurationError, KeyRing, SigningKey, load_keyring


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def rfc7638_thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """Computed independently of the code under test: from the uncompressed point, members in lexical order."""
    point = public_key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    assert point[0] == 4 and len(point) == 65
    x, y = b64url(point[1:33]), b64url(point[33:65])
    required = '{"crv":"P-256","kty":"EC","x":"' + x + '","y":"' + y + '"}'
    return b64url(hashlib.sha256(required.encode("ascii")).digest())


def pem_of(private_key: object) -> bytes:
    return private_key.private_bytes(  # type: ignore[attr-defined, no-any-return]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def write_key(directory: Path, name: str, key: SigningKey | None = None) -> SigningKey:
    key = key or SigningKey.generate()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_bytes(key.private_pem())
    return key


# --- SigningKey ------------------------------------------------------------------------------------------------


def test_generate_and_pem_round_trip() -> None:
    key = SigningKey.generate()
    pem = key.private_pem()

    loaded = SigningKey.from_pem(pem, source="test")

    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert loaded.kid == key.kid
    assert loaded.public_jwk == key.public_jwk
    assert loaded.private_key.private_numbers() == key.private_key.private_numbers()


def test_generated_keys_differ() -> None:
    assert SigningKey.generate().kid != SigningKey.generate().kid


def test_kid_is_the_rfc7638_thumbprint() -> None:
    key = SigningKey.generate()

    assert key.kid == rfc7638_thumbprint(key.private_key.public_key())
    assert len(key.kid) == 43  # 256-bit digest, unpadded base64url


def test_kid_pads_short_coordinates_to_32_bytes() -> None:
    # Find a deterministic key whose x coordinate has a leading zero byte: a naive encoder would drop it.
    scalar = next(
        k for k in range(1, 5000) if ec.derive_private_key(k, ec.SECP256R1()).public_key().public_numbers().x < 2**248
    )
    private_key = ec.derive_private_key(scalar, ec.SECP256R1())

    key = SigningKey.from_private_key(private_key)

    assert key.kid == rfc7638_thumbprint(private_key.public_key())
    assert len(base64.urlsafe_b64decode(key.public_jwk["x"] + "=")) == 32


def test_public_jwk_has_the_public_members_only() -> None:
    key = SigningKey.generate()
    numbers = key.private_key.public_key().public_numbers()

    assert dict(key.public_jwk) == {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url(numbers.x.to_bytes(32, "big")),
        "y": b64url(numbers.y.to_bytes(32, "big")),
        "kid": key.kid,
        "use": "sig",
        "alg": "ES256",
    }
    assert "d" not in key.public_jwk
    assert ALGORITHM == "ES256"


def test_repr_hides_the_private_key() -> None:
    key = SigningKey.generate()
    assert "private_key" not in repr(key)
    assert key.kid in repr(key)


def test_kid_is_stable_for_a_fixed_key() -> None:
    private_key = ec.derive_private_key(12345, ec.SECP256R1())
    assert SigningKey.from_private_key(private_key).kid == SigningKey.from_pem(pem_of(private_key), source="x").kid


@pytest.mark.parametrize("curve", [ec.SECP384R1(), ec.SECP521R1(), ec.SECP256K1()])
def test_other_curves_are_rejected(curve: ec.EllipticCurve) -> None:
    private_key = ec.generate_private_key(curve)

    with pytest.raises(KeyConfigurationError, match="P-256"):
        SigningKey.from_private_key(private_key)
    with pytest.raises(KeyConfigurationError):
        SigningKey.from_pem(pem_of(private_key), source="test")


def test_rsa_key_is_rejected() -> None:
    pem = pem_of(rsa.generate_private_key(public_exponent=65537, key_size=2048))

    with pytest.raises(KeyConfigurationError, match="EC P-256"):
        SigningKey.from_pem(pem, source="rsa.pem")


def test_ed25519_key_is_rejected() -> None:
    with pytest.raises(KeyConfigurationError):
        SigningKey.from_pem(pem_of(ed25519.Ed25519PrivateKey.generate()), source="ed.pem")


@pytest.mark.parametrize(
    "pem",
    [
        b"",
        b"not a pem",
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
)
def test_garbage_pem_is_rejected_naming_its_source(pem: bytes) -> None:
    with pytest.raises(KeyConfigurationError, match=r"keys/broken\.pem"):
        SigningKey.from_pem(pem, source="keys/broken.pem")


def test_encrypted_pem_is_rejected() -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"passphrase"),
    )

    with pytest.raises(KeyConfigurationError, match="unencrypted"):
        SigningKey.from_pem(pem, source="enc.pem")


def test_public_key_pem_is_rejected() -> None:
    public_pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(KeyConfigurationError):
        SigningKey.from_pem(public_pem, source="pub.pem")


# --- KeyRing ---------------------------------------------------------------------------------------------------


def test_empty_keyring_is_refused() -> None:
    with pytest.raises(KeyConfigurationError):
        KeyRing(keys=())


def test_newest_key_signs_and_jwks_lists_all_newest_first() -> None:
    old, new = SigningKey.generate(), SigningKey.generate()
    ring = KeyRing(keys=(old, new))

    assert ring.active is new
    jwks = ring.jwks()
    assert [k["kid"] for k in jwks["keys"]] == [new.kid, old.kid]
    assert jwks["keys"][0] == dict(new.public_jwk)
    assert all("d" not in k for k in jwks["keys"])


# --- load_keyring ----------------------------------------------------------------------------------------------


def test_load_keyring_sorts_by_file_name_and_the_last_signs(tmp_path: Path) -> None:
    b = write_key(tmp_path, "2024-02.pem")
    c = write_key(tmp_path, "2024-03.pem")
    a = write_key(tmp_path, "2024-01.pem")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "backup.pem.bak").write_text("ignored")

    ring = load_keyring(tmp_path)

    assert [k.kid for k in ring.keys] == [a.kid, b.kid, c.kid]
    assert ring.active.kid == c.kid
    assert {k["kid"] for k in ring.jwks()["keys"]} == {a.kid, b.kid, c.kid}


def test_inline_pem_comes_after_the_files(tmp_path: Path) -> None:
    from_file = write_key(tmp_path, "a.pem")
    inline = SigningKey.generate()

    ring = load_keyring(tmp_path, inline_pem=inline.private_pem().decode())

    assert [k.kid for k in ring.keys] == [from_file.kid, inline.kid]
    assert ring.active.kid == inline.kid


def test_inline_pem_alone(tmp_path: Path) -> None:
    inline = SigningKey.generate()
    ring = load_keyring(tmp_path / "missing", inline_pem=inline.private_pem().decode())
    assert [k.kid for k in ring.keys] == [inline.kid]


def test_the_same_key_twice_is_listed_once(tmp_path: Path) -> None:
    key = write_key(tmp_path, "a.pem")
    write_key(tmp_path, "b.pem", key)

    ring = load_keyring(tmp_path)

    assert [k.kid for k in ring.keys] == [key.kid]


def test_a_bad_key_file_stops_start_up(tmp_path: Path) -> None:
    write_key(tmp_path, "a.pem")
    (tmp_path / "b.pem").write_bytes(b"junk")

    with pytest.raises(KeyConfigurationError, match=r"b\.pem"):
        load_keyring(tmp_path)


def test_no_key_and_no_autogenerate_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(KeyConfigurationError, match="no signing key"):
        load_keyring(tmp_path)
    with pytest.raises(KeyConfigurationError):
        load_keyring(tmp_path / "does-not-exist")
    assert not (tmp_path / "does-not-exist").exists()


def test_autogenerate_writes_a_private_0600_key_that_is_reused(tmp_path: Path) -> None:
    directory = tmp_path / "keys"

    ring = load_keyring(directory, autogenerate=True)

    files = list(directory.glob("*.pem"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) & 0o077 == 0  # directory not readable by others
    assert files[0].name.endswith(f"-{ring.active.kid[:8]}.pem")
    assert SigningKey.from_pem(files[0].read_bytes(), source="x").kid == ring.active.kid

    again = load_keyring(directory, autogenerate=True)  # a second start reuses it instead of generating
    assert [k.kid for k in again.keys] == [ring.active.kid]
    assert len(list(directory.glob("*.pem"))) == 1


def test_autogenerate_is_not_used_when_a_key_exists(tmp_path: Path) -> None:
    key = write_key(tmp_path, "a.pem")

    ring = load_keyring(tmp_path, autogenerate=True)

    assert [k.kid for k in ring.keys] == [key.kid]
    assert [p.name for p in tmp_path.glob("*.pem")] == ["a.pem"]


# --- load_keyring in production ---------------------------------------------------------------------------------


def write_private_key(directory: Path, name: str) -> SigningKey:
    key = write_key(directory, name)
    (directory / name).chmod(0o600)
    return key


def test_production_loads_private_key_files_and_inline_keys(tmp_path: Path) -> None:
    from_file = write_private_key(tmp_path, "20270101T000000Z-a.pem")
    read_only = write_key(tmp_path, "20270201T000000Z-b.pem")
    (tmp_path / "20270201T000000Z-b.pem").chmod(0o400)
    inline = SigningKey.generate()

    ring = load_keyring(tmp_path, inline_pem=inline.private_pem().decode(), autogenerate=True, production=True)

    assert [k.kid for k in ring.keys] == [from_file.kid, read_only.kid, inline.kid]


def test_production_refuses_to_generate_a_key(tmp_path: Path) -> None:
    directory = tmp_path / "keys"

    with pytest.raises(KeyConfigurationError, match="USERMGMT_SIGNING_KEY_AUTOGENERATE"):
        load_keyring(directory, autogenerate=True, production=True)

    assert not directory.exists()  # nothing was generated


def test_production_refuses_a_key_the_service_generated(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    generated = load_keyring(directory, autogenerate=True).active  # a development start
    write_private_key(directory, "20270101T000000Z-a.pem")  # the operator's own key, added later

    with pytest.raises(KeyConfigurationError, match=rf"{generated.kid[:8]}\.pem.*generated.*USERMGMT_SIGNING_KEYS_DIR"):
        load_keyring(directory, autogenerate=False, production=True)


def test_a_key_named_like_a_generated_one_is_not_taken_for_one(tmp_path: Path) -> None:
    key = write_private_key(tmp_path, "20270101T000000Z-abcdefgh.pem")  # the generator's pattern, another kid

    ring = load_keyring(tmp_path, production=True)

    assert ring.active.kid == key.kid


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o620, 0o700 | 0o001])
def test_production_refuses_a_key_file_others_may_access(tmp_path: Path, mode: int) -> None:
    write_key(tmp_path, "a.pem")
    (tmp_path / "a.pem").chmod(mode)

    with pytest.raises(KeyConfigurationError, match=rf"a\.pem.*mode {mode:04o}.*chmod 600"):
        load_keyring(tmp_path, production=True)


def test_development_accepts_what_production_refuses(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    generated = load_keyring(directory, autogenerate=True).active
    readable = write_key(directory, "20270101T000000Z-a.pem")
    (directory / "20270101T000000Z-a.pem").chmod(0o644)

    ring = load_keyring(directory)

    assert [k.kid for k in ring.keys] == [generated.kid, readable.kid]


@pytest.mark.parametrize("mode", [0o775, 0o777, 0o757])
def test_production_refuses_a_keys_folder_others_may_write(tmp_path: Path, mode: int) -> None:
    """Whoever may add a file there may add a key that sorts last, and it would sign (review of issue 12)."""
    directory = tmp_path / "keys"
    directory.mkdir()
    write_private_key(directory, "20270101T000000Z-a.pem")
    directory.chmod(mode)

    with pytest.raises(KeyConfigurationError, match="chmod go-w"):
        load_keyring(directory, production=True)
    assert load_keyring(directory).keys  # development does not mind


def test_production_accepts_a_keys_folder_only_its_owner_may_write(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir()
    key = write_private_key(directory, "20270101T000000Z-a.pem")
    directory.chmod(0o755)

    assert [k.kid for k in load_keyring(directory, production=True).keys] == [key.kid]
