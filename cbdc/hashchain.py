"""A tamper-evident, append-only log: each entry's hash covers the previous entry's hash.

    hash_n = SHA-256(hash_{n-1} || canonical_json(entry_n)),  hash_0 = 64 zeros

Changing, deleting or reordering any entry changes every later hash, so `verify_chain` finds
the first entry that no longer fits. (The database also refuses UPDATE and DELETE on the log;
the chain is what detects an edit made behind the database's back.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from cbdc.crypto import canonical_json

GENESIS = "0" * 64


def link_hash(previous_hash: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(previous_hash.encode() + canonical_json(entry)).hexdigest()


def verify_chain(rows: Iterable[tuple[int, str, dict[str, Any], str]]) -> dict[str, Any]:
    """rows: (seq, prev_hash, entry, hash) in seq order. Returns {"ok", "length", "broken_at"}."""
    previous = GENESIS
    length = 0
    expected_seq = 1
    for seq, prev_hash, entry, stored_hash in rows:
        length += 1
        fits = prev_hash == previous and link_hash(previous, entry) == stored_hash
        if seq != expected_seq or not fits:
            return {"ok": False, "length": length, "broken_at": seq}
        previous = stored_hash
        expected_seq += 1
    return {"ok": True, "length": length, "broken_at": None, "head": previous}
