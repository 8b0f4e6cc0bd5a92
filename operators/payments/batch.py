"""The batch payment path: thousands of payments in one transaction.

`pay_many` is what every payment goes through: single payments (micro-batched,
`operators.payments.microbatch`), the signed batch API and the scenario engine. It applies the rules
of a payment: payer and payee exist and are active, class limits per payment, day and year, the
payer's balance, the payee's balance cap (refuse or sweep, as the policy says), cross-operator
payments through `in_transit_out` and settlement (RTGS or deferred net), AML rules. The
database is used like this (the SQL is in `operators.payments.payment_sql`, raw psycopg):

  1. one round trip locks the accounts the batch touches, in ascending id order (as every
     path that locks accounts does, so they cannot deadlock), then reads the wallets as of the
     lock and the orders already stored under the batch's nonces;
  2. the payments are judged in order in Python against those balances and counters, so a
     payment sees the effect of the ones before it in the batch;
  3. one round trip writes the accepted ones set-based (journal entries, postings, orders and
     spend counters in one statement; the database re-checks every entry's balance and every
     account's sign) and runs the AML rules' aggregate query; then the settlement items.

A refused payment is reported with the same problem code a single payment would get and
leaves no trace; the others still post.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.errors import DomainError, IdempotencyMismatch, InsufficientFunds
from operators.compliance import aml
from operators.context import OperatorContext
from operators.errors import (
    InvalidWalletId,
    SelfPayment,
    UnknownOperator,
    UnknownWallet,
    WrongOperator,
)
from operators.payments import payment_sql
from operators.payments.orders import check_replay
from operators.payments.payment_sql import BatchRead, StoredOrder
from operators.wallets import limits
from operators.wallets.states import WalletState


class Instruction(NamedTuple):
    """One payment. `signature` is the wallet's signature of `body` (the API checked it);
    None for a payment the scenario engine places for a simulated customer. (A named tuple:
    the engine builds a million of them, and a frozen dataclass costs several times more to
    construct.)"""

    payer: str
    payee: str
    amount: int
    nonce: str
    at: datetime | None = None  # when it was placed; default: the batch's time
    body: dict[str, Any] | None = None
    signature: str | None = None
    order_hash: str | None = None


@dataclass(slots=True)
class Outcome:
    ok: bool
    order_id: uuid.UUID | None = None
    status: str | None = None  # completed | pending_settlement
    error: DomainError | None = None
    cross: bool = False
    replayed: bool = False
    previous: StoredOrder | None = field(default=None, repr=False)

    @property
    def code(self) -> str | None:
        return self.error.code if self.error is not None else None


def read_for(
    session: Session,
    ctx: OperatorContext,
    instructions: Sequence[Instruction],
    *,
    with_keys: bool = False,
) -> BatchRead:
    """Lock what `pay_many(instructions)` will lock and read what it will read (the wallets'
    public keys too, if asked): for a caller that needs the wallets before judging, e.g. to
    check signatures (`operators.payments.signed_batch`), and passes the result on as `read`."""
    wanted: set[str] = set()
    cross_any = False
    known_peers: dict[str, bool] = {}
    valid_ids: dict[str, bool] = {}
    for ins in instructions:
        refused = _static_refusal(ctx, ins, known_peers, valid_ids) is not None
        if valid_ids[ins.payer] and routing_code(ins.payer) == ctx.code:
            wanted.add(ins.payer)  # refused or not: its wallet is read (with_keys)
        if refused:
            continue
        if routing_code(ins.payee) == ctx.code:
            wanted.add(ins.payee)
        else:
            cross_any = True
    sweeping = ctx.policy.overflow == "sweep"
    extra: list[int] = []
    if cross_any:
        extra.append(ctx.account("in_transit_out"))
    if sweeping:
        extra += [ctx.account("vault_float"), ctx.account("deposits_contra")]
    return payment_sql.read_batch(
        session,
        sorted(wanted),
        extra_accounts=extra,
        with_deposits=sweeping,
        with_keys=with_keys,
        nonces=[(i.payer, i.nonce) for i in instructions if i.signature is not None],
    )


def pay_many(
    session: Session,
    ctx: OperatorContext,
    instructions: Sequence[Instruction],
    *,
    now: datetime | None = None,
    read: BatchRead | None = None,
) -> list[Outcome]:
    """Judge and post `instructions` in order, in the caller's transaction; one outcome each.
    `read`: what `read_for` returned for these instructions (or more), in this transaction."""
    now = now or ctx.now()
    outcomes: list[Outcome | None] = [None] * len(instructions)
    known_peers: dict[str, bool] = {}
    valid_ids: dict[str, bool] = {}
    for i, ins in enumerate(instructions):
        refusal = _static_refusal(ctx, ins, known_peers, valid_ids)
        if refusal is not None:
            outcomes[i] = Outcome(ok=False, error=refusal)
    if read is None:
        read = read_for(session, ctx, instructions)
    balances, wallets, previous = read.balances, read.wallets, read.previous

    order_ids = iter(time_ordered_uuids(len(instructions)))
    entries: list[tuple[str, str, list[tuple[int, int]]]] = []
    orders: list[payment_sql.NewOrder] = []
    accepted: list[tuple[int, uuid.UUID, WalletState, WalletState | None, datetime]] = []
    seen: set[tuple[str, str]] = set()
    dirty: dict[str, WalletState] = {}
    in_transit = ctx.accounts.get("in_transit_out", 0)
    days = _LocalDays(ctx.timezone)
    iso: dict[datetime, str] = {}
    for i, ins in enumerate(instructions):
        if outcomes[i] is not None:
            continue
        try:
            payer = wallets.get(ins.payer)
            if payer is None:
                raise UnknownWallet(f"no wallet {ins.payer}")
            key = (ins.payer, ins.nonce)
            earlier = previous.get(key)
            if earlier is not None:
                check_replay(earlier, ins.order_hash or "")  # type: ignore[arg-type]
                outcomes[i] = Outcome(
                    ok=True,
                    order_id=earlier.id,
                    status=earlier.status,
                    replayed=True,
                    previous=earlier,
                    cross=routing_code(earlier.counterparty or "") != ctx.code,
                )
                continue
            if key in seen:
                raise IdempotencyMismatch("this nonce is used twice in the batch")
            cross = routing_code(ins.payee) != ctx.code
            payee = None if cross else wallets.get(ins.payee)
            if not cross and payee is None:
                raise UnknownWallet(f"no payee wallet {ins.payee}")
            limits.require_active(payer, "payer wallet")  # type: ignore[arg-type]
            at = ins.at or now
            day_total, year_total, today, year = _limits(ctx, days, payer, ins.amount, at)
            if balances[payer.account_id] < ins.amount:
                raise InsufficientFunds(
                    f"payer balance {limits.fmt_money(ctx, balances[payer.account_id])} "
                    f"does not cover {limits.fmt_money(ctx, ins.amount)}"
                )
            overflow = 0
            if payee is not None:
                limits.require_active(payee, "payee wallet")  # type: ignore[arg-type]
                overflow = limits.cap_overflow(
                    ctx,
                    payee,  # type: ignore[arg-type]
                    balances[payee.account_id],
                    ins.amount,
                )
        except DomainError as exc:
            outcomes[i] = Outcome(ok=False, error=exc)
            continue
        seen.add(key)
        order_id = next(order_ids)
        reference = str(order_id)
        credit = in_transit if payee is None else payee.account_id
        balances[payer.account_id] -= ins.amount
        balances[credit] = balances.get(credit, 0) + ins.amount
        entries.append(
            (
                "payment_out" if cross else "payment",
                reference,
                [(payer.account_id, -ins.amount), (credit, ins.amount)],
            )
        )
        status = "pending_settlement" if cross else "completed"
        stamp = iso.get(at)
        if stamp is None:
            stamp = iso[at] = at.isoformat()
        orders.append(
            payment_sql.NewOrder(
                order_id,
                ins.payer,
                ins.nonce,
                ins.amount,
                ins.payee,
                status,
                len(entries),
                stamp,
                ins.body,
                ins.signature,
                ins.order_hash,
            )
        )
        payer.spent_day, payer.spent_day_total = today, day_total
        payer.spent_year, payer.spent_year_total = year, year_total
        dirty[payer.id] = payer
        if overflow and payee is not None:
            balances[payee.account_id] -= overflow
            entries.append(
                (
                    "waterfall_sweep",
                    reference,
                    [
                        (payee.account_id, -overflow),
                        (ctx.account("vault_float"), overflow),
                        (ctx.account("deposits_contra"), -overflow),
                        (payee.deposit_account_id, overflow),
                    ],
                )
            )
        accepted.append((i, order_id, payer, payee, at))
        outcomes[i] = Outcome(ok=True, order_id=order_id, status=status, cross=cross)

    if orders:
        checks = aml.payment_checks(
            ctx,
            [(p, instructions[i].payee, instructions[i].amount, q) for i, _, p, q, _ in accepted],
            now=now,
        )
        hits = payment_sql.write_batch(
            session,
            entries=entries,
            orders=orders,
            counters=list(dirty.values()),
            at=now,
            then=(checks.query, checks.params),
        )
        _queue_settlements(session, ctx, instructions, accepted)
        aml.raise_payment_alerts(session, checks, hits, now=now)
    return [o for o in outcomes if o is not None]


def time_ordered_uuids(n: int) -> list[uuid.UUID]:
    """`n` version-7 UUIDs (millisecond time, then random): new orders append to the
    primary-key index instead of landing on random pages of it. The random bits of the whole
    batch are read in one call (`os.urandom` drops the GIL, once per batch is enough)."""
    head = (time.time_ns() // 1_000_000) << 80 | 0x7 << 76
    keep = ~(0xF << 76) & ~(0x3 << 62) & ((1 << 80) - 1)
    variant = 0x2 << 62
    noise = os.urandom(10 * n)
    return [
        uuid.UUID(int=head | (int.from_bytes(noise[k : k + 10], "big") & keep) | variant)
        for k in range(0, 10 * n, 10)
    ]


def _static_refusal(
    ctx: OperatorContext,
    ins: Instruction,
    known_peers: dict[str, bool],
    valid_ids: dict[str, bool],
) -> DomainError | None:
    for wallet_id in (ins.payer, ins.payee):
        if wallet_id not in valid_ids:
            valid_ids[wallet_id] = is_valid_wallet_id(wallet_id)
    if not valid_ids[ins.payer]:
        return InvalidWalletId(f"{ins.payer!r} is not a valid wallet id")
    if routing_code(ins.payer) != ctx.code:
        return WrongOperator(f"wallet {ins.payer} is held at operator {routing_code(ins.payer)}")
    if not valid_ids[ins.payee]:
        return InvalidWalletId(f"payee {ins.payee!r} is not a valid wallet id")
    if ins.payer == ins.payee:
        return SelfPayment("payer and payee are the same wallet")
    peer = routing_code(ins.payee)
    if peer != ctx.code:
        if peer not in known_peers:
            known_peers[peer] = ctx.central_bank.operator(peer) is not None
        if not known_peers[peer]:
            return UnknownOperator(f"no operator with routing code {peer}")
    return None


class _LocalDays:
    """The local day and year of each payment's time, in the operator's time zone. A batch's
    times mostly fall on one local day: the UTC bounds of the last day looked up answer the
    next time without a time zone conversion."""

    __slots__ = ("tz", "bounds", "day", "year")

    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.bounds: tuple[datetime, datetime] | None = None  # the last day's, in UTC
        self.day = date.min
        self.year = 0

    def of(self, at: datetime) -> tuple[date, int]:
        if at.tzinfo is None:  # naive: the local time of this machine, as astimezone reads it
            day = at.astimezone(self.tz).date()
            return day, day.year
        if self.bounds is None or not self.bounds[0] <= at < self.bounds[1]:
            day = at.astimezone(self.tz).date()
            lo = datetime.combine(day, dtime.min, tzinfo=self.tz).astimezone(UTC)
            hi = datetime.combine(day + timedelta(days=1), dtime.min, tzinfo=self.tz)
            hi = hi.astimezone(UTC)
            # a wall-clock day that DST cuts short or repeats: look such times up each time
            self.bounds = (lo, hi) if lo <= at < hi else None
            self.day, self.year = day, day.year
        return self.day, self.year


def _limits(
    ctx: OperatorContext, days: _LocalDays, payer: WalletState, amount: int, at: datetime
) -> tuple[int, int, date, int]:
    today, year = days.of(at)
    day_total, year_total = limits.check_outgoing_limits(
        ctx,
        payer,  # type: ignore[arg-type]
        amount,
        today=today,
        year=year,
    )
    return day_total, year_total, today, year


def _queue_settlements(
    session: Session,
    ctx: OperatorContext,
    instructions: Sequence[Instruction],
    accepted: Sequence[tuple[int, uuid.UUID, WalletState, WalletState | None, datetime]],
) -> None:
    from operators.settlement.queue import queue_cross_operator

    queue_cross_operator(
        session,
        ctx,
        [
            (order_id, instructions[i].payer, instructions[i].payee, instructions[i].amount)
            for i, order_id, _, payee, _ in accepted
            if payee is None
        ],
    )
