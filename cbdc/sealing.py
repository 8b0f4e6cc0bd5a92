"""Sealing data to a public key: X25519 + HKDF-SHA256 + AES-256-GCM (an ECIES/HPKE-base-mode
construction with an ephemeral sender key).

Used to seal each wallet's identity record to the regulator's public key: the operator can
produce the sealed box, only the holder of the regulator's private key can open it, and no
service holds that key.

    sealed = {"v": 1, "epk": <ephemeral X25519 public>, "nonce": <12 bytes>, "ct": <AES-GCM>}
    key    = HKDF-SHA256(ikm = X25519(eph, recipient), salt = epk || recipient_pk,
                         info = b"cbdc-seal-v1" || context)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cbdc.crypto import b64d, b64e, canonical_json, read_secret, write_secret

INFO = b"cbdc-seal-v1"


class SealError(ValueError):
    """The sealed box cannot be opened with this key (wrong key or tampered)."""


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def _derive(shared: bytes, epk: bytes, rpk: bytes, context: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=epk + rpk, info=INFO + context).derive(
        shared
    )


class SealingKey:
    """An X25519 private key (the recipient side)."""

    def __init__(self, key: X25519PrivateKey) -> None:
        self._key = key
        self.public_key = b64e(_raw(key.public_key()))

    @classmethod
    def generate(cls) -> SealingKey:
        return cls(X25519PrivateKey.generate())

    def private_bytes(self) -> str:
        return b64e(
            self._key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )

    @classmethod
    def from_private_bytes(cls, text: str) -> SealingKey:
        return cls(X25519PrivateKey.from_private_bytes(b64d(text)))

    def save(self, path: Path) -> None:
        write_secret(path, self.private_bytes())

    @classmethod
    def load(cls, path: Path) -> SealingKey:
        return cls.from_private_bytes(read_secret(path))

    def open(self, sealed: dict[str, Any], *, context: bytes = b"") -> bytes:
        try:
            epk = b64d(sealed["epk"])
            shared = self._key.exchange(X25519PublicKey.from_public_bytes(epk))
            key = _derive(shared, epk, _raw(self._key.public_key()), context)
            return AESGCM(key).decrypt(b64d(sealed["nonce"]), b64d(sealed["ct"]), context)
        except (InvalidTag, KeyError, ValueError) as exc:
            raise SealError("cannot open sealed box with this key") from exc

    def open_json(self, sealed: dict[str, Any], *, context: bytes = b"") -> Any:
        import json

        return json.loads(self.open(sealed, context=context))


def seal(recipient_public_key: str, plaintext: bytes, *, context: bytes = b"") -> dict[str, Any]:
    rpk = b64d(recipient_public_key)
    ephemeral = X25519PrivateKey.generate()
    epk = _raw(ephemeral.public_key())
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(rpk))
    key = _derive(shared, epk, rpk, context)
    nonce = os.urandom(12)
    return {
        "v": 1,
        "epk": b64e(epk),
        "nonce": b64e(nonce),
        "ct": b64e(AESGCM(key).encrypt(nonce, plaintext, context)),
    }


def seal_json(recipient_public_key: str, value: Any, *, context: bytes = b"") -> dict[str, Any]:
    return seal(recipient_public_key, canonical_json(value), context=context)
