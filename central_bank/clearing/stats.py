"""Statistics of the clearing house: per cycle and pair, liquidity per operator, what waits
now, and the clearing house's part of the audit."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.clock import iso
from central_bank.clearing.obligations import OBLIGATION_SELECT, obligation_summary


def cycle_stats(
    session: Session, *, after_cycle: int | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """Per clearing cycle (oldest first, after `after_cycle`), per operator pair: gross both
    ways, the net, who owed it and whether it is settled."""
    cycles = session.execute(
        text("SELECT * FROM clearing_cycles WHERE id > :after ORDER BY id LIMIT :limit"),
        {"after": after_cycle or 0, "limit": limit},
    ).all()
    if not cycles:
        return []
    pairs = defaultdict(list)
    for row in session.execute(
        text(
            OBLIGATION_SELECT + "WHERE o.cycle_id = ANY(:ids) ORDER BY o.cycle_id, code_a, code_b"
        ),
        {"ids": [c.id for c in cycles]},
    ).all():
        summary = obligation_summary(row, None)
        summary.pop("acks")
        pairs[int(row.cycle_id)].append(summary)
    return [
        {
            "cycle_id": int(c.id),
            "closed_at": iso(c.closed_at),
            "trigger": c.trigger,
            "submissions": int(c.submissions),
            "items": int(c.items),
            "gross": int(c.gross),
            "net": int(c.net),
            "net_settled": sum(p["net"] for p in pairs[int(c.id)] if p["status"] == "settled"),
            "pairs": pairs[int(c.id)],
        }
        for c in cycles
    ]


def liquidity_stats(session: Session, *, cycle_id: int | None = None) -> dict[str, dict]:
    """Per operator: the liquidity net settlement used (net paid, and owed while unpaid) against
    the gross it would have paid one by one under RTGS; what it received, gross and net.
    Over all cycles, or one."""
    rows = session.execute(
        text(
            """
SELECT op.code,
       coalesce(sum(CASE WHEN o.operator_a_id = op.id THEN o.gross_ab ELSE o.gross_ba END), 0)
           AS gross_out,
       coalesce(sum(CASE WHEN o.operator_a_id = op.id THEN o.gross_ba ELSE o.gross_ab END), 0)
           AS gross_in,
       coalesce(sum(CASE WHEN o.operator_a_id = op.id THEN o.items_ab ELSE o.items_ba END), 0)
           AS items_out,
       coalesce(sum(CASE WHEN o.operator_a_id = op.id THEN o.items_ba ELSE o.items_ab END), 0)
           AS items_in,
       coalesce(sum(o.net) FILTER (WHERE o.debtor_id = op.id AND o.status = 'settled'), 0)
           AS net_paid,
       coalesce(sum(o.net) FILTER (WHERE o.debtor_id = op.id AND o.status = 'pending'), 0)
           AS net_owed,
       coalesce(sum(o.net) FILTER (WHERE o.creditor_id = op.id AND o.status = 'settled'), 0)
           AS net_received,
       count(o.id) AS obligations
FROM operators op
LEFT JOIN clearing_obligations o
  ON (o.operator_a_id = op.id OR o.operator_b_id = op.id)
 AND (CAST(:cycle AS bigint) IS NULL OR o.cycle_id = :cycle)
