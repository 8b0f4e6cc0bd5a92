"""Obligations as their parties see them: the summary, one obligation in detail with the
items addressed to the party, and the acknowledgement that the party applied it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.clock import iso
from cbdc.errors import IdempotencyMismatch, ValidationFailed
from central_bank.clearing.submissions import parse_canonical_uuid
from central_bank.errors import ObligationNotSettled, UnknownObligation
from central_bank.models import Operator

MAX_ITEMS_PAGE = 10_000


def lock_obligation(session: Session, obligation_id: uuid.UUID) -> Any:
    return session.execute(
        text("SELECT * FROM clearing_obligations WHERE id = :i FOR UPDATE"), {"i": obligation_id}
    ).first()


def submission_ids(session: Session, obligation_id: uuid.UUID, operator_id: int) -> list[str]:
    rows = session.execute(
        text(
            "SELECT id FROM clearing_submissions WHERE obligation_id = :o AND operator_id = :p "
            "ORDER BY id"
        ),
        {"o": obligation_id, "p": operator_id},
    ).scalars()
    return [str(r) for r in rows]


OBLIGATION_SELECT = """
SELECT o.*, a.code AS code_a, b.code AS code_b, d.code AS debtor_code, c.code AS creditor_code
FROM clearing_obligations o
JOIN operators a ON a.id = o.operator_a_id
JOIN operators b ON b.id = o.operator_b_id
LEFT JOIN operators d ON d.id = o.debtor_id
LEFT JOIN operators c ON c.id = o.creditor_id
"""


def obligation_summary(row: Any, viewer: Operator | None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "obligation_id": str(row.id),
        "cycle_id": int(row.cycle_id),
        "operator_a": row.code_a,
        "operator_b": row.code_b,
        "gross_ab": int(row.gross_ab),
        "gross_ba": int(row.gross_ba),
        "items_ab": int(row.items_ab),
        "items_ba": int(row.items_ba),
        "net": int(row.net),
        "debtor": row.debtor_code,
        "creditor": row.creditor_code,
        "status": row.status,
        "created_at": iso(row.created_at),
        "settled_at": iso(row.settled_at) if row.settled_at else None,
        "acks": {row.code_a: row.a_ack, row.code_b: row.b_ack},
    }
    if viewer is not None:
        is_a = viewer.id == row.operator_a_id
        out |= {
            "peer": row.code_b if is_a else row.code_a,
            "role": (
                "even"
                if row.debtor_id is None
                else "debtor"
                if row.debtor_id == viewer.id
                else "creditor"
            ),
            "gross_out": int(row.gross_ab if is_a else row.gross_ba),
            "gross_in": int(row.gross_ba if is_a else row.gross_ab),
            "items_out": int(row.items_ab if is_a else row.items_ba),
            "items_in": int(row.items_ba if is_a else row.items_ab),
        }
    return out


def list_obligations(
    session: Session,
    *,
    operator: Operator | None,
    actionable: bool = False,
    cycle_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Obligations `operator` is party to (all of them for the admin, `operator=None`).
    `actionable`: those it still has to act on: pay (debtor, pending) or apply and acknowledge
    (settled, not acknowledged by it)."""
    where, params = ["TRUE"], {"limit": limit}
    if operator is not None:
        params["op"] = operator.id
        if actionable:
            where.append(
                "((o.operator_a_id = :op AND o.a_ack IS NULL) "
                "OR (o.operator_b_id = :op AND o.b_ack IS NULL)) "
                "AND (o.status = 'settled' OR o.debtor_id = :op)"
            )
        else:
            where.append("(o.operator_a_id = :op OR o.operator_b_id = :op)")
    elif actionable:
        where.append("(o.status = 'pending' OR o.a_ack IS NULL OR o.b_ack IS NULL)")
    if cycle_id is not None:
        where.append("o.cycle_id = :cycle")
        params["cycle"] = cycle_id
    rows = session.execute(
        text(
            OBLIGATION_SELECT
            + f"WHERE {' AND '.join(where)} ORDER BY o.cycle_id, o.id LIMIT :limit"
        ),
        params,
    ).all()
    return [obligation_summary(r, operator) for r in rows]


def _party_row(session: Session, operator: Operator | None, oid: uuid.UUID) -> Any:
    row = session.execute(text(OBLIGATION_SELECT + "WHERE o.id = :i"), {"i": oid}).first()
    if row is None or (
        operator is not None and operator.id not in (row.operator_a_id, row.operator_b_id)
    ):
        raise UnknownObligation(f"no obligation {oid}")  # others' obligations are not shown
    return row


