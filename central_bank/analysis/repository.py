"""Queries of the analysis centre: money-supply aggregates and the disclosure-log anchors."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from central_bank.models import Operation, Token


def live_token_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).where(Token.status == "live")) or 0)


def postings_total_by_kind(session: Session, account_prefix: str) -> dict[str, int]:
    """Sum of postings on accounts whose code starts with `account_prefix`, per entry kind."""
    rows = session.execute(
        text(
            "SELECT j.kind, sum(p.amount) AS total FROM postings p "
            "JOIN journal_entries j ON j.id = p.entry_id JOIN accounts a ON a.id = p.account_id "
            "WHERE a.code LIKE :prefix GROUP BY j.kind"
        ),
        {"prefix": account_prefix + "%"},
    ).all()
    return {str(r.kind): int(r.total) for r in rows}


def operations_summary(session: Session) -> dict[str, tuple[int, int]]:
    rows = session.execute(
        select(Operation.kind, func.count(), func.coalesce(func.sum(Operation.amount), 0)).group_by(
            Operation.kind
        )
    ).all()
    return {str(kind): (int(n), int(total)) for kind, n, total in rows}


# ---------------------------------------------------------------- disclosure-log anchors


def add_disclosure_anchor(
    session: Session, *, operator_id: int, seq: int, head: str, signature: str, at: datetime
) -> str:
    """Store the anchor unless one is stored for (operator, seq); returns the stored hash
    (this one, or the one anchored before)."""
    session.execute(
        text(
            "INSERT INTO disclosure_anchors (operator_id, seq, hash, signature, received_at) "
            "VALUES (:o, :s, :h, :sig, :t) ON CONFLICT (operator_id, seq) DO NOTHING"
        ),
        {"o": operator_id, "s": seq, "h": head, "sig": signature, "t": at},
    )
    return str(
        session.execute(
            text("SELECT hash FROM disclosure_anchors WHERE operator_id = :o AND seq = :s"),
            {"o": operator_id, "s": seq},
        ).scalar_one()
    )


def add_disclosure_anchor_conflict(
    session: Session,
    *,
    operator_id: int,
    seq: int,
    head: str,
    anchored: str,
    signature: str,
    at: datetime,
) -> None:
    session.execute(
        text(
            "INSERT INTO disclosure_anchor_conflicts "
            "(operator_id, seq, hash, anchored_hash, signature, received_at) "
            "VALUES (:o, :s, :h, :a, :sig, :t) ON CONFLICT (operator_id, seq, hash) DO NOTHING"
        ),
        {"o": operator_id, "s": seq, "h": head, "a": anchored, "sig": signature, "t": at},
    )


def disclosure_anchors(session: Session, *, operator: str | None) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT o.code AS operator, a.seq, a.hash, a.signature, a.received_at "
            "FROM disclosure_anchors a JOIN operators o ON o.id = a.operator_id "
            "WHERE CAST(:op AS text) IS NULL OR o.code = :op ORDER BY o.code, a.seq"
        ),
        {"op": operator},
    ).mappings()
    return [dict(r) for r in rows]


def disclosure_anchor_conflicts(session: Session, *, operator: str | None) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT o.code AS operator, c.seq, c.hash, c.anchored_hash, c.signature, "
            "c.received_at FROM disclosure_anchor_conflicts c "
            "JOIN operators o ON o.id = c.operator_id "
            "WHERE CAST(:op AS text) IS NULL OR o.code = :op ORDER BY o.code, c.seq, c.id"
        ),
        {"op": operator},
    ).mappings()
    return [dict(r) for r in rows]


def lock_anchor_chain(session: Session, operator_id: int) -> None:
    """One writer per operator's anchor chain at a time (until the transaction ends)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(hashtext('disclosure_anchor_links'), :o)"),
        {"o": operator_id},
    )


def anchor_chain_head(session: Session, operator_id: int) -> tuple[int, str] | None:
    row = session.execute(
        text(
            "SELECT n, link FROM disclosure_anchor_links WHERE operator_id = :o "
            "ORDER BY n DESC LIMIT 1"
        ),
        {"o": operator_id},
    ).first()
    return (int(row.n), str(row.link)) if row else None


def unlinked_disclosure_anchors(session: Session, operator_id: int) -> list[dict[str, Any]]:
    rows = session.execute(
        text(
            "SELECT a.seq, a.hash, a.signature FROM disclosure_anchors a "
            "WHERE a.operator_id = :o AND NOT EXISTS (SELECT 1 FROM disclosure_anchor_links l "
            "WHERE l.operator_id = a.operator_id AND l.seq = a.seq) ORDER BY a.seq"
        ),
        {"o": operator_id},
    ).mappings()
    return [dict(r) for r in rows]


def operators_with_unlinked_anchors(session: Session) -> list[int]:
    return [
        int(r)
        for r in session.execute(
            text(
                "SELECT DISTINCT a.operator_id FROM disclosure_anchors a "
                "WHERE NOT EXISTS (SELECT 1 FROM disclosure_anchor_links l "
                "WHERE l.operator_id = a.operator_id AND l.seq = a.seq)"
            )
        ).scalars()
    ]


def add_anchor_link(
    session: Session,
    *,
    operator_id: int,
    n: int,
    seq: int,
    prev_link: str,
    link: str,
    signature: str,
    at: datetime,
) -> None:
    session.execute(
        text(
            "INSERT INTO disclosure_anchor_links "
            "(operator_id, n, seq, prev_link, link, signature, linked_at) "
            "VALUES (:o, :n, :s, :p, :l, :sig, :t)"
        ),
        {"o": operator_id, "n": n, "s": seq, "p": prev_link, "l": link, "sig": signature, "t": at},
    )


def anchor_links(
    session: Session, *, operator: str | None
) -> dict[tuple[str, int], dict[str, Any]]:
    """Each anchor's link in its operator's chain, by (operator code, seq)."""
    rows = session.execute(
        text(
            "SELECT o.code AS operator, l.n, l.seq, l.prev_link, l.link, l.signature "
            "FROM disclosure_anchor_links l JOIN operators o ON o.id = l.operator_id "
            "WHERE CAST(:op AS text) IS NULL OR o.code = :op"
        ),
        {"op": operator},
    ).mappings()
    return {(str(r["operator"]), int(r["seq"])): dict(r) for r in rows}


def anchor_chain_heads(session: Session, *, operator: str | None) -> dict[str, dict[str, Any]]:
    """The last link of each operator's anchor chain (read before the anchors themselves, so
    an anchor registered meanwhile can only add links after it)."""
    rows = session.execute(
        text(
            "SELECT DISTINCT ON (l.operator_id) o.code AS operator, l.n, l.link, l.signature "
            "FROM disclosure_anchor_links l JOIN operators o ON o.id = l.operator_id "
            "WHERE CAST(:op AS text) IS NULL OR o.code = :op ORDER BY l.operator_id, l.n DESC"
        ),
        {"op": operator},
    ).mappings()
    return {
        str(r["operator"]): {"n": int(r["n"]), "hash": r["link"], "signature": r["signature"]}
        for r in rows
    }
