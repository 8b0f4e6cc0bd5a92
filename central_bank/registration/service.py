"""The registration centre: the token registry. Issuance, redemption, splitting, RTGS
settlement between operators, token status; and the primitives the clearing centre uses to
spend and mint tokens.

The central bank's own ledger has, per operator, a `reserve:<code>` account (the operator's
reserves, never negative) and a `circulation:<code>` account (value of the live tokens registered
to it). Reserves come from `reserve_funding`, the only account allowed to go negative.

    issuance    reserve:A -X      circulation:A +X     (+ tokens minted, owned by A)
    redemption  circulation:A -X  reserve:A +X         (tokens marked redeemed)
    settlement  circulation:A -X  circulation:B +X     (inputs spent, output minted for B)

so at every moment: value of live tokens of A == balance of circulation:A, and the sum of all
circulation == issued - redeemed == reserves debited for issuance - reserves credited back.
Every operator request is idempotent: a retry with the same Idempotency-Key and body gets the
stored answer; with a different body it is refused.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.clock import iso
from cbdc.errors import ValidationFailed
from cbdc.tokens import sign_document, sign_token, token_body
from central_bank.certification import repository as certification_repo
from central_bank.certification.service import circulation_code, require_operator, reserve_code
from central_bank.context import CentralBank
from central_bank.errors import (
    AmountMismatch,
    InsufficientReserves,
    OperatorSuspended,
    QuotaExceeded,
    TokenAlreadySpent,
    TokenNotOwned,
    UnknownToken,
)
from central_bank.models import Operation, Operator, Token
from central_bank.operations import Idempotency, record_operation, run_idempotent
from central_bank.registration import repository as repo


def mint_tokens(
    cb: CentralBank,
    *,
    owner: Operator,
    amount: int,
    operation_id: uuid.UUID,
    chunked: bool,
    now: datetime,
) -> tuple[list[Token], list[dict[str, Any]]]:
    """Sign new tokens worth `amount` in all, owned by `owner` and created by the operation
    `operation_id`, issued `now` (`chunked`: in tokens of at most `max_token_amount`; else one
    token). Returns
    the rows, which the caller stores (`repo.add_tokens` or `repo.insert_tokens`), and the
    signed tokens as sent on the wire."""
    amounts: list[int] = []
    remaining = amount
    while remaining > 0:
        part = min(remaining, cb.max_token_amount) if chunked else remaining
        amounts.append(part)
        remaining -= part
    rows, wire = [], []
    for part in amounts:
        serial = uuid.uuid4()
        signed = sign_token(cb.key, token_body(str(serial), part, cb.currency, iso(now)))
        rows.append(
            Token(
                serial=serial,
                amount=part,
                owner_operator_id=owner.id,
                status="live",
                issued_at=now,
                signature=signed["signature"],
                created_by=operation_id,
            )
        )
        wire.append(signed)
    return rows, wire


def lock_spendable_inputs(
    session: Session, operator: Operator, serials: Sequence[str]
) -> tuple[list[Token], int]:
    """Lock the named tokens to spend them (ascending serial order): each must exist, be
    registered to `operator` and be live. Returns the tokens and their total; the caller marks
    them spent or redeemed (`repo.mark_tokens`) in the same transaction."""
    if not serials:
        raise ValidationFailed("at least one input token is needed")
    try:
        wanted = [uuid.UUID(s) for s in serials]
    except ValueError:
        raise ValidationFailed("token serials must be UUIDs") from None
    if len(set(wanted)) != len(wanted):
        raise ValidationFailed("a token is named twice")
    tokens = repo.lock_tokens(session, wanted)
    found = {t.serial for t in tokens}
    missing = [str(s) for s in wanted if s not in found]
    if missing:
        raise UnknownToken(f"unknown token(s): {', '.join(missing[:5])}")
    for token in tokens:
        if token.owner_operator_id != operator.id:
            raise TokenNotOwned(f"token {token.serial} is not registered to {operator.code}")
        if token.status != "live":
            raise TokenAlreadySpent(f"token {token.serial} is already {token.status}")
    return tokens, sum(t.amount for t in tokens)


# ---------------------------------------------------------------- issuance and redemption


def issue_tokens(
    session: Session,
    cb: CentralBank,
    *,
    operator: Operator,
    amount: int,
    idem: Idempotency,
    now: datetime,
) -> dict[str, Any]:
    """Debit the operator's reserves by `amount` and mint tokens worth `amount` owned by it."""

    def run(op_id: uuid.UUID) -> tuple[Operation, dict[str, Any]]:
        reserve = ledger.account_id(session, reserve_code(operator.code))
        circulation = ledger.account_id(session, circulation_code(operator.code))
        assert reserve is not None and circulation is not None
        balances = ledger.lock_accounts(session, [reserve, circulation])
        if balances[reserve] < amount:
            raise InsufficientReserves(
                f"reserves {cb.money(balances[reserve])} do not cover issuance of "
                f"{cb.money(amount)}"
            )
        if balances[circulation] + amount > operator.quota:
            raise QuotaExceeded(
                f"outstanding {cb.money(balances[circulation])} + {cb.money(amount)} exceeds quota "
                f"{cb.money(operator.quota)}"
            )
        entry = ledger.post_many(
            session, [("issuance", str(op_id), [(reserve, -amount), (circulation, amount)])], at=now
        )[0]
        rows, wire = mint_tokens(
            cb, owner=operator, amount=amount, operation_id=op_id, chunked=True, now=now
        )
        op = record_operation(
            session, op_id, operator, idem, at=now, kind="issuance", amount=amount, entry_id=entry
        )
        repo.add_tokens(session, rows)
        doc = {
            "kind": "issuance",
            "operation_id": str(op_id),
            "operator": operator.code,
            "amount": amount,
            "serials": [t["serial"] for t in wire],
            "at": iso(now),
        }
        return op, {
            "operation_id": str(op_id),
            "amount": amount,
            "tokens": wire,
            "receipt": sign_document(cb.key, doc),
        }

    return run_idempotent(session, operator, idem, run)


