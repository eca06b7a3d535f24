"""ES256 signing keys: loaded (or generated for development) once at start-up, published as a JWKS."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

ALGORITHM = "ES256"
logger = logging.getLogger(__name__)


class KeyConfigurationError(RuntimeError):
    """The signing keys cannot be loaded; the service refuses to start."""


def _b64url_uint(value: int) -> str:
    return base64.urlsafe_b64encode(value.to_bytes(32, "big")).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One P-256 key pair. ``kid`` is its RFC 7638 thumbprint, so it is stable wherever the key is loaded."""

    kid: str
    private_key: ec.EllipticCurvePrivateKey = field(repr=False)
    public_jwk: Mapping[str, str]

    @classmethod
    def from_private_key(cls, private_key: ec.EllipticCurvePrivateKey) -> SigningKey:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise KeyConfigurationError("ES256 needs a P-256 (secp256r1) key")
        numbers = private_key.public_key().public_numbers()
        thumbprint_input = {"crv": "P-256", "kty": "EC", "x": _b64url_uint(numbers.x), "y": _b64url_uint(numbers.y)}
        canonical = json.dumps(thumbprint_input, separators=(",", ":"), sort_keys=True).encode()
        kid = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode("ascii")
        jwk = {**thumbprint_input, "kid": kid, "use": "sig", "alg": ALGORITHM}
        return cls(kid=kid, private_key=private_key, public_jwk=jwk)

    @classmethod
    def from_pem(cls, pem: bytes, *, source: str) -> SigningKey:
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError) as exc:
            raise KeyConfigurationError(f"{source}: not an unencrypted PEM private key") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise KeyConfigurationError(f"{source}: ES256 needs an EC P-256 private key")
        return cls.from_private_key(key)

    @classmethod
    def generate(cls) -> SigningKey:
        return cls.from_private_key(ec.generate_private_key(ec.SECP256R1()))

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )


@dataclass(frozen=True, slots=True)
class KeyRing:
    """All published keys, oldest first. The newest signs; every one of them verifies."""

    keys: Sequence[SigningKey]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyConfigurationError("no signing key configured")

    @property
    def active(self) -> SigningKey:
        return self.keys[-1]

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(key.public_jwk) for key in reversed(self.keys)]}


def load_keyring(
    directory: Path, *, inline_pem: str | None = None, autogenerate: bool = False, production: bool = False
) -> KeyRing:
    """Keys from ``directory/*.pem`` sorted by file name, then ``inline_pem``; the last one signs.

    With none found and ``autogenerate``, a new key is written to ``directory`` (mode 0600) for development.
    With ``production``, refuses what is fit for development only: a key about to be generated, a key file this
    service generated, and a key file that grants any access to its group or others. Every refusal names the
    setting to fix.

    Raises: KeyConfigurationError.
    """
    keys: list[SigningKey] = []
    if directory.is_dir():
        if production:
            _check_not_writable_by_others(directory)
        for path in sorted(directory.glob("*.pem")):
            if production:
                _check_private(path)
            key = SigningKey.from_pem(path.read_bytes(), source=str(path))
            if production and _was_generated(path, key):
                raise KeyConfigurationError(
                    f"{path} is a development key this service generated; USERMGMT_ENVIRONMENT=production needs "
                    "a key you created and keep: put it in USERMGMT_SIGNING_KEYS_DIR or USERMGMT_SIGNING_KEY "
                    "(README, Signing keys) and remove this one"
                )
            keys.append(key)
    if inline_pem:
        keys.append(SigningKey.from_pem(inline_pem.encode(), source="USERMGMT_SIGNING_KEY"))
    if not keys and autogenerate:
        if production:
            raise KeyConfigurationError(
                f"no signing key in {directory} and USERMGMT_SIGNING_KEY_AUTOGENERATE=true: with "
                "USERMGMT_ENVIRONMENT=production the service does not generate its key; create one (README, "
                "Signing keys), put it in USERMGMT_SIGNING_KEYS_DIR or USERMGMT_SIGNING_KEY, and set "
                "USERMGMT_SIGNING_KEY_AUTOGENERATE=false"
            )
        keys.append(_generate_into(directory))
    if not keys:
        raise KeyConfigurationError(
            f"no signing key: put an ES256 PEM key in {directory}, set USERMGMT_SIGNING_KEY, "
            "or set USERMGMT_SIGNING_KEY_AUTOGENERATE=true"
        )
    unique = {key.kid: key for key in keys}
    return KeyRing(keys=tuple(sorted(unique.values(), key=keys.index)))


def _check_private(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyConfigurationError(
            f"{path} grants access to its group or others (mode {mode:04o}); with USERMGMT_ENVIRONMENT=production "
            f"a signing key in USERMGMT_SIGNING_KEYS_DIR must be readable by its owner only: chmod 600 {path}"
        )


def _check_not_writable_by_others(directory: Path) -> None:
    """Whoever may write the folder may add a key that sorts last and signs."""
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o022:
        raise KeyConfigurationError(
            f"{directory} is writable by its group or others (mode {mode:04o}); with USERMGMT_ENVIRONMENT=production "
            f"anyone who can add a file there can add a signing key: chmod go-w {directory}"
        )


def _generated_name(key: SigningKey, at: datetime) -> str:
    return f"{at:%Y%m%dT%H%M%SZ}-{key.kid[:8]}.pem"


_GENERATED_NAME = re.compile(r"\d{8}T\d{6}Z-(?P<kid>.{8})\.pem")


def _was_generated(path: Path, key: SigningKey) -> bool:
    """True when the file bears the name ``_generate_into`` gives, with this key's own kid in it."""
    match = _GENERATED_NAME.fullmatch(path.name)
    return match is not None and match["kid"] == key.kid[:8]


def _generate_into(directory: Path) -> SigningKey:
    key = SigningKey.generate()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / _generated_name(key, datetime.now(UTC))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_pem())
    logger.warning("generated a development signing key in %s (kid %s)", path, key.kid)
    return key