def detail(
    session: Session,
    *,
    operator: Operator | None,
    obligation_id: str,
    items: bool = True,
    offset: int = 0,
    limit: int = MAX_ITEMS_PAGE,
) -> dict[str, Any]:
    """One obligation as its party sees it: the summary, the signed receipt once settled, the
    tokens minted to it (creditor: the net; debtor: its change), its own submissions, and a
    page of the items addressed to it (submitted by the peer), in (submission, seq) order."""
    oid = parse_canonical_uuid(obligation_id, "obligation_id")
    row = _party_row(session, operator, oid)
    out = obligation_summary(row, operator)
    out["receipt"] = row.receipt
    if operator is None:
        return out
    peer_id = row.operator_b_id if operator.id == row.operator_a_id else row.operator_a_id
    tokens: list[dict[str, Any]] = []
    if row.status == "settled":
        if row.creditor_id == operator.id:
            tokens = list(row.creditor_tokens or [])
        elif row.debtor_id == operator.id and row.operation_id is not None:
            response = session.execute(
                text("SELECT response FROM operations WHERE id = :i"), {"i": row.operation_id}
            ).scalar_one()
            tokens = list(response.get("change", []))
    out["tokens"] = tokens
    out["outgoing_submissions"] = submission_ids(session, oid, operator.id)
    incoming = session.execute(
        text(
            "SELECT id, items, gross, digest FROM clearing_submissions "
            "WHERE obligation_id = :o AND operator_id = :p ORDER BY id"
        ),
        {"o": oid, "p": peer_id},
    ).all()
    out["incoming_submissions"] = [
        {
            "submission_id": str(s.id),
            "items": int(s.items),
            "gross": int(s.gross),
            "digest": s.digest,
        }
        for s in incoming
    ]
    if items:
        rows = session.execute(
            text(
                "SELECT i.submission_id, i.seq, i.reference, i.payee_wallet, i.payer_alias, "
                "i.amount FROM clearing_items i JOIN clearing_submissions s "
                "ON s.id = i.submission_id WHERE s.obligation_id = :o AND s.operator_id = :p "
                "ORDER BY i.submission_id, i.seq OFFSET :off LIMIT :lim"
            ),
            {"o": oid, "p": peer_id, "off": offset, "lim": min(limit, MAX_ITEMS_PAGE)},
        ).all()
        out["items"] = [
            {
                "submission_id": str(r.submission_id),
                "seq": int(r.seq),
                "reference": r.reference,
                "payee_wallet": r.payee_wallet,
                "payer_alias": r.payer_alias,
                "amount": int(r.amount),
            }
            for r in rows
        ]
        out["items_offset"] = offset
    return out


def acknowledge(
    session: Session,
    *,
    operator: Operator,
    obligation_id: str,
    returned: Sequence[str],
    now: datetime,
) -> dict[str, Any]:
    """A party has applied the settled pair; `returned` names the incoming payments (by
    reference) it could not credit and is sending back. Written once; a repeat with the same
    list is answered again."""
    oid = parse_canonical_uuid(obligation_id, "obligation_id")
    row = lock_obligation(session, oid)
    if row is None or operator.id not in (row.operator_a_id, row.operator_b_id):
        raise UnknownObligation(f"no obligation {obligation_id}")
    if row.status != "settled":
        raise ObligationNotSettled(f"obligation {obligation_id} is not settled yet")
    column = "a_ack" if operator.id == row.operator_a_id else "b_ack"
    previous = getattr(row, column)
    wanted = sorted(set(returned))
    if previous is not None:
        if sorted(previous.get("returned", [])) != wanted:
            raise IdempotencyMismatch("the obligation was acknowledged with other returns")
        return {"obligation_id": str(oid), **previous, "replayed": True}
    if wanted:
        peer_id = row.operator_b_id if column == "a_ack" else row.operator_a_id
        known = session.execute(
            text(
                "SELECT count(*) FROM clearing_items i JOIN clearing_submissions s "
                "ON s.id = i.submission_id WHERE s.obligation_id = :o AND s.operator_id = :p "
                "AND i.reference = ANY(:refs)"
            ),
            {"o": oid, "p": peer_id, "refs": wanted},
        ).scalar_one()
        if known != len(wanted):
            raise ValidationFailed("returned: names a payment that is not addressed to you here")
    ack = {"at": iso(now), "returned": wanted}
    session.execute(
        text(f"UPDATE clearing_obligations SET {column} = CAST(:a AS jsonb) WHERE id = :i"),
        {"a": json.dumps(ack), "i": oid},
    )
    return {"obligation_id": str(oid), **ack, "replayed": False}
