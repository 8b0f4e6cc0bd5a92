"""A tamper-evident, append-only log: each entry's hash covers the previous entry's hash.

    hash_n = SHA-256(hash_{n-1} || canonical_json(entry_n)),  hash_0 = 64 zeros

Changing, deleting or reordering an entry breaks the link of the entry after it, so
`verify_chain` finds the first entry that no longer fits. Cutting entries off the *end* leaves
a shorter chain that is still consistent: that is caught by comparing with a head seen before
(`anchor`), which the regulator's CLI keeps for every log it has verified. (The database also
refuses UPDATE, DELETE and TRUNCATE on the log; the chain is what detects an edit made behind
the database's back.)

A chain alone cannot stop whoever can write the table *and* recompute every hash after an edit
(a database superuser with the append-only triggers off). cbdc/disclosure_log.py adds what does:
the regulator's signature on every logged order, and heads anchored outside the operator's
database (at the central bank, and in the regulator's own anchor file).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from cbdc.crypto import canonical_json

GENESIS = "0" * 64


def link_hash(previous_hash: str, entry: dict[str, Any]) -> str:
    return hashlib.sha256(previous_hash.encode() + canonical_json(entry)).hexdigest()


def verify_chain(
    rows: Iterable[tuple[int, str, dict[str, Any], str]],
    *,
    anchor: tuple[int, str] | None = None,
) -> dict[str, Any]:
    """rows: (seq, prev_hash, entry, hash) in seq order; `anchor` = (length, head) seen before.
    Returns {"ok", "length", "broken_at", "head"}."""
    rows = list(rows)
    if anchor is not None:
        seen_length, seen_head = anchor
        if len(rows) < seen_length or (seen_length and rows[seen_length - 1][3] != seen_head):
            return {
                "ok": False,
                "length": len(rows),
                "broken_at": min(len(rows) + 1, seen_length),
                "head": rows[-1][3] if rows else GENESIS,
                "truncated": True,
            }
    previous = GENESIS
    length = 0
    expected_seq = 1
    for seq, prev_hash, entry, stored_hash in rows:
        length += 1
        fits = prev_hash == previous and link_hash(previous, entry) == stored_hash
        if seq != expected_seq or not fits:
            return {"ok": False, "length": length, "broken_at": seq, "head": stored_hash}
        previous = stored_hash
        expected_seq += 1
    return {"ok": True, "length": length, "broken_at": None, "head": previous}
