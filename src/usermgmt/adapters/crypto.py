"""Secrets at rest: AES-256-GCM (``cryptography``) under data keys that rotate, and keyed digests of short codes.

A sealed value is ``v1.<key id>.<base64url(nonce || ciphertext+tag)>``: the key id (16 hex digits of the key's
SHA-256) picks the key that opens it, the 96-bit nonce is random per seal, and the context (its owner's id) is the
associated data, so a sealed secret copied to another account does not open. Digests (HMAC-SHA-256) use a key
derived from each data key with HKDF, never the data key itself.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

logger = logging.getLogger(__name__)

KEY_BYTES: Final = 32
NONCE_BYTES: Final = 12
VERSION: Final = "v1"
DEV_KEY_FILE: Final = "data-encryption.key"


class DataKeyError(RuntimeError):
    """The data encryption keys cannot be loaded; the service refuses to start."""


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def key_id(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


class AesGcmSecretBox:
    """The ``SecretBox`` port: seals under the first key, opens under whichever key sealed."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise DataKeyError("no data encryption key")
        if any(len(key) != KEY_BYTES for key in keys):
            raise DataKeyError("a data encryption key is 32 bytes")
        self._keys = {key_id(key): AESGCM(key) for key in keys}
        self._newest = key_id(keys[0])
        self._digest_keys = tuple(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"usermgmt code digests").derive(key)
            for key in keys
        )

    def seal(self, plaintext: bytes, *, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._keys[self._newest].encrypt(nonce, plaintext, context.encode())
        return f"{VERSION}.{self._newest}.{_b64encode(nonce + sealed)}"

    def open(self, sealed: str, *, context: str) -> bytes:
        version, _, rest = sealed.partition(".")
        kid, _, body = rest.partition(".")
        aead = self._keys.get(kid)
        if version != VERSION or aead is None:
            raise ValueError("sealed under an unknown key")
        try:
            data = _b64decode(body)
            return aead.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], context.encode())
        except (InvalidTag, binascii.Error, ValueError) as exc:
            raise ValueError("the sealed value does not open") from exc

    def fingerprints(self, value: str) -> tuple[str, ...]:
        data = value.encode()
        return tuple(hmac.new(key, data, hashlib.sha256).hexdigest() for key in self._digest_keys)


def load_data_keys(configured: Sequence[str], *, keys_dir: Path, production: bool) -> list[bytes]:
    """The configured keys (base64url, newest first); with none and not ``production``, the development key in
    ``keys_dir``, generated (mode 0600) on first start. Raises: DataKeyError."""
    if configured:
        return [_b64decode(text) for text in configured]
    if production:
        raise DataKeyError("USERMGMT_DATA_ENCRYPTION_KEYS is required with USERMGMT_ENVIRONMENT=production")
    path = keys_dir / DEV_KEY_FILE
    try:
        return [_b64decode(path.read_text().strip())]
    except FileNotFoundError:
        pass
    key = os.urandom(KEY_BYTES)
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another worker generated it first
        return [_b64decode(path.read_text().strip())]
    with os.fdopen(fd, "w") as handle:
        handle.write(_b64encode(key) + "\n")
    logger.warning("generated a development data encryption key in %s", path)
    return [key]
