"""SQL of identity history and the evidence blind index (tables of migration op0010).

`identity_versions` is append-only in the database (triggers); `evidence_index` is a working
index, rewritten per wallet whenever the wallet's verified identity or class changes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.sqlarrays import int_array, nullable_text_array, text_array

# (kind, blind_index, holder or None)
IndexRow = tuple[str, str, str | None]


def next_version(session: Session, wallet_id: str) -> int:
    return int(
        session.execute(
            text(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM identity_versions WHERE wallet_id = :w"
            ),
            {"w": wallet_id},
        ).scalar_one()
    )


def add_version(
    session: Session,
    *,
    version: int,
    wallet_id: str,
    customer_id: int,
    valid_from: datetime,
    wallet_class: int,
    evidence: Sequence[str],
    changed_by: str,
    escrow: dict[str, Any],
) -> None:
    """Append the wallet's identity version `version` (the next: the database refuses any
    other). The wallet row is locked by the caller (or new), so versions of one wallet are
    written one at a time."""
    session.execute(
        text(
            "INSERT INTO identity_versions (wallet_id, version, customer_id, valid_from, "
            "wallet_class, evidence, changed_by, escrow) "
            "VALUES (:w, :v, :c, :f, :k, :e, :by, CAST(:x AS jsonb))"
        ),
        {
            "v": version,
            "w": wallet_id,
            "c": customer_id,
            "f": valid_from,
            "k": wallet_class,
            "e": list(evidence),
            "by": changed_by,
            "x": json.dumps(escrow),
        },
    )


def versions(session: Session, wallet_id: str) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT version, valid_from, wallet_class, evidence, changed_by, escrow "
            "FROM identity_versions WHERE wallet_id = :w ORDER BY version"
        ),
        {"w": wallet_id},
    ).mappings()
    return [dict(r) for r in rows]


def verified_kinds(session: Session, customer_id: int) -> set[str]:
    """Every evidence kind ever verified for the customer: in any identity version of any of
    its wallets, or in a wallet's current evidence (wallets without escrow)."""
    return set(
        session.execute(
            text(
                "SELECT unnest(evidence) FROM identity_versions WHERE customer_id = :c "
                "UNION SELECT unnest(evidence) FROM wallets WHERE customer_id = :c"
            ),
            {"c": customer_id},
        ).scalars()
    )


def wallets_of_customer(session: Session, customer_id: int) -> list[str]:
    return list(
        session.execute(
            text("SELECT id FROM wallets WHERE customer_id = :c ORDER BY id"), {"c": customer_id}
        ).scalars()
    )


# ------------------------------------------------------------------ blind index


def indexed_kinds(session: Session, wallet_ids: Sequence[str]) -> dict[str, set[str]]:
    """The evidence kinds each wallet has in the index now."""
    rows = session.execute(
        text(
            "SELECT wallet_id, kind FROM evidence_index WHERE wallet_id = ANY(CAST(:w AS text[]))"
        ),
        {"w": text_array(list(wallet_ids))},
    )
    found: dict[str, set[str]] = {}
    for r in rows:
        found.setdefault(r.wallet_id, set()).add(r.kind)
    return found


def lock_index_keys(session: Session, keys: Sequence[tuple[str, str]]) -> None:
    """Serialise opens and changes that touch the same evidence: the table in ROW EXCLUSIVE
    mode first (so a bulk onboarding, which locks the whole index, waits for us or we for
    it), then one advisory lock per (kind, blind index), in sorted order."""
    session.execute(text("LOCK TABLE evidence_index IN ROW EXCLUSIVE MODE"))
    for kind, index in sorted(set(keys)):
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtext('evidence:' || :k), hashtext(:i))"),
            {"k": kind, "i": index},
        )


def lock_whole_index(session: Session) -> None:
    """Bulk onboarding: one lock that excludes every other writer of the index."""
    session.execute(text("LOCK TABLE evidence_index IN SHARE ROW EXCLUSIVE MODE"))


def delete_wallet_rows(session: Session, wallet_ids: Sequence[str]) -> None:
    session.execute(
        text("DELETE FROM evidence_index WHERE wallet_id = ANY(CAST(:w AS text[]))"),
        {"w": text_array(list(wallet_ids))},
    )


def count_wallets(session: Session, *, kind: str, index: str, wallet_class: int) -> int:
    return int(
        session.execute(
            text(
                "SELECT count(*) FROM evidence_index "
                "WHERE kind = :k AND blind_index = :i AND wallet_class = :c"
            ),
            {"k": kind, "i": index, "c": wallet_class},
        ).scalar_one()
    )


def other_holder_exists(session: Session, *, kind: str, index: str, holder: str) -> bool:
    """Is this evidence already bound to a different holder (by their blind index)?"""
    return (
        session.execute(
            text(
                "SELECT 1 FROM evidence_index WHERE kind = :k AND blind_index = :i "
                "AND holder IS NOT NULL AND holder <> :h LIMIT 1"
            ),
            {"k": kind, "i": index, "h": holder},
        ).first()
        is not None
    )


