"""Batched gross settlement, the payer's side: cross-operator RTGS payments settle at the
central bank in batches, each still gross and final with its own signed receipt.

  1. The payments' transaction (`operators.payments.batch`) writes ONE outbox job `rtgs_batch` per
     micro-batch and payee operator, naming its payments (they are `pending_settlement`,
     their money in `in_transit_out`). Crash safety is the outbox's: the job commits with them.
  2. A settler (`RtgsSettler`, threads of this process, woken by each such payment; the
     outbox worker runs the same code for whatever is left) gathers every ready `rtgs_batch`
     job of a peer into one `rtgs_settle` job, in one transaction that also reserves vault
     tokens for the total (the gathered jobs are done from then on: the settle job carries
     their payments).
  3. `rtgs_settle`: ONE signed call to the central bank (`POST /v1/settlements/batch`,
     idempotent on the batch reference, and per item on `pay:<order id>`), then one
     transaction applies the answer: inputs gone, change kept, per settled item a
     `settlement_out` entry (in_transit_out -X, tokens_held +X) and the order `settled`; per
     refused item a refund to the payer (as `settlement.refund_settlement`); an
     `rtgs_deliver` job.
  4. `rtgs_deliver` (`RtgsSettler.deliver_job` in operators/settlement/rtgs_settler.py): ONE signed
     call to the payee's operator (`POST /v1/interop/settlements/batch`), which credits every
     item in one transaction; the credited orders become `delivered`.

A crash between steps leaves a pending job that runs again with the same references, so the
central bank answers the same batch again (never settling an item twice) and each step applies
once (it locks its job and checks it is still pending). `CBDC_FAULT_POINT` kills the process
at a named point, for the crash tests.
"""

from __future__ import annotations

import logging
import os
import signal
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import routing_code
from cbdc.http import RemoteError
from cbdc.sqlarrays import any_array, int_array
from cbdc.tokens import verify_document
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument, TokensUnavailable
from operators.models import Order, OutboxJob
from operators.settlement import refunds
from operators.vault import repository as vault_repo
from operators.vault.service import reserve_for, verified_tokens
from operators.wallets import repository as wallet_repo

if TYPE_CHECKING:
    from operators.jobs import JobRunner

log = logging.getLogger(__name__)
QUEUED = "rtgs_batch"  # one per micro-batch and payee operator, written with the payments
SETTLE = "rtgs_settle"  # gathered payments of one peer: tokens reserved, central bank call
DELIVER = "rtgs_deliver"  # a settled batch on its way to the payee's operator
MAX_ITEMS = 1000  # per settlement batch (the central bank's limit)
MAX_JOBS = 500  # queued jobs gathered at once
LEASE_SECONDS = 30
LEASE_MARGIN = 10  # seconds of the lease not counted on (clocks, slow commits)
FAULT_POINT = "CBDC_FAULT_POINT"
# Payments queued by this process: its settler takes these at once (its requests wait for
# them); they are due for the outbox worker (of any process) only ORPHAN_SECONDS later, when
# this process failed to settle them (an outage, a crash).
PROCESS = str(uuid.uuid4())
ORPHAN_SECONDS = 1.0

# An order's outcome, as the settler learns it: (status, failure).
Outcome = tuple[str, str | None]


