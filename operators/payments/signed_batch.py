"""`POST /v1/payments/batch`: signed payment orders through the batch payment path.

Each order's currency, payer, signature and time window are checked here; the orders that pass
go through `operators.payments.batch.pay_many` together, in the request's transaction. A refused
order keeps its nonce like a refused single order, and the same signed order twice is one payment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.errors import DomainError, IdempotencyMismatch, ValidationFailed
from cbdc.sqlarrays import text_array
from operators.context import OperatorContext
from operators.errors import InvalidWalletId, UnknownWallet, WrongOperator
from operators.payments import batch, orders
from operators.payments.batch import Instruction, pay_many
from operators.payments.payment_sql import StoredOrder
from operators.rawsql import raw

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
    order. Also the engine of micro-batched single payments (`operators.payments.microbatch`).

    Payers' public keys come from a per-operator cache (a wallet's key never changes; the
    missing ones are read in one statement, without locks); the signatures are checked; then
    the batch's accounts are locked and its wallets and earlier orders read in one round trip
    (`batch.read_for`), and `pay_many` judges on that read."""
    now = ctx.now()
    results: list[dict[str, Any] | DomainError | None] = [None] * len(items)
    candidates: list[tuple[int, Instruction]] = []
    for i, (order, signature) in enumerate(items):
        try:
            orders.check_currency(ctx, order)
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
    keys = _public_keys(session, ctx, [ins.payer for _, ins in candidates])
    instructions: list[Instruction] = []
    positions: list[int] = []
    first_of: dict[tuple[str, str], tuple[int, str]] = {}
    repeats: dict[int, int] = {}  # index -> index of the same order earlier in the batch
    for i, ins in candidates:
        try:
            public_key = keys.get(ins.payer)
            if public_key is None:
                raise UnknownWallet(f"no wallet {ins.payer}")
            order_hash = orders.check_signed_order(
                _KeyOnly(public_key),  # type: ignore[arg-type]
                items[i][0],
                items[i][1],
                now=now,
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
    # Locks, wallets as of the lock and stored orders in one round trip, after the signatures
    # were checked (so no account lock is held while they are: concurrent batches verify in
    # parallel, `cryptography` releases the GIL).
    read = batch.read_for(session, ctx, instructions)
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
            receipt = orders.payment_receipt(ctx, row)  # type: ignore[arg-type]
            receipt["replayed"] = outcome.replayed
            results[i] = receipt
            continue
        assert outcome.error is not None
        if outcome.error.status < 500 and outcome.error.code not in UNRECORDED_REFUSALS:
            order, signature = items[i]
            with session.begin_nested():
                orders.record_refused_order(
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


@dataclass(frozen=True, slots=True)
class _KeyOnly:
    public_key: str


KEY_CACHE_LIMIT = 500_000  # wallets whose keys a process keeps (about 100 bytes each)


def _public_keys(session: Session, ctx: OperatorContext, wallet_ids: list[str]) -> dict[str, str]:
    """The public keys of these wallets (those that exist). Kept on the operator's context: a
    wallet's key is set when it is opened and never changes (and a wallet with orders cannot
    be deleted), so a cached key is never stale."""
    cache: dict[str, str] | None = getattr(ctx, "_payment_keys", None)
    if cache is None or len(cache) > KEY_CACHE_LIMIT:
        cache = {}
        ctx._payment_keys = cache  # type: ignore[attr-defined]
    missing = sorted({w for w in wallet_ids if w not in cache})
    if missing:
        with raw(session, _KEYS_SQL) as conn, conn.cursor() as cursor:
            cursor.execute(_KEYS_SQL, {"ids": text_array(missing)})
            cache.update(cursor.fetchall())
    return {w: cache[w] for w in wallet_ids if w in cache}


_KEYS_SQL = "SELECT id, public_key FROM wallets WHERE id = ANY(%(ids)s::text[])"


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
