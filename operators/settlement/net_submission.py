"""Deferred net settlement, steps 1 and 2 (see `operators.settlement.netting`): a cross-operator
payment queued as an open net item, and items handed to the central bank in submissions; a
refused submission refunds its payers."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import routing_code
from cbdc.netting import submission_digest
from cbdc.sqlarrays import any_array, int_array, text_array
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument
from operators.models import Order, OutboxJob
from operators.settlement import refunds
from operators.wallets import repository as wallet_repo

SUBMISSION_ITEMS = 5000  # items per submission (the central bank takes up to 10,000)


# ------------------------------------------------------------------ 1. queue


def queue_net_payment(session: Session, ctx: OperatorContext, order: Order) -> None:
    """A cross-operator payment just posted (payer -X, in_transit_out +X): wait for netting."""
    payee = order.counterparty or ""
    queue_net_items(
        session,
        ctx,
        [
            {
                "order_id": order.id,
                "payee_wallet": payee,
                "payer_alias": ctx.payer_alias(order.wallet_id, payee),
                "amount": order.amount,
            }
        ],
    )


def queue_net_items(session: Session, ctx: OperatorContext, items: list[dict[str, Any]]) -> int:
    """Many at once, in ONE INSERT: items with keys order_id, payee_wallet, payer_alias, amount
    (and optionally created_at; default: the context's clock). Returns how many."""
    if not items:
        return 0
    now = ctx.now()
    session.execute(
        text(
            "INSERT INTO net_items (order_id, peer, payee_wallet, payer_alias, amount, "
            "created_at) SELECT * FROM unnest(CAST(:orders AS uuid[]), CAST(:peers AS text[]), "
            "CAST(:wallets AS text[]), CAST(:aliases AS text[]), CAST(:amounts AS bigint[]), "
            "CAST(:ats AS timestamptz[]))"
        ),
        {
            "orders": any_array([_as_uuid(i["order_id"]) for i in items]),
            "peers": text_array([routing_code(str(i["payee_wallet"])) for i in items]),
            "wallets": text_array([str(i["payee_wallet"]) for i in items]),
            "aliases": text_array([str(i["payer_alias"]) for i in items]),
            "amounts": int_array(int(i["amount"]) for i in items),
            "ats": text_array([(i.get("created_at") or now).isoformat() for i in items]),
        },
    )
    return len(items)


def _as_uuid(value: Any) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


# ------------------------------------------------------------------ 2. submit


def create_submissions(
    session: Session, ctx: OperatorContext, *, now: datetime, force: bool = False
) -> list[str]:
    """Group the open items of every peer that is due (oldest item at least
    `net_interval_seconds` old, or `net_max_items` waiting, or `force`) into submissions and
    queue a `net_submit` job for each. Returns the jobs' references."""
    cutoff = now - timedelta(seconds=ctx.net_interval_seconds)
    peers = session.execute(
        text(
            "SELECT peer, count(*) AS n, min(created_at) AS oldest FROM net_items "
            "WHERE status = 'open' GROUP BY peer ORDER BY peer"
        )
    ).all()
    references = []
    for peer in peers:
        if not (force or peer.n >= ctx.net_max_items or peer.oldest <= cutoff):
            continue
        while True:
            submission_id = uuid.uuid4()
            amounts = (
                session.execute(
                    text(
                        "UPDATE net_items SET status = 'submitted', submission_id = :s "
                        "WHERE id IN (SELECT id FROM net_items WHERE status = 'open' "
                        "AND peer = :p ORDER BY id LIMIT :n FOR UPDATE SKIP LOCKED) "
                        "RETURNING amount"
                    ),
                    {"s": submission_id, "p": peer.peer, "n": SUBMISSION_ITEMS},
                )
                .scalars()
                .all()
            )
            if not amounts:
                break
            reference = f"net-submit:{submission_id}"
            repo.enqueue(
                session,
                now=now,
                kind="net_submit",
                reference=reference,
                payload={
                    "submission_id": str(submission_id),
                    "peer": peer.peer,
                    "items": len(amounts),
                    "gross": sum(int(a) for a in amounts),
                },
            )
            references.append(reference)
            if len(amounts) < SUBMISSION_ITEMS:
                break
    return references


def submission_body(session: Session, *, job: OutboxJob) -> dict[str, Any] | None:
    """What `net_submit` sends (the same every time: the items in id order); None when the
    job is no longer pending."""
    if repo.job_status(session, job.id) != "pending":
        return None
    rows = session.execute(
        text(
            "SELECT order_id, payee_wallet, payer_alias, amount FROM net_items "
            "WHERE submission_id = :s ORDER BY id"
        ),
        {"s": uuid.UUID(job.payload["submission_id"])},
    ).all()
    items = [
        {
            "reference": str(r.order_id),
            "payee_wallet": r.payee_wallet,
            "payer_alias": r.payer_alias,
            "amount": int(r.amount),
        }
        for r in rows
    ]
    return {
        "submission_id": job.payload["submission_id"],
        "payee_operator": job.payload["peer"],
        "gross": sum(i["amount"] for i in items),
        "items": items,
    }


def submission_accepted(
    session: Session,
    *,
    job: OutboxJob,
    body: dict[str, Any],
    answer: dict[str, Any],
    now: datetime,
) -> None:
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    if (
        answer.get("submission_id") != body["submission_id"]
        or answer.get("gross") != body["gross"]
        or answer.get("digest") != submission_digest(body["items"])
    ):
        raise BadCentralBankDocument("the clearing house's answer does not match the submission")
    repo.finish_job(session, job.id, now=now)


def refund_submission(
    session: Session, ctx: OperatorContext, *, job: OutboxJob, reason: str
) -> None:
    """The clearing house refused the submission for good: every payer gets its money back
    (in_transit_out -X, payer +X), as when the central bank refuses an RTGS settlement."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    rows = session.execute(
        text(
            "UPDATE net_items n SET status = 'refunded' FROM orders o "
            "WHERE n.submission_id = :s AND n.status = 'submitted' AND o.id = n.order_id "
            "RETURNING n.order_id, n.amount, o.wallet_id"
        ),
        {"s": uuid.UUID(job.payload["submission_id"])},
    ).all()
    if rows:
        accounts = wallet_repo.wallet_accounts(session, {r.wallet_id for r in rows})
        source = ctx.account("in_transit_out")
        orders = {r.order_id: wallet_repo.get_order(session, r.order_id) for r in rows}
        extra = refunds.extra_accounts(session, ctx, [o for o in orders.values() if o is not None])
        ledger.lock_accounts(session, [source, *accounts.values(), *extra])
        entries: list[ledger.Entry] = []
        for r in rows:
            order = orders[r.order_id]
            assert order is not None
            legs = refunds.refund_legs(
                session, ctx, order, source, accounts[r.wallet_id], int(r.amount)
            )
            entries.append(("payment_refund", str(r.order_id), legs))
        ledger.post_many(session, entries, at=ctx.now())
        from operators.wallets.limits import unspend

        for r in rows:
            wallet_repo.set_order_status(
                session, r.order_id, "failed", failure=reason, now=ctx.now()
            )
            order = orders[r.order_id]
            if order is not None:
                unspend(session, ctx, order=order)
    repo.finish_job(session, job.id, now=ctx.now(), status="failed", error=reason)
