"""Ed25519 keys, canonical JSON and detached signatures.

Everything that is signed in this system (tokens, certificates, payment orders, HTTP requests,
settlement receipts) is signed over *canonical JSON*: keys sorted, no whitespace, UTF-8. That
makes a signature independent of how a client happened to serialise a dict.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


def b64e(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64d(text: str) -> bytes:
    pad = "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(text + pad)


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sha256_hex(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


class SigningKey:
    """An Ed25519 private key with the encodings this project uses."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.public_key = b64e(
            key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
        )

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, text: str) -> SigningKey:
        return cls(Ed25519PrivateKey.from_private_bytes(b64d(text)))

    def private_bytes(self) -> str:
        return b64e(
            self._key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    def sign(self, message: bytes) -> str:
        return b64e(self._key.sign(message))

    def sign_json(self, value: Any) -> str:
        return self.sign(canonical_json(value))

    def save(self, path: Path) -> None:
        write_secret(path, self.private_bytes())

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        return cls.from_private_bytes(read_secret(path))


def write_secret(path: Path, text: str) -> None:
    """A key file: one line, readable by its owner only (created that way, never widened)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text + "\n")


def read_secret(path: Path) -> str:
    return path.read_text().strip()


def verify(public_key: str, message: bytes, signature: str) -> bool:
    """True when `signature` is a valid Ed25519 signature of `message` by `public_key`."""
    try:
        key = Ed25519PublicKey.from_public_bytes(b64d(public_key))
        key.verify(b64d(signature), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def verify_json(public_key: str, value: Any, signature: str) -> bool:
    return verify(public_key, canonical_json(value), signature)