GROUP BY op.code ORDER BY op.code
"""
        ),
        {"cycle": cycle_id},
    ).all()
    out: dict[str, dict] = {}
    for r in rows:
        used = int(r.net_paid) + int(r.net_owed)
        out[r.code] = {
            "gross_out": int(r.gross_out),
            "gross_in": int(r.gross_in),
            "items_out": int(r.items_out),
            "items_in": int(r.items_in),
            "net_paid": int(r.net_paid),
            "net_owed": int(r.net_owed),
            "net_received": int(r.net_received),
            "obligations": int(r.obligations),
            "rtgs_liquidity": int(r.gross_out),  # what it would have paid under RTGS
            "liquidity_used": used,
            "liquidity_saved": int(r.gross_out) - used,
        }
    return out


def net_paid_by_operator(session: Session) -> dict[str, int]:
    """Per operator code, the token value it has paid so far to settle net obligations (the
    liquidity net settlement used); operators that paid nothing are 0."""
    return {code: row["net_paid"] for code, row in liquidity_stats(session).items()}


def clearing_position(session: Session) -> dict[str, Any]:
    """What is in the clearing house right now (for the money supply)."""
    waiting = session.execute(
        text(
            "SELECT count(*) AS n, coalesce(sum(items), 0) AS items, "
            "coalesce(sum(gross), 0) AS gross FROM clearing_submissions WHERE cycle_id IS NULL"
        )
    ).one()
    pending = session.execute(
        text(
            "SELECT count(*) AS n, coalesce(sum(net), 0) AS net FROM clearing_obligations "
            "WHERE status = 'pending'"
        )
    ).one()
    cycles = session.execute(text("SELECT count(*) FROM clearing_cycles")).scalar_one()
    return {
        "cycles": int(cycles),
        "submissions_waiting": int(waiting.n),
        "items_waiting": int(waiting.items),
        "gross_waiting": int(waiting.gross),
        "obligations_pending": int(pending.n),
        "net_pending": int(pending.net),
    }


def audit_checks(session: Session) -> list[tuple[str, int, int]]:
    """The clearing house's part of the central bank audit: (name, left, right)."""
    settled_net = session.execute(
        text(
            "SELECT coalesce(sum(net), 0) FROM clearing_obligations "
            "WHERE status = 'settled' AND net > 0"
        )
    ).scalar_one()
    paid = session.execute(
        text(
            "SELECT coalesce(sum(p.amount), 0) FROM postings p "
            "JOIN journal_entries j ON j.id = p.entry_id WHERE j.kind = 'net_settlement' "
            "AND p.amount > 0"
        )
    ).scalar_one()
    mismatched = session.execute(
        text(
            """
SELECT count(*) FROM clearing_obligations o
LEFT JOIN LATERAL (
    SELECT coalesce(sum(s.gross) FILTER (WHERE s.operator_id = o.operator_a_id), 0) AS ab,
           coalesce(sum(s.gross) FILTER (WHERE s.operator_id = o.operator_b_id), 0) AS ba,
           coalesce(sum(s.items) FILTER (WHERE s.operator_id = o.operator_a_id), 0) AS iab,
           coalesce(sum(s.items) FILTER (WHERE s.operator_id = o.operator_b_id), 0) AS iba
    FROM clearing_submissions s WHERE s.obligation_id = o.id) t ON TRUE
WHERE t.ab <> o.gross_ab OR t.ba <> o.gross_ba OR t.iab <> o.items_ab OR t.iba <> o.items_ba
"""
        )
    ).scalar_one()
    return [
        ("clearing: settled obligations == net settlement postings", int(settled_net), int(paid)),
        ("clearing: obligations match their submissions", int(mismatched), 0),
    ]


def queue_depths(session: Session) -> dict[str, int]:
    """The clearing house's queue, for /metrics: submissions (and the payments in them) not
    yet in a clearing cycle, and obligations not yet settled. Answered from partial indexes
    (ix_clearing_submissions_unassigned, ix_clearing_obligations_pending), bounded in time."""
    session.execute(text("SET LOCAL statement_timeout = 2000"))
    row = session.execute(
        text(
            "SELECT count(*) AS clearing_submissions_waiting, "
            "coalesce(sum(items), 0) AS clearing_items_waiting, "
            "(SELECT count(*) FROM clearing_obligations WHERE status = 'pending') "
            "AS clearing_obligations_pending "
            "FROM clearing_submissions WHERE cycle_id IS NULL"
        )
    ).one()
    return {key: int(value) for key, value in row._mapping.items()}
