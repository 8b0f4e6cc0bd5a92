"""Batched gross settlement (RTGS in batches): many payments of one operator settled in one
request and one transaction, each still gross and final with its own receipt.

    request   {reference, serials (the inputs), items: [{reference, payee_operator, amount}]}
    per item  circulation:payer -X, circulation:payee +X (one ledger entry each, set-based);
              an operation of kind `settlement` (its id is the item's settlement id), a token
              of X minted to the payee's operator, and a receipt signed by the central bank
              with the same fields as a single settlement's (plus `batch`), so the payee's
              operator verifies it exactly as before
    once      the inputs are spent, the change (inputs - settled items) is minted back to the
              payer; a signed batch receipt names the inputs, the change and every item

A refusal of one item (unknown or suspended payee operator, inputs exhausted) refuses that item
only. Refusals of the batch as a whole are the ones of a single settlement: the inputs (unknown,
not owned, spent), the requesting operator suspended, an Idempotency-Key used for another body.

Idempotency at two levels: the batch's Idempotency-Key (the whole signed answer is stored with
an operation of kind `settlement_batch` and replayed unchanged), and each item's reference
(`settle:<reference>`, the key a single settlement of that payment would use): an item settled
before, in any batch or alone, is answered from its stored answer and never settled twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.clock import iso
from cbdc.crypto import sha256_hex
from cbdc.errors import ValidationFailed
from cbdc.sqlarrays import any_array, int_array, text_array
from cbdc.tokens import sign_document
from central_bank.certification import repository as certification_repo
from central_bank.certification.service import circulation_code
from central_bank.context import CentralBank
from central_bank.errors import AmountMismatch, OperatorSuspended, UnknownOperator
from central_bank.models import Operation, Operator, Token
from central_bank.operations import Idempotency, record_operation, run_idempotent
from central_bank.registration import repository as registry
from central_bank.registration.service import lock_spendable_inputs, mint_tokens


def item_key(reference: str) -> str:
    """The per-item idempotency key: the one a single settlement of `reference` uses."""
    return f"settle:{reference}"


def _item_hash(payee: str, amount: int) -> str:
    return sha256_hex(f"settlement-item:{payee}:{amount}".encode())


def settle_batch(
    session: Session,
    cb: CentralBank,
    *,
    operator: Operator,
    reference: str,
    serials: Sequence[str],
    items: Sequence[dict[str, Any]],
    idem: Idempotency,
    now: datetime,
) -> dict[str, Any]:
    """Settle every item of the batch that can be, in order, out of the inputs; answer per item."""
    refs = [str(i["reference"]) for i in items]
    if len(set(refs)) != len(refs):
        raise ValidationFailed("items: a reference is named twice")

    def run(op_id: uuid.UUID) -> tuple[Operation, dict[str, Any]]:
        payees = _operators(session, {str(i["payee_operator"]) for i in items})
        keys = sorted(item_key(r) for r in refs)
        session.execute(
            text(
                "SELECT pg_advisory_xact_lock(:op, hashtext(k)) "
                "FROM unnest(CAST(:keys AS text[])) AS k ORDER BY k"
            ),
            {"op": operator.id, "keys": text_array(keys)},
        )
        earlier = _earlier_items(session, operator.id, keys)
        tokens, total = lock_spendable_inputs(session, operator, serials)
        batch_op = record_operation(
            session,
            op_id,
            operator,
            idem,
            at=now,
            kind="settlement_batch",
            amount=0,
            reference=reference,
        )
        remaining = total
        answers: list[dict[str, Any]] = []
        new: list[tuple[int, uuid.UUID, Operator, int]] = []  # (index, settlement id, payee, X)
        for n, item in enumerate(items):
            ref, amount = str(item["reference"]), int(item["amount"])
            payee = payees.get(str(item["payee_operator"]))
            previous = earlier.get(item_key(ref))
            if previous is not None:
                if (
                    previous.kind != "settlement"
                    or previous.amount != amount
                    or payee is None
                    or previous.counterparty_id != payee.id
                ):
                    answers.append(_refused(ref, "idempotency_key_reused", "settled otherwise"))
                else:  # settled before (another batch, or alone): its answer, never again
                    answers.append(
                        {
                            "reference": ref,
                            "status": "settled",
                            **previous.response,
                            "replayed": True,
                        }
                    )
                continue
            refusal = _item_refusal(operator, payee, item, amount, remaining)
            if refusal is not None:
                answers.append(refusal)
                continue
            assert payee is not None
            remaining -= amount
            new.append((n, uuid.uuid4(), payee, amount))
            answers.append({})  # filled in below
        registry.mark_tokens(session, [t.serial for t in tokens], status="spent", by=op_id, at=now)
        change_wire: list[dict[str, Any]] = []
        minted: list[Token] = []
        if remaining > 0:
            minted, change_wire = mint_tokens(
                cb, owner=operator, amount=remaining, operation_id=op_id, chunked=False, now=now
            )
        inputs = [str(t.serial) for t in tokens]
        change = [t["serial"] for t in change_wire]
        if new:
            minted += _settle_items(
                session, cb, operator, items, new, answers, reference, now, inputs, change
            )
        registry.insert_tokens(session, minted)  # the change and every payee's, one statement
        batch_op.amount = total - remaining
        document = {
            "kind": "settlement_batch",
            "mode": "rtgs",
            "batch_id": str(op_id),
            "reference": reference,
            "payer_operator": operator.code,
            "inputs": inputs,
            "change_tokens": change,
            "amount": total - remaining,
            "items": [
                {
                    "reference": a["reference"],
                    "status": a["status"],
                    "settlement_id": a.get("settlement_id"),
                    "code": a.get("code"),
                }
                for a in answers
            ],
            "settled_at": iso(now),
        }
        return batch_op, {
            "batch_id": str(op_id),
            "receipt": sign_document(cb.key, document),
            "change": change_wire,
            "items": answers,
        }

    return run_idempotent(session, operator, idem, run)


def _operators(session: Session, codes: set[str]) -> dict[str, Operator]:
    found = {}
    for code in sorted(codes):
        operator = certification_repo.operator_by_code(session, code)
        if operator is not None:
            found[code] = operator
    return found


def _earlier_items(session: Session, operator_id: int, keys: list[str]) -> dict[str, Operation]:
    rows = session.scalars(
        select(Operation).where(
            Operation.operator_id == operator_id, Operation.idempotency_key.in_(keys)
        )
    ).all()
    return {row.idempotency_key: row for row in rows}


def _refused(reference: str, code: str, detail: str) -> dict[str, Any]:
    return {"reference": reference, "status": "refused", "code": code, "detail": detail}


def _item_refusal(
    operator: Operator,
    payee: Operator | None,
    item: dict[str, Any],
    amount: int,
    remaining: int,
) -> dict[str, Any] | None:
    ref, code = str(item["reference"]), str(item["payee_operator"])
    if payee is None:
        return _refused(ref, UnknownOperator.code, f"no operator {code}")
    if payee.id == operator.id:
        return _refused(ref, ValidationFailed.code, "settlement needs two different operators")
    if payee.status != "active":
        return _refused(ref, OperatorSuspended.code, f"payee operator {code} is {payee.status}")
    if amount > remaining:
        return _refused(
            ref, AmountMismatch.code, f"the batch's inputs left {remaining} for {amount}"
        )
    return None


def _settle_items(
    session: Session,
    cb: CentralBank,
    operator: Operator,
    items: Sequence[dict[str, Any]],
    new: list[tuple[int, uuid.UUID, Operator, int]],
    answers: list[dict[str, Any]],
    batch_reference: str,
    now: datetime,
    inputs: list[str],
    change: list[str],
) -> list[Token]:
    """The settled items, set-based: ledger entries, operations, signed receipts; returns the
    payees' tokens (the caller inserts them)."""
    payees = {payee.id: payee.code for _, _, payee, _ in new}
    by_code = _lock_circulation(session, {operator.code, *payees.values()})
    payer_acc = by_code[operator.code]
    payee_accs = {pid: by_code[code] for pid, code in payees.items()}
    entry_ids = ledger.post_many(
        session,
        [
            (
                "settlement",
                str(items[n]["reference"]),
                [(payer_acc, -amount), (payee_accs[payee.id], amount)],
            )
            for n, _, payee, amount in new
        ],
        at=now,
    )
    responses: list[dict[str, Any]] = []
    token_rows: list[Token] = []
    for n, settlement_id, payee, amount in new:
        rows, payee_wire = mint_tokens(
            cb, owner=payee, amount=amount, operation_id=settlement_id, chunked=False, now=now
        )
        token_rows += rows
        receipt = {
            "kind": "settlement",
            "mode": "rtgs",
            "settlement_id": str(settlement_id),
            "reference": str(items[n]["reference"]),
            "payer_operator": operator.code,
            "payee_operator": payee.code,
            "amount": amount,
            "inputs": inputs,
            "payee_tokens": [t["serial"] for t in payee_wire],
            "change_tokens": change,
            "settled_at": iso(now),
            "batch": batch_reference,
        }
        response = {
            "settlement_id": str(settlement_id),
            "receipt": sign_document(cb.key, receipt),
            "payee_tokens": payee_wire,
        }
        responses.append(response)
        answers[n] = {"reference": str(items[n]["reference"]), "status": "settled", **response}
    session.execute(
        text(
            "INSERT INTO operations (id, kind, operator_id, counterparty_id, idempotency_key, "
            "request_hash, amount, reference, entry_id, response, created_at) "
            "SELECT o.id, 'settlement', :op, o.payee, o.k, o.h, o.amount, o.ref, o.entry, "
            "CAST(:responses AS jsonb) -> (o.n - 1)::int, :at "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:payees AS int[]), CAST(:keys AS text[]), "
            "CAST(:hashes AS text[]), CAST(:amounts AS bigint[]), CAST(:refs AS text[]), "
            "CAST(:entries AS bigint[])) WITH ORDINALITY "
            "AS o(id, payee, k, h, amount, ref, entry, n)"
        ),
        {
            "op": operator.id,
            "ids": any_array([sid for _, sid, _, _ in new]),
            "payees": int_array(payee.id for _, _, payee, _ in new),
            "keys": text_array([item_key(str(items[n]["reference"])) for n, _, _, _ in new]),
            "hashes": text_array([_item_hash(payee.code, amount) for _, _, payee, amount in new]),
            "amounts": int_array(amount for _, _, _, amount in new),
            "refs": text_array([str(items[n]["reference"]) for n, _, _, _ in new]),
            "entries": int_array(entry_ids),
            "responses": json.dumps(responses),
            "at": now,
        },
    )
    return token_rows


def _lock_circulation(session: Session, codes: set[str]) -> dict[str, int]:
    """Lock the operators' circulation accounts (ascending id, as `ledger.lock_accounts`) and
    return their ids by operator code: one statement instead of a lookup per account."""
    wanted = {circulation_code(code): code for code in codes}
    rows = session.execute(
        text(
            "SELECT id, code FROM accounts WHERE code = ANY(CAST(:codes AS text[])) "
            "ORDER BY id FOR UPDATE"
        ),
        {"codes": text_array(sorted(wanted))},
    ).all()
    found = {wanted[str(code)]: int(acc) for acc, code in rows}
    missing = set(codes) - set(found)
    assert not missing, f"no circulation account for {sorted(missing)}"
    return found
