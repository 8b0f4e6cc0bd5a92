"""Clearing cycles: every submission not yet in a cycle, per operator pair, becomes one
obligation (gross both ways, the net, debtor and creditor); the pair-settlement receipt."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.clock import iso
from cbdc.netting import direction_digest
from cbdc.tokens import sign_document
from central_bank.certification import repository as certification_repo
from central_bank.context import CentralBank
from central_bank.models import Operator

CLOSE_LOCK = 7101  # advisory lock: one clearing cycle closes at a time
Trigger = Literal["timer", "admin", "max_items", "manual"]


@dataclass
class _Pair:
    a: Operator
    b: Operator
    gross_ab: int = 0
    gross_ba: int = 0
    items_ab: int = 0
    items_ba: int = 0
    subs_ab: list[tuple[str, str]] = field(default_factory=list)  # (submission id, digest)
    subs_ba: list[tuple[str, str]] = field(default_factory=list)

    @property
    def net(self) -> int:
        return abs(self.gross_ab - self.gross_ba)

    def debtor(self) -> Operator | None:
        if self.gross_ab == self.gross_ba:
            return None
        return self.a if self.gross_ab > self.gross_ba else self.b

    def creditor(self) -> Operator | None:
        if self.gross_ab == self.gross_ba:
            return None
        return self.b if self.gross_ab > self.gross_ba else self.a


def close_cycle(
    session: Session, cb: CentralBank, *, now: datetime, trigger: Trigger = "manual"
) -> dict[str, Any] | None:
    """Close a clearing cycle: every submission not yet in a cycle, per operator pair, becomes
    one obligation (gross both ways, the net, debtor and creditor). Returns the cycle, or None
    if nothing was waiting. Cycles close one at a time; a submission committed while a cycle
    closes goes into the next one."""
    session.execute(text("SELECT pg_advisory_xact_lock(:ns, 0)"), {"ns": CLOSE_LOCK})
    rows = session.execute(
        text(
            "SELECT id, operator_id, payee_operator_id, items, gross, digest "
            "FROM clearing_submissions WHERE cycle_id IS NULL ORDER BY created_at, id FOR UPDATE"
        )
    ).all()
    if not rows:
        return None
    operators = {o.id: o for o in certification_repo.list_operators(session)}
    pairs: dict[tuple[int, int], _Pair] = {}
    for r in rows:
        payer, payee = operators[r.operator_id], operators[r.payee_operator_id]
        a, b = sorted((payer, payee), key=lambda o: o.code)
        pair = pairs.setdefault((a.id, b.id), _Pair(a, b))
        if payer.id == a.id:
            pair.gross_ab += int(r.gross)
            pair.items_ab += int(r.items)
            pair.subs_ab.append((str(r.id), r.digest))
        else:
            pair.gross_ba += int(r.gross)
            pair.items_ba += int(r.items)
            pair.subs_ba.append((str(r.id), r.digest))
    totals = {
        "submissions": len(rows),
        "items": sum(int(r.items) for r in rows),
        "gross": sum(int(r.gross) for r in rows),
        "net": sum(p.net for p in pairs.values()),
    }
    cycle_id = int(
        session.execute(
            text(
                "INSERT INTO clearing_cycles (trigger, submissions, items, gross, net, closed_at) "
                "VALUES (:t, :s, :i, :g, :n, :at) RETURNING id"
            ),
            {
                "t": trigger,
                "at": now,
                "s": totals["submissions"],
                "i": totals["items"],
                "g": totals["gross"],
                "n": totals["net"],
            },
        ).scalar_one()
    )
    sub_ids: list[uuid.UUID] = []
    sub_obligations: list[uuid.UUID] = []
    out = []
    for pair in sorted(pairs.values(), key=lambda p: (p.a.code, p.b.code)):
        obligation_id = uuid.uuid4()
        debtor, creditor = pair.debtor(), pair.creditor()
        values = {
            "id": obligation_id,
            "cycle": cycle_id,
            "a": pair.a.id,
            "b": pair.b.id,
            "gab": pair.gross_ab,
            "gba": pair.gross_ba,
            "iab": pair.items_ab,
            "iba": pair.items_ba,
            "dab": direction_digest(pair.subs_ab),
            "dba": direction_digest(pair.subs_ba),
            "net": pair.net,
            "debtor": debtor.id if debtor else None,
            "creditor": creditor.id if creditor else None,
            "at": now,
        }
        receipt = None
        if pair.net == 0:  # nothing to pay: settled as it closes
            document = pair_receipt_document(
                obligation_id=obligation_id,
                cycle_id=cycle_id,
                pair=values,
                codes={pair.a.id: pair.a.code, pair.b.id: pair.b.code},
                submissions_ab=[s for s, _ in sorted(pair.subs_ab)],
                submissions_ba=[s for s, _ in sorted(pair.subs_ba)],
                inputs=[],
                creditor_tokens=[],
                change_tokens=[],
                settled_at=now,
            )
            receipt = sign_document(cb.key, document)
        session.execute(
            text(
                "INSERT INTO clearing_obligations (id, cycle_id, operator_a_id, operator_b_id, "
                "gross_ab, gross_ba, items_ab, items_ba, digest_ab, digest_ba, net, debtor_id, "
                "creditor_id, status, receipt, creditor_tokens, settled_at, created_at) VALUES "
                "(:id, :cycle, :a, :b, :gab, :gba, :iab, :iba, :dab, :dba, :net, :debtor, "
                ":creditor, :status, CAST(:receipt AS jsonb), CAST(:tokens AS jsonb), "
                ":settled_at, :at)"
            ),
            {
                **values,
                "status": "settled" if receipt else "pending",
                "receipt": json.dumps(receipt) if receipt else None,
                "tokens": "[]" if receipt else None,
                "settled_at": now if receipt else None,
            },
        )
        for sid, _ in pair.subs_ab + pair.subs_ba:
            sub_ids.append(uuid.UUID(sid))
            sub_obligations.append(obligation_id)
        out.append(
            {
                "obligation_id": str(obligation_id),
                "operator_a": pair.a.code,
                "operator_b": pair.b.code,
                "gross_ab": pair.gross_ab,
                "gross_ba": pair.gross_ba,
                "items_ab": pair.items_ab,
                "items_ba": pair.items_ba,
                "net": pair.net,
                "debtor": debtor.code if debtor else None,
                "creditor": creditor.code if creditor else None,
                "status": "settled" if receipt else "pending",
            }
        )
    session.execute(
        text(
            "UPDATE clearing_submissions s SET cycle_id = :c, obligation_id = v.o "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:obs AS uuid[])) AS v(id, o) WHERE s.id = v.id"
        ),
        {"c": cycle_id, "ids": sub_ids, "obs": sub_obligations},
    )
    return {"cycle_id": cycle_id, "trigger": trigger, "closed_at": iso(now), **totals, "pairs": out}


def pair_receipt_document(
    *,
    obligation_id: uuid.UUID,
    cycle_id: int,
    pair: dict[str, Any],
    codes: dict[int, str],
    submissions_ab: Sequence[str],
    submissions_ba: Sequence[str],
    inputs: Sequence[str],
    creditor_tokens: Sequence[str],
    change_tokens: Sequence[str],
    settled_at: Any,
) -> dict[str, Any]:
    return {
        "kind": "net_settlement",
        "mode": "net",
        "obligation_id": str(obligation_id),
        "cycle_id": cycle_id,
        "operator_a": codes[pair["a"]],
        "operator_b": codes[pair["b"]],
        "gross_ab": pair["gab"],
        "gross_ba": pair["gba"],
        "items_ab": pair["iab"],
        "items_ba": pair["iba"],
        "digest_ab": pair["dab"],
        "digest_ba": pair["dba"],
        "submissions_ab": list(submissions_ab),
        "submissions_ba": list(submissions_ba),
        "net": pair["net"],
        "debtor": codes[pair["debtor"]] if pair["debtor"] else None,
        "creditor": codes[pair["creditor"]] if pair["creditor"] else None,
        "inputs": list(inputs),
        "creditor_tokens": list(creditor_tokens),
        "change_tokens": list(change_tokens),
        "settled_at": iso(settled_at),
    }
