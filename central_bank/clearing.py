"""The central bank as clearing house: deferred net settlement between operators.

    submit       an operator hands in cross-operator payments it made, for one payee
                 operator (`clearing_submissions`, `clearing_items`); idempotent on the
                 submission id; no money moves
    close_cycle  every submission not yet in a cycle goes into a new cycle; per unordered
                 operator pair the gross both ways and the bilateral net become an obligation:
                 the debtor owes the creditor the net (a net of 0 is settled at once)
    pay          the debtor pays the net with vault tokens: inputs spent, the net minted to the
                 creditor and the change to the debtor, circulation:debtor -net /
                 circulation:creditor +net (`net_settlement`), a signed pair-settlement receipt
                 listing both directions' gross, item digests, the net and the token serials
    detail/ack   each party fetches the settled pair (the items addressed to it and its
                 tokens), applies it in one transaction of its own and acknowledges it, naming
                 the payments it is sending back (those go back by RTGS)

Only the net moves at the central bank; the gross never does. The central bank's invariants
are unchanged: live tokens of A == circulation:A, and net settlements sum to zero.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import routing_code
from cbdc.clock import iso, utcnow
from cbdc.errors import IdempotencyMismatch, ValidationFailed
from cbdc.netting import MAX_SUBMISSION_ITEMS, direction_digest, submission_digest
from cbdc.sqlarrays import int_array, nullable_text_array, text_array
from cbdc.tokens import sign_document
from central_bank import repository as repo
from central_bank import service
from central_bank.errors import (
    AmountMismatch,
    DuplicateClearingItem,
    NotDebtor,
    ObligationNotSettled,
    ObligationSettled,
    OperatorSuspended,
    UnknownObligation,
)
from central_bank.models import Operation, Operator

CLOSE_LOCK = 7101  # advisory lock: one clearing cycle closes at a time
SUBMIT_LOCK = 7102  # advisory lock namespace: one submission id at a time
Trigger = Literal["timer", "admin", "max_items", "manual"]
MAX_ITEMS_PAGE = 10_000


def _uuid(value: str, what: str) -> uuid.UUID:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ValidationFailed(f"{what}: must be a UUID") from None
    if str(parsed) != value:
        raise ValidationFailed(f"{what}: must be a UUID in canonical lower-case form")
    return parsed


# ---------------------------------------------------------------- submissions


def submit(
    session: Session,
    *,
    operator: Operator,
    submission: dict[str, Any],
    request_hash: str,
) -> dict[str, Any]:
    """Store one submission of payments from `operator` to one payee operator (idempotent on
    its submission id: the same body again gets the first answer, another body is refused)."""
    sid = _uuid(submission["submission_id"], "submission_id")
    session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, hashtext(:k))"), {"ns": SUBMIT_LOCK, "k": str(sid)}
    )
    previous = session.execute(
        text("SELECT operator_id, request_hash, response FROM clearing_submissions WHERE id = :i"),
        {"i": sid},
    ).first()
    if previous is not None:
        if previous.operator_id != operator.id or previous.request_hash != request_hash:
            raise IdempotencyMismatch("this submission_id was used for another submission")
        return {**previous.response, "replayed": True}
    if operator.status != "active":
        raise OperatorSuspended(f"operator {operator.code} is {operator.status}")
    payee = service.require_operator(session, submission["payee_operator"])
    if payee.id == operator.id:
        raise ValidationFailed("payee_operator: clearing needs two different operators")
    if payee.status != "active":
        raise OperatorSuspended(f"payee operator {payee.code} is {payee.status}")
    items: list[dict[str, Any]] = submission["items"]
    if not 0 < len(items) <= MAX_SUBMISSION_ITEMS:
        raise ValidationFailed(f"items: between 1 and {MAX_SUBMISSION_ITEMS}")
    gross = sum(int(i["amount"]) for i in items)
    if gross != submission["gross"]:
        raise ValidationFailed(f"gross: the items add up to {gross}, not {submission['gross']}")
    references = [i["reference"] for i in items]
    if len(set(references)) != len(references):
        raise ValidationFailed("items: a reference appears twice")
    misrouted = [i["payee_wallet"] for i in items if routing_code(i["payee_wallet"]) != payee.code]
    if misrouted:
        raise ValidationFailed(f"items: payee wallet {misrouted[0]!r} is not held at {payee.code}")
    seen = session.execute(
        text(
            "SELECT reference FROM clearing_items WHERE operator_id = :o "
            "AND reference = ANY(CAST(:refs AS text[])) LIMIT 1"
        ),
        {"o": operator.id, "refs": text_array(references)},
    ).scalar()
    if seen is not None:
        raise DuplicateClearingItem(f"payment {seen} was already submitted for clearing")
    digest = submission_digest(items)
    response = {
        "submission_id": str(sid),
        "payer_operator": operator.code,
        "payee_operator": payee.code,
        "items": len(items),
        "gross": gross,
        "digest": digest,
        "accepted_at": iso(utcnow()),
    }
    try:
        with session.begin_nested():
            session.execute(
                text(
                    "INSERT INTO clearing_submissions (id, operator_id, payee_operator_id, "
                    "request_hash, items, gross, digest, response) VALUES (:i, :o, :p, :h, :n, "
                    ":g, :d, CAST(:r AS jsonb))"
                ),
                {
                    "i": sid,
                    "o": operator.id,
                    "p": payee.id,
                    "h": request_hash,
                    "n": len(items),
                    "g": gross,
                    "d": digest,
                    "r": json.dumps(response),
                },
            )
            session.execute(
                text(
                    "INSERT INTO clearing_items (submission_id, seq, operator_id, reference, "
                    "payee_wallet, payer_alias, amount) SELECT :s, t.seq, :o, t.ref, t.wallet, "
                    "t.alias, t.amount FROM unnest(CAST(:seq AS integer[]), "
                    "CAST(:refs AS text[]), CAST(:wallets AS text[]), CAST(:aliases AS text[]), "
                    "CAST(:amounts AS bigint[])) AS t(seq, ref, wallet, alias, amount)"
                ),
                {
                    "s": sid,
                    "o": operator.id,
                    "seq": int_array(range(len(items))),
                    "refs": text_array(references),
                    "wallets": text_array([i["payee_wallet"] for i in items]),
                    "aliases": nullable_text_array([i["payer_alias"] for i in items]),
                    "amounts": int_array(int(i["amount"]) for i in items),
                },
            )
    except IntegrityError as exc:
        if "uq_clearing_items_reference" in str(exc.orig):  # a concurrent submission had it
            raise DuplicateClearingItem("a payment was already submitted for clearing") from None
        raise
    return {**response, "replayed": False}


def waiting_items(session: Session) -> int:
    """Submitted payments not yet in a clearing cycle."""
    return int(
        session.execute(
            text("SELECT coalesce(sum(items), 0) FROM clearing_submissions WHERE cycle_id IS NULL")
        ).scalar_one()
    )


# ---------------------------------------------------------------- cycles


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
    session: Session, cb: service.CentralBank, *, trigger: Trigger = "manual"
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
    operators = {o.id: o for o in repo.list_operators(session)}
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
    now = utcnow()
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
            document = _receipt_document(
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


def _receipt_document(
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


# ---------------------------------------------------------------- paying an obligation


def _lock_obligation(session: Session, obligation_id: uuid.UUID) -> Any:
    return session.execute(
        text("SELECT * FROM clearing_obligations WHERE id = :i FOR UPDATE"), {"i": obligation_id}
    ).first()


def _submissions_of(session: Session, obligation_id: uuid.UUID, operator_id: int) -> list[str]:
    rows = session.execute(
        text(
            "SELECT id FROM clearing_submissions WHERE obligation_id = :o AND operator_id = :p "
            "ORDER BY id"
        ),
        {"o": obligation_id, "p": operator_id},
    ).scalars()
    return [str(r) for r in rows]


def pay(
    session: Session,
    cb: service.CentralBank,
    *,
    operator: Operator,
    obligation_id: str,
    serials: Sequence[str],
    idem: service.Idempotency,
) -> dict[str, Any]:
    """The debtor pays an obligation's net with the named tokens (idempotent on the key)."""
    oid = _uuid(obligation_id, "obligation_id")

    def run(op_id: uuid.UUID) -> tuple[Operation, dict[str, Any]]:
        row = _lock_obligation(session, oid)
        if row is None or operator.id not in (row.operator_a_id, row.operator_b_id):
            raise UnknownObligation(f"no obligation {obligation_id}")
        if row.status != "pending":
            raise ObligationSettled(f"obligation {obligation_id} is already settled")
        if row.debtor_id != operator.id:
            raise NotDebtor(f"{operator.code} is not the debtor of obligation {obligation_id}")
        creditor = repo.operator_by_id(session, row.creditor_id)
        assert creditor is not None
        net = int(row.net)
        tokens, total = service._spend_inputs(session, operator, serials)
        if total < net:
            raise AmountMismatch(f"tokens worth {total} cannot pay {net}")
        debtor_acc = ledger.account_id(session, service.circulation_code(operator.code))
        creditor_acc = ledger.account_id(session, service.circulation_code(creditor.code))
        assert debtor_acc is not None and creditor_acc is not None
        ledger.lock_accounts(session, [debtor_acc, creditor_acc])
        reference = f"net:{oid}"
        entry = ledger.post(
            session,
            kind="net_settlement",
            reference=reference,
            legs=[(debtor_acc, -net), (creditor_acc, net)],
        )
        op = service._new_operation(
            session,
            op_id,
            operator,
            idem,
            kind="net_settlement",
            amount=net,
            counterparty_id=creditor.id,
            reference=reference,
            entry_id=entry,
        )
        now = utcnow()
        repo.mark_tokens(session, [t.serial for t in tokens], status="spent", by=op_id, at=now)
        creditor_rows, creditor_wire = service._mint(
            cb, owner=creditor, amount=net, operation_id=op_id, chunked=True
        )
        repo.add_tokens(session, creditor_rows)
        change_wire: list[dict[str, Any]] = []
        if total > net:
            rows, change_wire = service._mint(
                cb, owner=operator, amount=total - net, operation_id=op_id, chunked=False
            )
            repo.add_tokens(session, rows)
        codes = {o.id: o.code for o in (operator, creditor)}  # the pair: debtor and creditor
        document = _receipt_document(
            obligation_id=oid,
            cycle_id=int(row.cycle_id),
            pair={
                "a": row.operator_a_id,
                "b": row.operator_b_id,
                "gab": int(row.gross_ab),
                "gba": int(row.gross_ba),
                "iab": int(row.items_ab),
                "iba": int(row.items_ba),
                "dab": row.digest_ab,
                "dba": row.digest_ba,
                "net": net,
                "debtor": row.debtor_id,
                "creditor": row.creditor_id,
            },
            codes=codes,
            submissions_ab=_submissions_of(session, oid, row.operator_a_id),
            submissions_ba=_submissions_of(session, oid, row.operator_b_id),
            inputs=[str(t.serial) for t in tokens],
            creditor_tokens=[t["serial"] for t in creditor_wire],
            change_tokens=[t["serial"] for t in change_wire],
            settled_at=now,
        )
        receipt = sign_document(cb.key, document)
        session.execute(
            text(
                "UPDATE clearing_obligations SET status = 'settled', operation_id = :op, "
                "receipt = CAST(:r AS jsonb), creditor_tokens = CAST(:t AS jsonb), "
                "settled_at = :at WHERE id = :i"
            ),
            {
                "op": op_id,
                "r": json.dumps(receipt),
                "t": json.dumps(creditor_wire),
                "at": now,
                "i": oid,
            },
        )
        return op, {"obligation_id": str(oid), "receipt": receipt, "change": change_wire}

    return service._idempotent(session, operator, idem, run)