def fault(point: str) -> None:
    """Die here (SIGKILL, no cleanup) if the environment names this point: crash tests."""
    if os.environ.get(FAULT_POINT) == point:
        log.error("fault injection: killing the process at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------ 1. queue


def queue_payments(
    session: Session, ctx: OperatorContext, payments: Sequence[tuple[uuid.UUID, Order]]
) -> None:
    """In the payments' transaction: one `rtgs_batch` job per payee operator for `payments`
    ((order id, order with wallet_id, counterparty and amount))."""
    by_peer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for order_id, order in payments:
        payee = order.counterparty or ""
        by_peer[routing_code(payee)].append(
            {
                "order_id": str(order_id),
                "amount": int(order.amount),
                "payee_wallet": payee,
                "payer_alias": ctx.payer_alias(order.wallet_id, payee),
            }
        )
    for peer, items in by_peer.items():
        # Due for the outbox worker only once orphaned: this process's settler takes it now.
        session.execute(
            text(
                "INSERT INTO outbox (kind, reference, payload, next_attempt_at) "
                "VALUES (:k, :r, CAST(:p AS jsonb), :now + make_interval(secs => :orphan)) "
                "ON CONFLICT (kind, reference) DO NOTHING"
            ),
            {
                "k": QUEUED,
                "r": f"rtgsq:{items[0]['order_id']}",
                "p": repo._json({"payee_operator": peer, "items": items, "owner": PROCESS}),
                "orphan": ORPHAN_SECONDS,
                "now": ctx.now(),
            },
        )


# ------------------------------------------------------------------ 2. gather


def gather(
    session: Session, *, now: datetime, include: Sequence[int] = (), own: bool = False
) -> list[OutboxJob]:
    """Turn the ready `rtgs_batch` jobs (and those named in `include`, claimed by the caller)
    into `rtgs_settle` jobs, one per peer (at most MAX_ITEMS payments each), with vault tokens
    reserved for each; return the new jobs (leased to the caller, who runs them now).
    `own`: only this process's jobs, and others' orphans. `now`: the context's clock."""
    rows = session.execute(
        text(
            "SELECT id, payload FROM outbox WHERE kind = :k AND status = 'pending' "
            "AND (next_attempt_at <= :now OR id = ANY(CAST(:mine AS bigint[])) "
            "OR (:own AND payload ->> 'owner' = :me)) "
            "ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED"
        ),
        {
            "k": QUEUED,
            "mine": int_array(include),
            "n": MAX_JOBS,
            "own": own,
            "me": PROCESS,
            "now": now,
        },
    ).all()
    by_peer: dict[str, list[tuple[int, list[dict[str, Any]]]]] = defaultdict(list)
    for job_id, payload in rows:
        by_peer[payload["payee_operator"]].append((int(job_id), payload["items"]))
    created: list[OutboxJob] = []
    for peer, jobs in sorted(by_peer.items()):
        while jobs:
            taken: list[int] = []
            items: list[Any] = []
            while jobs and (not items or len(items) + len(jobs[0][1]) <= MAX_ITEMS):
                job_id, job_items = jobs.pop(0)
                taken.append(job_id)
                items += job_items
            reference = f"rtgs:{uuid.uuid4()}"
            total = sum(int(i["amount"]) for i in items)
            try:
                serials = reserve_for(session, amount=total, reference=reference)
            except TokensUnavailable as exc:  # others hold the tokens now: try again shortly
                session.execute(
                    text(
                        "UPDATE outbox SET next_attempt_at = :now + interval '50 milliseconds', "
                        "last_error = :e WHERE id = ANY(CAST(:ids AS bigint[]))"
                    ),
                    {"ids": int_array(taken + [j for j, _ in jobs]), "e": str(exc), "now": now},
                )
                break
            session.execute(
                text(
                    "UPDATE outbox SET status = 'done', done_at = :now, last_error = :r "
                    "WHERE id = ANY(CAST(:ids AS bigint[]))"
                ),
                {"ids": int_array(taken), "r": f"gathered into {reference}", "now": now},
            )
            created.append(
                _enqueue_leased(
                    session,
                    now=now,
                    kind=SETTLE,
                    reference=reference,
                    payload={
                        "payee_operator": peer,
                        "amount": total,
                        "serials": serials,
                        "items": items,
                    },
                )
            )
    return created


def _enqueue_leased(
    session: Session, *, now: datetime, kind: str, reference: str, payload: dict[str, Any]
) -> OutboxJob:
    """A new outbox job that the caller runs at once: not due for the worker before the lease
    runs out (if the caller dies, the worker takes it then). Returned detached (no read)."""
    fresh_until = now + timedelta(seconds=LEASE_SECONDS - LEASE_MARGIN)
    job_id = int(
        session.execute(
            text(
                "INSERT INTO outbox (kind, reference, payload, attempts, next_attempt_at) "
                "VALUES (:k, :r, CAST(:p AS jsonb), 1, :now + make_interval(secs => :lease)) "
                "RETURNING id"
            ),
            {
                "k": kind,
                "r": reference,
                "p": repo._json(payload),
                "lease": LEASE_SECONDS,
                "now": now,
            },
        ).scalar_one()
    )
    job = OutboxJob(
        id=job_id, kind=kind, reference=reference, payload=payload, status="pending", attempts=1
    )
    job.fresh_until = fresh_until  # type: ignore[attr-defined]
    return job


# ------------------------------------------------------------------ 3. settle


def settle(
    runner: JobRunner,
    job: OutboxJob,
    *,
    early: Callable[[list[dict[str, Any]]], None] | None = None,
) -> tuple[dict[str, Outcome], OutboxJob | None]:
    """Run a claimed `rtgs_settle` job (under its advisory lock): the central bank call and the
    application of its answer. Returns the orders' outcomes and the `rtgs_deliver` job.
    Raises `RemoteUnavailable` (the caller retries later); refusals are applied here.
    `early`: given the delivery items of the settled payments once the answer has verified,
    before it is applied (the settler starts their delivery then: see `RtgsSettler`)."""
    ctx = runner.ctx
    payload = job.payload
    serials = payload.get("serials") or runner.tx(lambda s: _reserved(s, job))
    if serials is None:
        return {}, None
    items = [
        {
            "reference": f"pay:{i['order_id']}",
            "payee_operator": payload["payee_operator"],
            "amount": int(i["amount"]),
        }
        for i in payload["items"]
    ]
    try:
        answer = ctx.central_bank.settle_batch(
            reference=job.reference, serials=serials, items=items
        )
    except RemoteError as exc:
        from operators.settlement.delivery import VAULT_DISAGREES

        if exc.code in VAULT_DISAGREES:
            log.error("settlement batch %s: vault disagrees with registry: %s", job.reference, exc)
            error = str(exc)
            runner.tx(
                lambda s: repo.finish_job(s, job.id, now=ctx.now(), status="failed", error=error)
            )
            return {}, None
        code = exc.code
        outcomes = runner.tx(lambda s: refund_all(s, ctx, job=job, reason=code))
        return outcomes, None
    fault("rtgs_after_settle_call")
    checked = check_answer(ctx, job, answer)
    if early is not None and checked[2]:
        early([delivery_item(item, a) for item, a in checked[2]])
    return runner.tx(lambda s: apply(s, ctx, job=job, answer=answer, checked=checked))


# The verified answer: (batch receipt document, change tokens, settled (item, answer) pairs,
# refused (item, code) pairs).
Checked = tuple[
    dict[str, Any],
    list[dict[str, Any]],
    list[tuple[dict[str, Any], dict[str, Any]]],
    list[tuple[dict[str, Any], str]],
]


def check_answer(ctx: OperatorContext, job: OutboxJob, answer: dict[str, Any]) -> Checked:
    """Verify the central bank's answer to the batch (receipt, change, every item's receipt)
    against the job; raise `BadCentralBankDocument` if anything does not verify or match."""
    payload = job.payload
    receipt = answer["receipt"]
    document = receipt.get("document", {})
    if (
        not verify_document(ctx.central_bank_public_key, receipt)
        or document.get("kind") != "settlement_batch"
        or document.get("reference") != job.reference
        or document.get("payer_operator") != ctx.code
    ):
        raise BadCentralBankDocument("batch receipt does not verify or does not match")
    change = verified_tokens(ctx, answer.get("change", []))
    if sorted(t["serial"] for t in change) != sorted(document.get("change_tokens", [])):
        raise BadCentralBankDocument("the change is not the one the batch receipt names")
    answers = {a["reference"]: a for a in answer["items"]}
    peer = payload["payee_operator"]
    settled: list[tuple[dict[str, Any], dict[str, Any]]] = []
    refused: list[tuple[dict[str, Any], str]] = []
    for item in payload["items"]:
        a = answers.get(f"pay:{item['order_id']}")
        if a is None:
            raise BadCentralBankDocument(f"no answer for payment {item['order_id']}")
        if a["status"] == "settled":
            _check_item(ctx, a, item, peer)
            settled.append((item, a))
        else:
            refused.append((item, str(a.get("code") or "settlement_refused")))
    return document, change, settled, refused


def delivery_item(item: dict[str, Any], a: dict[str, Any]) -> dict[str, Any]:
    """A settled payment as the `rtgs_deliver` job carries it to the payee's operator."""
    return {
        "order_id": item["order_id"],
        "body": {
            "kind": "payment",
            "reference": item["order_id"],
            "payee_wallet": item["payee_wallet"],
            "payer_alias": item["payer_alias"],
            "reason": None,
            "receipt": a["receipt"],
            "payee_tokens": a["payee_tokens"],
        },
    }


def _reserved(session: Session, job: OutboxJob) -> list[str] | None:
    """The tokens reserved for the batch (reserved again if a refusal released them: the
    job is then finished and this returns None)."""
    if repo.job_status(session, job.id) != "pending":
        return None
    return reserve_for(session, amount=int(job.payload["amount"]), reference=job.reference)


def apply(
    session: Session,
    ctx: OperatorContext,
    *,
    job: OutboxJob,
    answer: dict[str, Any],
    checked: Checked | None = None,
) -> tuple[dict[str, Outcome], OutboxJob | None]:
    """Apply the central bank's answer to a batch, once (the job is locked and still pending)."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return {}, None
    payload = locked.payload
    document, change, settled, refused = checked or check_answer(ctx, job, answer)
    peer = payload["payee_operator"]
    vault_repo.tokens_gone(session, document["inputs"], ctx.now())
    vault_repo.add_vault_tokens(session, change, via=f"settlement-change:{document['batch_id']}")
    orders = _lock_orders(session, [uuid.UUID(i["order_id"]) for i in payload["items"]])
    refusing = [orders[uuid.UUID(i["order_id"])] for i, _ in refused]
    wallets = _refund_accounts(session, refusing)
    in_transit, held = ctx.account("in_transit_out"), ctx.account("tokens_held")
    extra = refunds.extra_accounts(session, ctx, refusing)
    ledger.lock_accounts(session, {in_transit, held, *wallets.values(), *extra})
    entries: list[ledger.Entry] = []
    outcomes: dict[str, Outcome] = {}
    settled_ids: list[uuid.UUID] = []
    for item, a in settled:
        order = orders.get(uuid.UUID(item["order_id"]))
        amount = int(item["amount"])
        if order is None or order.status != "pending_settlement":
            continue  # applied before (or not ours): never twice
        entries.append(
            ("settlement_out", a["settlement_id"], [(in_transit, -amount), (held, amount)])
        )
        settled_ids.append(order.id)
        outcomes[item["order_id"]] = ("settled", None)
    refunded: list[tuple[Order, str]] = []
    for item, code in refused:
        order = orders.get(uuid.UUID(item["order_id"]))
        amount = int(item["amount"])
        if order is None or order.status != "pending_settlement":
            continue
        legs = refunds.refund_legs(
            session, ctx, order, in_transit, wallets[order.wallet_id], amount
        )
        entries.append(("payment_refund", item["order_id"], legs))
        refunded.append((order, code))
        outcomes[item["order_id"]] = ("failed", code)
    ledger.post_many(session, entries, at=ctx.now())
    _set_status(session, settled_ids, "settled", now=ctx.now())
    if refunded:
        from operators.wallets.limits import unspend

        for order, code in refunded:
            wallet_repo.set_order_status(session, order.id, "failed", failure=code, now=ctx.now())
            unspend(session, ctx, order=order)
    deliver = None
    delivered = [(item, a) for item, a in settled if item["order_id"] in outcomes]
    if delivered:
        deliver = _enqueue_leased(
            session,
            now=ctx.now(),
            kind=DELIVER,
            reference=job.reference,
            payload={
                "payee_operator": peer,
                "items": [delivery_item(item, a) for item, a in delivered],
            },
        )
    repo.finish_job(session, job.id, now=ctx.now())
    return outcomes, deliver


def _check_item(ctx: OperatorContext, a: dict[str, Any], item: dict[str, Any], peer: str) -> None:
    receipt = a["receipt"]
    document = receipt.get("document", {})
    if not verify_document(ctx.central_bank_public_key, receipt) or (
        document.get("amount") != int(item["amount"])
        or document.get("payee_operator") != peer
        or document.get("payer_operator") != ctx.code
        or document.get("reference") != f"pay:{item['order_id']}"
        or document.get("settlement_id") != a.get("settlement_id")
    ):
        raise BadCentralBankDocument("settlement receipt does not verify or does not match")


def refund_all(
    session: Session, ctx: OperatorContext, *, job: OutboxJob, reason: str
) -> dict[str, Outcome]:
    """The central bank refused the whole batch for good: release the tokens and refund every
    payment still waiting (as `settlement.refund_settlement` does for one)."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return {}
    vault_repo.release_tokens(session, job.reference)
    items = locked.payload["items"]
    orders = _lock_orders(session, [uuid.UUID(i["order_id"]) for i in items])
    waiting = [o for o in orders.values() if o.status == "pending_settlement"]
    wallets = _refund_accounts(session, waiting)
    in_transit = ctx.account("in_transit_out")
    extra = refunds.extra_accounts(session, ctx, waiting)
    ledger.lock_accounts(session, {in_transit, *wallets.values(), *extra})
    ledger.post_many(
        session,
        [
            (
                "payment_refund",
                str(o.id),
                refunds.refund_legs(session, ctx, o, in_transit, wallets[o.wallet_id]),
            )
            for o in waiting
        ],
        at=ctx.now(),
    )
    from operators.wallets.limits import unspend

    for order in waiting:
        wallet_repo.set_order_status(session, order.id, "failed", failure=reason, now=ctx.now())
        unspend(session, ctx, order=order)
    repo.finish_job(session, job.id, now=ctx.now(), status="failed", error=reason)
    return {str(o.id): ("failed", reason) for o in waiting}


# ------------------------------------------------------------------ SQL of this module


def _lock_orders(session: Session, ids: list[uuid.UUID]) -> dict[uuid.UUID, Order]:
    if not ids:
        return {}
    rows = (
        session.query(Order)
        .from_statement(
            text("SELECT * FROM orders WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE")
        )
        .params(ids=any_array(sorted(ids)))
        .populate_existing()
        .all()
    )
    return {o.id: o for o in rows}


def _refund_accounts(session: Session, orders: Sequence[Order]) -> dict[str, int]:
    if not orders:
        return {}
    return wallet_repo.wallet_accounts(session, {o.wallet_id for o in orders})


def _set_status(session: Session, ids: list[uuid.UUID], status: str, *, now: datetime) -> None:
    if ids:
        session.execute(
            text(
                "UPDATE orders SET status = :s, updated_at = :now "
                "WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"s": status, "ids": any_array(ids), "now": now},
        )
