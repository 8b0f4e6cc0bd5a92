"""The batch payment path: thousands of payments in one transaction.

`pay_many` is what every payment goes through: single payments (micro-batched,
`operators.microbatch`), the signed batch API and the scenario engine. It applies the rules of
a payment: payer and payee exist and are active, class limits per payment, day and year, the
payer's balance, the payee's balance cap (refuse or sweep, as the policy says), cross-operator
payments through `in_transit_out` and settlement (RTGS or deferred net), AML rules. The
database is used like this:

  1. the wallets the batch touches are read once, their accounts locked once, in ascending id
     order (as every path that locks accounts does, so they cannot deadlock), and the
     wallets re-read as of the lock;
  2. the payments are judged in order in Python against those balances and counters, so a
     payment sees the effect of the ones before it in the batch;
  3. the accepted ones are written set-based: one journal entry per payment through
     `ledger.post_many` (the database re-checks every entry's balance and every account's
     sign), one INSERT of orders, one UPDATE of spend counters, one INSERT of settlement
     items, and the AML rules as a handful of aggregate queries.

A refused payment is reported with the same problem code a single payment would get and
leaves no trace; the others still post.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as dtime
from typing import Any, NamedTuple

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.db import fetch_rows
from cbdc.errors import DomainError, IdempotencyMismatch, InsufficientFunds
from cbdc.sqlarrays import any_array, int_array, nullable_text_array, text_array
from operators import aml, service
from operators.context import OperatorContext
from operators.errors import (
    InvalidWalletId,
    SelfPayment,
    UnknownOperator,
    UnknownWallet,
    WrongOperator,
)
from operators.models import Order


@dataclass(slots=True)
class WalletState:
    """What judging a payment needs of a wallet (duck-types `operators.models.Wallet`)."""

    id: str
    account_id: int
    wallet_class: int
    status: str
    customer_id: int
    deposit_account_id: int
    spent_day: date | None
    spent_day_total: int
    spent_year: int | None
    spent_year_total: int


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
    previous: Order | None = field(default=None, repr=False)

    @property
    def code(self) -> str | None:
        return self.error.code if self.error is not None else None


WALLET_STATE_SQL = (
    "SELECT w.id, w.account_id, w.wallet_class, w.status, w.customer_id, "
    "c.deposit_account_id, w.spent_day, w.spent_day_total, w.spent_year, "
    "w.spent_year_total FROM wallets w JOIN customers c ON c.id = w.customer_id "
    "WHERE w.id = ANY(CAST(%(ids)s AS text[]))"
)


def load_wallet_states(session: Session, wallet_ids: Sequence[str]) -> dict[str, WalletState]:
    if not wallet_ids:
        return {}
    rows = fetch_rows(session, WALLET_STATE_SQL, {"ids": text_array(list(wallet_ids))})
    return {r[0]: WalletState(*r) for r in rows}


def wallet_accounts(
    session: Session, wallet_ids: Sequence[str], *, with_deposits: bool
) -> set[int]:
    """The ledger accounts of these wallets (and of their holders' deposits)."""
    if not wallet_ids:
        return set()
    if with_deposits:
        rows = session.execute(
            text(
                "SELECT w.account_id, c.deposit_account_id FROM wallets w JOIN customers c "
                "ON c.id = w.customer_id WHERE w.id = ANY(CAST(:ids AS text[]))"
            ),
            {"ids": text_array(list(wallet_ids))},
        )
        return {a for row in rows for a in row}
    return set(
        session.execute(
            text("SELECT account_id FROM wallets WHERE id = ANY(CAST(:ids AS text[]))"),
            {"ids": text_array(list(wallet_ids))},
        ).scalars()
    )


def pay_many(
    session: Session,
    ctx: OperatorContext,
    instructions: Sequence[Instruction],
    *,
    now: datetime | None = None,
) -> list[Outcome]:
    """Judge and post `instructions` in order, in the caller's transaction; one outcome each."""
    now = now or ctx.now()
    outcomes: list[Outcome | None] = [None] * len(instructions)
    wanted: set[str] = set()
    cross_any = False
    known_peers: dict[str, bool] = {}
    valid_ids: dict[str, bool] = {}
    for i, ins in enumerate(instructions):
        refusal = _static_refusal(ctx, ins, known_peers, valid_ids)
        if refusal is not None:
            outcomes[i] = Outcome(ok=False, error=refusal)
            continue
        wanted.add(ins.payer)
        if routing_code(ins.payee) == ctx.code:
            wanted.add(ins.payee)
        else:
            cross_any = True

    sweeping = ctx.policy.overflow == "sweep"
    to_lock = wallet_accounts(session, sorted(wanted), with_deposits=sweeping)
    if cross_any:
        to_lock.add(ctx.account("in_transit_out"))
    if sweeping:
        to_lock |= {ctx.account("vault_float"), ctx.account("deposits_contra")}
    balances = ledger.lock_accounts(session, to_lock)
    wallets = load_wallet_states(session, sorted(wanted))  # class, status, counters as of the lock
    previous = _previous_orders(session, instructions)

    order_ids = iter(time_ordered_uuids(len(instructions)))
    entries: list[ledger.Entry] = []
    payment_entry_index: list[int] = []  # index into entries of each accepted payment
    accepted: list[tuple[int, uuid.UUID, WalletState, WalletState | None, datetime]] = []
    seen: set[tuple[str, str]] = set()
    dirty: dict[str, WalletState] = {}
    in_transit = ctx.accounts.get("in_transit_out", 0)
    days = _LocalDays(ctx.timezone)
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
                service.check_replay(earlier, ins.order_hash or "")
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
            service.require_active(payer, "payer wallet")  # type: ignore[arg-type]
            at = ins.at or now
            day_total, year_total, today, year = _limits(ctx, days, payer, ins.amount, at)
            if balances[payer.account_id] < ins.amount:
                raise InsufficientFunds(
                    f"payer balance {balances[payer.account_id]} does not cover {ins.amount}"
                )
            overflow = 0
            if payee is not None:
                service.require_active(payee, "payee wallet")  # type: ignore[arg-type]
                overflow = service._overflow(
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
        credit = in_transit if payee is None else payee.account_id
        balances[payer.account_id] -= ins.amount
        balances[credit] = balances.get(credit, 0) + ins.amount
        payment_entry_index.append(len(entries))
        entries.append(
            (
                "payment_out" if cross else "payment",
                str(order_id),
                [(payer.account_id, -ins.amount), (credit, ins.amount)],
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
                    str(order_id),
                    [
                        (payee.account_id, -overflow),
                        (ctx.account("vault_float"), overflow),
                        (ctx.account("deposits_contra"), -overflow),
                        (payee.deposit_account_id, overflow),
                    ],
                )
            )
        accepted.append((i, order_id, payer, payee, at))
        outcomes[i] = Outcome(
            ok=True,
            order_id=order_id,
            status="pending_settlement" if cross else "completed",
            cross=cross,
        )

    if accepted:
        entry_ids = ledger.post_many(session, entries, at=now)
        _insert_orders(
            session,
            ctx,
            instructions,
            accepted,
            [entry_ids[k] for k in payment_entry_index],
        )
        _update_counters(session, list(dirty.values()))
        _queue_settlements(session, ctx, instructions, accepted)
        aml.on_payments(
            session,
            ctx,
            [
                (payer, instructions[i].payee, instructions[i].amount, payee)
                for i, _, payer, payee, _ in accepted
            ],
            now=now,
        )
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
    day_total, year_total = service.check_outgoing_limits(
        ctx,
        payer,  # type: ignore[arg-type]
        amount,
        today=today,
        year=year,
    )
    return day_total, year_total, today, year


def _previous_orders(
    session: Session, instructions: Sequence[Instruction]
) -> dict[tuple[str, str], Order]:
    """Orders already stored under the signed instructions' nonces (replays)."""
    signed = [(i.payer, i.nonce) for i in instructions if i.signature is not None]
    if not signed:
        return {}
    rows = (
        session.query(Order)
        .from_statement(
            text(
                "SELECT o.* FROM orders o JOIN unnest(CAST(:w AS text[]), CAST(:n AS text[])) "
                "AS k(wallet_id, nonce) ON o.wallet_id = k.wallet_id AND o.nonce = k.nonce"
            )
        )
        .params(w=[w for w, _ in signed], n=[n for _, n in signed])
        .all()
    )
    return {(o.wallet_id, o.nonce): o for o in rows}


def _insert_orders(
    session: Session,
    ctx: OperatorContext,
    instructions: Sequence[Instruction],
    accepted: Sequence[tuple[int, uuid.UUID, WalletState, WalletState | None, datetime]],
    entry_ids: Sequence[int],
) -> None:
    """One INSERT for the batch's orders. Signed orders keep their body, signature and hash;
    the engine's simulated ones have none of the three."""
    ids: list[uuid.UUID] = []
    wallets: list[str] = []
    nonces: list[str] = []
    amounts: list[int] = []
    payees: list[str] = []
    statuses: list[str] = []
    ats: list[str] = []
    placed: list[Instruction] = []
    iso: dict[datetime, str] = {}
    for i, order_id, _, payee, at in accepted:  # one pass: a batch has thousands of rows
        ins = instructions[i]
        ids.append(order_id)
        wallets.append(ins.payer)
        nonces.append(ins.nonce)
        amounts.append(ins.amount)
        payees.append(ins.payee)
        statuses.append("completed" if payee is not None else "pending_settlement")
        stamp = iso.get(at)
        if stamp is None:
            stamp = iso[at] = at.isoformat()
        ats.append(stamp)
        placed.append(ins)
    signed = any(ins.signature is not None for ins in placed)
    session.execute(
        text(
            "INSERT INTO orders (id, wallet_id, nonce, kind, amount, counterparty, body, "
            "signature, order_hash, status, entry_id, created_at, updated_at) "
            "SELECT o.id, o.wallet_id, o.nonce, 'payment', o.amount, o.payee, "
            "NULLIF(CAST(:bodies AS jsonb) -> (o.n - 1)::int, 'null'::jsonb), "
            "o.signature, o.order_hash, o.status, o.entry_id, o.at, o.at "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:wallets AS text[]), "
            "CAST(:nonces AS text[]), CAST(:amounts AS bigint[]), CAST(:payees AS text[]), "
            "CAST(:signatures AS text[]), CAST(:hashes AS text[]), "
            "CAST(:statuses AS text[]), CAST(:entries AS bigint[]), "
            "CAST(:ats AS timestamptz[])) WITH ORDINALITY AS o(id, wallet_id, nonce, amount, "
            "payee, signature, order_hash, status, entry_id, at, n)"
        ),
        {
            "ids": any_array(ids),
            "wallets": text_array(wallets),
            "nonces": text_array(nonces),
            "amounts": int_array(amounts),
            "payees": text_array(payees),
            "bodies": json.dumps([ins.body for ins in placed]) if signed else "[]",
            "signatures": nullable_text_array([ins.signature for ins in placed]),
            "hashes": nullable_text_array([ins.order_hash for ins in placed]),
            "statuses": text_array(statuses),
            "entries": int_array(entry_ids),
            "ats": text_array(ats),
        },
    )


def _update_counters(session: Session, wallets: Sequence[WalletState]) -> None:
    if not wallets:
        return
    session.execute(
        text(
            "UPDATE wallets w SET spent_day = v.d, spent_day_total = v.dt, spent_year = v.y, "
            "spent_year_total = v.yt FROM unnest(CAST(:ids AS text[]), CAST(:d AS date[]), "
            "CAST(:dt AS bigint[]), CAST(:y AS int[]), CAST(:yt AS bigint[])) "
            "AS v(id, d, dt, y, yt) WHERE w.id = v.id"
        ),
        {
            "ids": text_array([w.id for w in wallets]),
            "d": any_array([w.spent_day for w in wallets]),
            "dt": int_array(w.spent_day_total for w in wallets),
            "y": any_array([w.spent_year for w in wallets]),
            "yt": int_array(w.spent_year_total for w in wallets),
        },
    )


def _queue_settlements(
    session: Session,
    ctx: OperatorContext,
    instructions: Sequence[Instruction],
    accepted: Sequence[tuple[int, uuid.UUID, WalletState, WalletState | None, datetime]],
) -> None:
    cross = [(i, order_id) for i, order_id, _, payee, _ in accepted if payee is None]
    if not cross:
        return
    if ctx.settlement_mode == "net":
        from operators import netting

        netting.queue_net_items(
            session,
            ctx,
            [
                {
                    "order_id": order_id,
                    "payee_wallet": instructions[i].payee,
                    "payer_alias": ctx.payer_alias(instructions[i].payer, instructions[i].payee),
                    "amount": instructions[i].amount,
                }
                for i, order_id in cross
            ],
        )
        return
    from operators import rtgs  # batched gross settlement: one job per payee operator

    rtgs.queue_payments(
        session,
        ctx,
        [
            (
                order_id,
                Order(
                    wallet_id=instructions[i].payer,
                    counterparty=instructions[i].payee,
                    amount=instructions[i].amount,
                ),
            )
            for i, order_id in cross
        ],
    )