def redeem_tokens(
    session: Session,
    cb: CentralBank,
    *,
    operator: Operator,
    serials: Sequence[str],
    amount: int,
    idem: Idempotency,
    now: datetime,
) -> dict[str, Any]:
    """Redeem `amount` out of the named tokens; any remainder comes back as a change token."""

    def run(op_id: uuid.UUID) -> tuple[Operation, dict[str, Any]]:
        tokens, total = lock_spendable_inputs(session, operator, serials)
        if total < amount:
            raise AmountMismatch(f"tokens worth {cb.money(total)} cannot redeem {cb.money(amount)}")
        reserve = ledger.account_id(session, reserve_code(operator.code))
        circulation = ledger.account_id(session, circulation_code(operator.code))
        assert reserve is not None and circulation is not None
        ledger.lock_accounts(session, [reserve, circulation])
        entry = ledger.post_many(
            session,
            [("redemption", str(op_id), [(circulation, -amount), (reserve, amount)])],
            at=now,
        )[0]
        op = record_operation(
            session, op_id, operator, idem, at=now, kind="redemption", amount=amount, entry_id=entry
        )
        repo.mark_tokens(session, [t.serial for t in tokens], status="redeemed", by=op_id, at=now)
        change_wire: list[dict[str, Any]] = []
        if total > amount:
            # The change is a fresh token: the inputs are gone for good, redeemed in full, and
            # the change's value is re-minted without touching reserves (it never left).
            rows, change_wire = mint_tokens(
                cb,
                owner=operator,
                amount=total - amount,
                operation_id=op_id,
                chunked=False,
                now=now,
            )
            repo.add_tokens(session, rows)
        doc = {
            "kind": "redemption",
            "operation_id": str(op_id),
            "operator": operator.code,
            "amount": amount,
            "inputs": [str(t.serial) for t in tokens],
            "change": [t["serial"] for t in change_wire],
            "at": iso(now),
        }
        return op, {
            "operation_id": str(op_id),
            "amount": amount,
            "change": change_wire,
            "receipt": sign_document(cb.key, doc),
        }

    return run_idempotent(session, operator, idem, run)