def add_rows(session: Session, rows: Sequence[tuple[str, str, str, int, str | None]]) -> None:
    """(kind, blind_index, wallet_id, wallet_class, holder) rows."""
    if not rows:
        return
    kinds, indexes, wallets, classes, holders = zip(*rows, strict=True)
    session.execute(
        text(
            "INSERT INTO evidence_index (kind, blind_index, wallet_id, wallet_class, holder) "
            "SELECT * FROM unnest(CAST(:k AS text[]), CAST(:i AS text[]), CAST(:w AS text[]), "
            "CAST(:c AS smallint[]), CAST(:h AS text[]))"
        ),
        {
            "k": text_array(list(kinds)),
            "i": text_array(list(indexes)),
            "w": text_array(list(wallets)),
            "c": int_array(classes),
            "h": nullable_text_array(list(holders)),
        },
    )


def unindexed_wallets(session: Session, *, after: str, limit: int) -> list[Any]:
    """Wallets with verified evidence but no row in the index (opened before op0010), with
    their customer's encrypted identity."""
    return list(
        session.execute(
            text(
                "SELECT w.id, w.wallet_class, w.evidence, c.id AS customer_id, c.identity "
                "FROM wallets w JOIN customers c ON c.id = w.customer_id "
                "WHERE w.id > :after AND cardinality(w.evidence) > 0 AND NOT EXISTS "
                "(SELECT 1 FROM evidence_index e WHERE e.wallet_id = w.id) "
                "ORDER BY w.id LIMIT :n"
            ),
            {"after": after, "n": limit},
        ).all()
    )


def legacy_phone_rows(session: Session, *, prefix: str, limit: int) -> list[Any]:
    """Phone rows of the index made before the E.164 normal form (no `prefix`), with the
    wallet's customer's encrypted identity."""
    return list(
        session.execute(
            text(
                "SELECT e.wallet_id, e.blind_index, c.id AS customer_id, c.identity "
                "FROM evidence_index e JOIN wallets w ON w.id = e.wallet_id "
                "JOIN customers c ON c.id = w.customer_id "
                "WHERE e.kind = 'phone' AND NOT starts_with(e.blind_index, :p) "
                "ORDER BY e.wallet_id LIMIT :n"
            ),
            {"p": prefix, "n": limit},
        ).all()
    )


def replace_phone_index(session: Session, *, wallet_id: str, old: str, new: str | None) -> None:
    """Rewrite one wallet's phone row to `new` (or drop it: the identity has no phone)."""
    params = {"w": wallet_id, "old": old, "new": new}
    if new is None:
        session.execute(
            text(
                "DELETE FROM evidence_index "
                "WHERE kind = 'phone' AND wallet_id = :w AND blind_index = :old"
            ),
            params,
        )
        return
    session.execute(
        text(
            "UPDATE evidence_index SET blind_index = :new "
            "WHERE kind = 'phone' AND wallet_id = :w AND blind_index = :old"
        ),
        params,
    )


def counts_for(
    session: Session, keys: Sequence[tuple[str, str, int]]
) -> dict[tuple[str, str, int], int]:
    """Wallets per (kind, blind_index, class) for many keys at once (bulk checks)."""
    if not keys:
        return {}
    kinds, indexes, classes = zip(*keys, strict=True)
    rows = session.execute(
        text(
            "SELECT e.kind, e.blind_index, e.wallet_class, count(*) AS n FROM evidence_index e "
            "JOIN unnest(CAST(:k AS text[]), CAST(:i AS text[]), CAST(:c AS smallint[])) "
            "AS q(kind, blind_index, wallet_class) USING (kind, blind_index, wallet_class) "
            "GROUP BY 1, 2, 3"
        ),
        {"k": text_array(list(kinds)), "i": text_array(list(indexes)), "c": int_array(classes)},
    )
    return {(r.kind, r.blind_index, int(r.wallet_class)): int(r.n) for r in rows}


def holders_for(
    session: Session, keys: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], set[str]]:
    """The holders already bound to each (kind, blind_index) (bulk checks)."""
    if not keys:
        return {}
    kinds, indexes = zip(*keys, strict=True)
    rows = session.execute(
        text(
            "SELECT DISTINCT e.kind, e.blind_index, e.holder FROM evidence_index e "
            "JOIN unnest(CAST(:k AS text[]), CAST(:i AS text[])) AS q(kind, blind_index) "
            "USING (kind, blind_index) WHERE e.holder IS NOT NULL"
        ),
        {"k": text_array(list(kinds)), "i": text_array(list(indexes))},
    )
    found: dict[tuple[str, str], set[str]] = {}
    for r in rows:
        found.setdefault((r.kind, r.blind_index), set()).add(r.holder)
    return found