# ---------------------------------------------------------------- what a party sees

_SELECT = """
SELECT o.*, a.code AS code_a, b.code AS code_b, d.code AS debtor_code, c.code AS creditor_code
FROM clearing_obligations o
JOIN operators a ON a.id = o.operator_a_id
JOIN operators b ON b.id = o.operator_b_id
LEFT JOIN operators d ON d.id = o.debtor_id
LEFT JOIN operators c ON c.id = o.creditor_id
"""


def _summary(row: Any, viewer: Operator | None) -> dict[str, Any]:
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
        text(_SELECT + f"WHERE {' AND '.join(where)} ORDER BY o.cycle_id, o.id LIMIT :limit"),
        params,
    ).all()
    return [_summary(r, operator) for r in rows]


def _party_row(session: Session, operator: Operator | None, oid: uuid.UUID) -> Any:
    row = session.execute(text(_SELECT + "WHERE o.id = :i"), {"i": oid}).first()
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
    oid = _uuid(obligation_id, "obligation_id")
    row = _party_row(session, operator, oid)
    out = _summary(row, operator)
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
    out["outgoing_submissions"] = _submissions_of(session, oid, operator.id)
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
    session: Session, *, operator: Operator, obligation_id: str, returned: Sequence[str]
) -> dict[str, Any]:
    """A party has applied the settled pair; `returned` names the incoming payments (by
    reference) it could not credit and is sending back. Written once; a repeat with the same
    list is answered again."""
    oid = _uuid(obligation_id, "obligation_id")
    row = _lock_obligation(session, oid)
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
    ack = {"at": iso(utcnow()), "returned": wanted}
    session.execute(
        text(f"UPDATE clearing_obligations SET {column} = CAST(:a AS jsonb) WHERE id = :i"),
        {"a": json.dumps(ack), "i": oid},
    )
    return {"obligation_id": str(oid), **ack, "replayed": False}


# ---------------------------------------------------------------- statistics


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
        text(_SELECT + "WHERE o.cycle_id = ANY(:ids) ORDER BY o.cycle_id, code_a, code_b"),
        {"ids": [c.id for c in cycles]},
    ).all():
        summary = _summary(row, None)
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