def split_tokens(
    session: Session,
    cb: CentralBank,
    *,
    operator: Operator,
    serials: Sequence[str],
    outputs: Sequence[int],
    idem: Idempotency,
    now: datetime,
) -> dict[str, Any]:
    """Spend the inputs and mint outputs of the given amounts (same total, same owner)."""

    def run(op_id: uuid.UUID) -> tuple[Operation, dict[str, Any]]:
        tokens, total = lock_spendable_inputs(session, operator, serials)
        if sum(outputs) != total:
            raise AmountMismatch(
                f"outputs sum to {cb.money(sum(outputs))}, inputs to {cb.money(total)}"
            )
        op = record_operation(session, op_id, operator, idem, at=now, kind="split", amount=total)
        repo.mark_tokens(session, [t.serial for t in tokens], status="spent", by=op_id, at=now)
        wire: list[dict[str, Any]] = []
        for part in outputs:
            rows, minted = mint_tokens(
                cb, owner=operator, amount=part, operation_id=op_id, chunked=False, now=now
            )
            repo.add_tokens(session, rows)
            wire += minted
        doc = {
            "kind": "split",
            "operation_id": str(op_id),
            "operator": operator.code,
            "inputs": [str(t.serial) for t in tokens],
            "outputs": [t["serial"] for t in wire],
            "at": iso(now),
        }
        return op, {
            "operation_id": str(op_id),
            "tokens": wire,
            "receipt": sign_document(cb.key, doc),
        }

    return run_idempotent(session, operator, idem, run)


# ---------------------------------------------------------------- registration centre


def settle(
    session: Session,
    cb: CentralBank,
    *,
    operator: Operator,
    payee_code: str,
    amount: int,
    serials: Sequence[str],
    reference: str,
    idem: Idempotency,
    now: datetime,
) -> dict[str, Any]:
    """RTGS: move `amount` of token value from the requesting operator to `payee_code` now.

    The inputs are spent; a token of `amount` is minted to the payee operator and the change
    (if any) back to the payer operator; the receipt is signed so the payee's operator can credit
    its customer on the strength of it.
    """

    def run(op_id: uuid.UUID) -> tuple[Operation, dict[str, Any]]:
        payee = require_operator(session, payee_code)
        if payee.id == operator.id:
            raise ValidationFailed("settlement needs two different operators")
        if payee.status != "active":
            raise OperatorSuspended(f"payee operator {payee.code} is {payee.status}")
        tokens, total = lock_spendable_inputs(session, operator, serials)
        if total < amount:
            raise AmountMismatch(f"tokens worth {cb.money(total)} cannot settle {cb.money(amount)}")
        payer_acc = ledger.account_id(session, circulation_code(operator.code))
        payee_acc = ledger.account_id(session, circulation_code(payee.code))
        assert payer_acc is not None and payee_acc is not None
        ledger.lock_accounts(session, [payer_acc, payee_acc])
        entry = ledger.post_many(
            session,
            [("settlement", reference, [(payer_acc, -amount), (payee_acc, amount)])],
            at=now,
        )[0]
        op = record_operation(
            session,
            op_id,
            operator,
            idem,
            at=now,
            kind="settlement",
            amount=amount,
            counterparty_id=payee.id,
            reference=reference,
            entry_id=entry,
        )
        repo.mark_tokens(session, [t.serial for t in tokens], status="spent", by=op_id, at=now)
        payee_rows, payee_wire = mint_tokens(
            cb, owner=payee, amount=amount, operation_id=op_id, chunked=False, now=now
        )
        repo.add_tokens(session, payee_rows)
        change_wire: list[dict[str, Any]] = []
        if total > amount:
            rows, change_wire = mint_tokens(
                cb,
                owner=operator,
                amount=total - amount,
                operation_id=op_id,
                chunked=False,
                now=now,
            )
            repo.add_tokens(session, rows)
        receipt = {
            "kind": "settlement",
            "mode": "rtgs",
            "settlement_id": str(op_id),
            "reference": reference,
            "payer_operator": operator.code,
            "payee_operator": payee.code,
            "amount": amount,
            "inputs": [str(t.serial) for t in tokens],
            "payee_tokens": [t["serial"] for t in payee_wire],
            "change_tokens": [t["serial"] for t in change_wire],
            "settled_at": iso(now),
        }
        return op, {
            "settlement_id": str(op_id),
            "receipt": sign_document(cb.key, receipt),
            "payee_tokens": payee_wire,
            "change": change_wire,
        }

    return run_idempotent(session, operator, idem, run)


def token_status(session: Session, *, serial: str, operator: Operator | None) -> dict[str, Any]:
    try:
        token = repo.get_token(session, uuid.UUID(serial))
    except ValueError:
        raise ValidationFailed("serial must be a UUID") from None
    if token is None:
        raise UnknownToken(f"no token {serial}")
    if operator is not None and token.owner_operator_id != operator.id:
        raise TokenNotOwned("token is registered to another operator")
    owner = certification_repo.operator_by_id(session, token.owner_operator_id)
    return {
        "serial": str(token.serial),
        "amount": token.amount,
        "status": token.status,
        "owner": owner.code if owner else None,
        "issued_at": iso(token.issued_at),
    }
