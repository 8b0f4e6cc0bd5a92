"""`POST /v1/payments/batch`: signed payment orders through the batch payment path.

Each order's currency, payer, signature and time window are checked here; the orders that pass
go through `operators.batch.pay_many` together, in the request's transaction. A refused order
keeps its nonce like a refused single order, and the same signed order twice is one payment.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.errors import DomainError, IdempotencyMismatch, ValidationFailed
from operators import batch, service
from operators.batch import Instruction, pay_many
from operators.context import OperatorContext
from operators.errors import InvalidWalletId, UnknownWallet, WrongOperator
from operators.payment_sql import StoredOrder

MAX_BATCH = 1000

# Refusals that say nothing about the order's own fate, so its nonce stays free.
UNRECORDED_REFUSALS = frozenset(
    {
        "bad_signature",
        "idempotency_key_reused",
        "order_expired",
        "invalid_wallet_id",
        "wrong_operator",
        "unknown_wallet",
        "order_already_refused",
    }
)


def pay_signed(
    session: Session, ctx: OperatorContext, *, items: Sequence[tuple[dict[str, Any], str]]
) -> list[dict[str, Any]]:
    """`POST /v1/payments/batch`: signed orders checked (currency, payer's signature, order
    window) and then run through `pay_many` in the caller's transaction. A refused order keeps
    its nonce like a refused single order; the same signed order twice is one payment. Returns
    one result per order: {"ok": True, "receipt": ...} or {"ok": False, "problem": ...}."""
    if len(items) > MAX_BATCH:
        raise ValidationFailed(f"orders: at most {MAX_BATCH} per batch")
    return [
        _problem(r) if isinstance(r, DomainError) else {"ok": True, "receipt": r}
        for r in judge_signed(session, ctx, items=items)
    ]


def judge_signed(
    session: Session, ctx: OperatorContext, *, items: Sequence[tuple[dict[str, Any], str]]
) -> list[dict[str, Any] | DomainError]:
    """The work of `pay_signed`: one receipt or one refusal (the exception, not raised) per
    order. Also the engine of micro-batched single payments (`operators.microbatch`).

    The batch's accounts are locked and its wallets (with their public keys) and earlier
    orders read in one round trip (`batch.read_for`) before the signatures are checked, and
    `pay_many` judges on that same read."""
    now = ctx.now()
    results: list[dict[str, Any] | DomainError | None] = [None] * len(items)
    candidates: list[tuple[int, Instruction]] = []
    for i, (order, signature) in enumerate(items):
        try:
            service.check_currency(ctx, order)
            payer = str(order["payer"])
            if not is_valid_wallet_id(payer):
                raise InvalidWalletId(f"{payer!r} is not a valid wallet id")
            if routing_code(payer) != ctx.code:
                raise WrongOperator(f"wallet {payer} is held at operator {routing_code(payer)}")
            candidates.append(
                (
                    i,
                    Instruction(
                        payer=payer,
                        payee=str(order["payee"]),
                        amount=int(order["amount"]),
                        nonce=str(order["nonce"]),
                        body=order,
                        signature=signature,
                    ),
                )
            )
        except DomainError as exc:
            results[i] = exc
    read = batch.read_for(session, ctx, [ins for _, ins in candidates], with_keys=True)
    instructions: list[Instruction] = []
    positions: list[int] = []
    first_of: dict[tuple[str, str], tuple[int, str]] = {}
    repeats: dict[int, int] = {}  # index -> index of the same order earlier in the batch
    for i, ins in candidates:
        try:
            wallet = read.wallets.get(ins.payer)
            if wallet is None:
                raise UnknownWallet(f"no wallet {ins.payer}")
            order_hash = service.check_signed_order(
                wallet,  # type: ignore[arg-type]
                items[i][0],
                items[i][1],
            )
            key = (ins.payer, ins.nonce)
            if key in first_of:
                earlier, earlier_hash = first_of[key]
                if earlier_hash != order_hash:
                    raise IdempotencyMismatch("this nonce was already used by a different order")
                repeats[i] = earlier
                continue
            first_of[key] = (i, order_hash)
        except DomainError as exc:
            results[i] = exc
            continue
        positions.append(i)
        instructions.append(ins._replace(order_hash=order_hash))
    outcomes = pay_many(session, ctx, instructions, now=now, read=read)
    for i, ins, outcome in zip(positions, instructions, outcomes, strict=True):
        if outcome.ok:
            row = outcome.previous or StoredOrder(
                wallet_id=ins.payer,
                nonce=ins.nonce,
                id=outcome.order_id,  # type: ignore[arg-type]
                order_hash=ins.order_hash,
                status=outcome.status or "completed",
                failure=None,
                entry_id=None,
                counterparty=ins.payee,
                amount=ins.amount,
                created_at=now,
            )
            receipt = service.payment_receipt(ctx, row)  # type: ignore[arg-type]
            receipt["replayed"] = outcome.replayed
            results[i] = receipt
            continue
        assert outcome.error is not None
        if outcome.error.status < 500 and outcome.error.code not in UNRECORDED_REFUSALS:
            order, signature = items[i]
            with session.begin_nested():
                service.record_refused_order(
                    session,
                    ctx,
                    kind="payment",
                    order=order,
                    signature=signature,
                    failure=outcome.error.code,
                )
        results[i] = outcome.error
    for i, earlier in repeats.items():
        first = results[earlier]
        assert first is not None
        results[i] = first if isinstance(first, DomainError) else {**first, "replayed": True}
    return [r for r in results if r is not None]


def _problem(exc: DomainError) -> dict[str, Any]:
    return {
        "ok": False,
        "problem": {
            "status": exc.status,
            "code": exc.code,
            "title": exc.title,
            "detail": exc.detail,
            **exc.extra,
        },
    }
