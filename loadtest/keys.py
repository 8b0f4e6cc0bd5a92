"""Deterministic wallet keys for load tests: the key of wallet number `i` of operator `code` is
derived from a seed, so seeding registers only public keys and every Locust process (master or
worker, on any machine) re-derives the private keys it needs instead of reading a key file.

Never use this for real wallets: anyone who knows the seed can spend.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cbdc.crypto import SigningKey


def private_bytes(seed: str, code: str, index: int) -> bytes:
    return hashlib.sha256(f"cbdc-loadtest:{seed}:{code}:{index}".encode()).digest()


def derive_key(seed: str, code: str, index: int) -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(private_bytes(seed, code, index)))


wallet_key = lru_cache(maxsize=200_000)(derive_key)  # Locust users sign with the same keys often
