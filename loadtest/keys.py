"""Deterministic wallet keys for load tests: the key of wallet number `i` of operator `code` is
derived from a seed, so seeding registers only public keys and every Locust process (master or
worker, on any machine) re-derives the private keys it needs instead of reading a key file.

Deriving a key costs an Ed25519 scalar multiplication (the public key), as much as a signature:
Locust processes derive the payers' keys once, before the test (`derive_keys_ahead` in
`loadtest.scenarios.common`), and keep them, as a wallet keeps its key.

Never use this for real wallets: anyone who knows the seed can spend.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from cbdc.crypto import SigningKey

# Keys kept per process: every seeded payer of the default bench (2 x 10,000) and then some.
# Larger manifests derive the keys past this bound again when they come round.
KEYS_KEPT = 200_000


def private_bytes(seed: str, code: str, index: int) -> bytes:
    return hashlib.sha256(f"cbdc-loadtest:{seed}:{code}:{index}".encode()).digest()


def derive_key(seed: str, code: str, index: int) -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(private_bytes(seed, code, index)))


def derive_private_key(seed: str, code: str, index: int) -> Ed25519PrivateKey:
    """The raw key (what signing needs; no public key encoded)."""
    return Ed25519PrivateKey.from_private_bytes(private_bytes(seed, code, index))


wallet_key = lru_cache(maxsize=KEYS_KEPT)(derive_key)  # signed reads, the batch phase
private_key = lru_cache(maxsize=KEYS_KEPT)(derive_private_key)  # Locust's payers
