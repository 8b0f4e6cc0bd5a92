"""Deferred net settlement at the operator (settlement mode "net").

Payer's operator A, payee's operator B, the central bank CB as clearing house:

  1. A, in the payment's transaction: payer wallet -X, in_transit_out +X (as under RTGS), and a
     `net_items` row (open) instead of an RTGS `settle` job.
  2. submit: when a peer's oldest open item is `net_interval_seconds` old, or
     `net_max_items` wait, A marks them submitted under a new submission id and queues an
     outbox job `net_submit` that hands them to the CB (idempotent on the submission id). A
     refusal refunds the payers (`payment_refund`), as a refused RTGS settlement does.
  3. the CB closes a clearing cycle (central_bank/clearing/): per operator pair the gross
     both ways and the net; the debtor D owes the creditor C the net.
  4. D pays the net (`net_pay`): vault tokens reserved (best fit, as RTGS), CB spends them,
     mints the net to C and the change to D, signs the pair-settlement receipt. If the vault
     cannot cover it, D obtains issuance at once: a liquidity shortfall, recorded.
  5. each party applies the settled pair (`net_apply`) in ONE transaction: verify the receipt,
     the tokens and the digests of the items addressed to it; tokens (D: inputs gone, change
     in; C: the net in); in_transit_out -G_out, tokens_held +G_out; per incoming payment
     tokens_held -x, payee +x (or returns_pending +x, sent back by RTGS like any return); its
     own items settled, their orders `settled`. Per party this sums to tokens_held +/- net.
     Then it acknowledges to the CB, naming the payments it sends back.
  6. once the peer has acknowledged, A's orders become `delivered` (except those returned).

`sync()` drives 2, 4, 5 and 6 once, deterministically: the background worker calls it every
tick while there is net work (and now and then otherwise), an in-process simulator calls it
with its own clock. Every step is idempotent: outbox jobs with references (`net-submit:<id>`,
`net:<obligation id>`), the CB's idempotency, and the local `net_obligations` row that says
how far an obligation got.
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.http import RemoteError, RemoteUnavailable
from cbdc.netting import direction_digest, submission_digest
from cbdc.sqlarrays import any_array, int_array, nullable_text_array, text_array
from cbdc.tokens import verify_document
from operators import repository as repo
from operators.compliance import aml
from operators.context import OperatorContext
from operators.models import Order, OutboxJob
from operators.settlement import delivery as settlement
from operators.vault import service as vault
from operators.vault.service import BadCentralBankDocument
from operators.wallets import states

if TYPE_CHECKING:
    from operators.jobs import JobRunner

log = logging.getLogger(__name__)
SUBMISSION_ITEMS = 5000  # items per submission (the central bank takes up to 10,000)
ITEM_NAMESPACE = uuid.UUID("6b1f0c2e-7a44-4d0e-9a51-1f3e2b7c9d10")  # ids of received items


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
    session: Session, *, job: OutboxJob, body: dict[str, Any], answer: dict[str, Any]
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
    repo.finish_job(session, job.id)


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
        accounts = repo.wallet_accounts(session, {r.wallet_id for r in rows})
        source = ctx.account("in_transit_out")
        ledger.lock_accounts(session, [source, *accounts.values()])
        ledger.post_many(
            session,
            [
                (
                    "payment_refund",
                    str(r.order_id),
                    [(source, -int(r.amount)), (accounts[r.wallet_id], int(r.amount))],
                )
                for r in rows
            ],
            at=ctx.now(),
        )
        from operators.wallets.limits import unspend

        for r in rows:
            repo.set_order_status(session, r.order_id, "failed", failure=reason)
            order = repo.get_order(session, r.order_id)
            if order is not None:
                unspend(session, ctx, order=order)
    repo.finish_job(session, job.id, status="failed", error=reason)


# ------------------------------------------------------------------ 3. obligations seen


def note_obligations(
    session: Session, ctx: OperatorContext, obligations: Sequence[dict[str, Any]]
) -> list[str]:
    """Record the obligations the clearing house says we must act on and queue the job for
    each: `net_pay` (we owe, unpaid) or `net_apply` (settled, not applied by us). Returns the
    references (`net:<obligation id>`)."""
    references = []
    for ob in obligations:
        oid = ob["obligation_id"]
        session.execute(
            text(
                "INSERT INTO net_obligations (obligation_id, cycle_id, peer, role, net, "
                "gross_out, gross_in, items_out, items_in, created_at) VALUES (:o, :c, :p, :r, "
                ":n, :go, :gi, :io, :ii, :at) ON CONFLICT (obligation_id) DO NOTHING"
            ),
            {
                "o": uuid.UUID(oid),
                "c": ob["cycle_id"],
                "p": ob["peer"],
                "r": ob["role"],
                "n": ob["net"],
                "go": ob["gross_out"],
                "gi": ob["gross_in"],
                "io": ob["items_out"],
                "ii": ob["items_in"],
                "at": ctx.now(),
            },
        )
        reference = f"net:{oid}"
        if ob["status"] == "pending" and ob["role"] == "debtor":
            repo.enqueue(
                session,
                kind="net_pay",
                reference=reference,
                payload={"obligation_id": oid, "net": ob["net"], "creditor": ob["creditor"]},
            )
        elif ob["status"] == "settled":
            repo.enqueue(
                session, kind="net_apply", reference=reference, payload={"obligation_id": oid}
            )
        else:
            continue
        references.append(reference)
    return references


# ------------------------------------------------------------------ 4. pay (debtor)


def prepare_payment(session: Session, *, job: OutboxJob) -> list[str] | None:
    """Reserve vault tokens worth at least the net (idempotent); None if there is nothing to
    pay any more: the job finished, or the pair was paid and applied already (by a runner whose
    job record was lost), in which case the job is finished here."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return None
    status = session.execute(
        text("SELECT status FROM net_obligations WHERE obligation_id = :o"),
        {"o": uuid.UUID(job.payload["obligation_id"])},
    ).scalar()
    if status not in (None, "pending"):
        repo.finish_job(session, job.id, error=f"already {status}")
        return None
    return vault.reserve_for(session, amount=int(job.payload["net"]), reference=job.reference)


def record_shortfall(session: Session, ctx: OperatorContext, *, job: OutboxJob) -> str | None:
    """The vault's unreserved tokens cannot cover the net: a liquidity shortfall. Record it and
    queue issuance of what is missing (once per attempt); returns the issuance's reference, or
    None when the tokens exist but other jobs hold them right now (then simply wait)."""
    net = int(job.payload["net"])
    held = int(
        session.execute(
            text("SELECT coalesce(sum(amount), 0) FROM vault_tokens WHERE status = 'held'")
        ).scalar_one()
    )
    missing = net - held
    if missing <= 0:
        return None
    oid = job.payload["obligation_id"]
    prefix = f"net-liquidity:{oid}:"
    pending = session.execute(
        text(
            "SELECT reference FROM outbox WHERE kind = 'issuance' AND status = 'pending' "
            "AND starts_with(reference, :p) LIMIT 1"
        ),
        {"p": prefix},
    ).scalar()
    if pending is not None:
        return str(pending)
    session.execute(
        text("UPDATE net_obligations SET shortfall = shortfall + :m WHERE obligation_id = :o"),
        {"m": missing, "o": uuid.UUID(oid)},
    )
    log.warning("net settlement %s: liquidity shortfall of %s, requesting issuance", oid, missing)
    return vault.queue_issuance(session, missing, reference=f"{prefix}{job.attempts}")


def payment_made(
    session: Session, ctx: OperatorContext, *, job: OutboxJob, answer: dict[str, Any]
) -> None:
    """The clearing house took our tokens: note it and queue applying the pair (the tokens
    stay reserved until then, so the vault and ledger change together)."""
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    receipt = answer.get("receipt", {})
    document = receipt.get("document", {}) if isinstance(receipt, dict) else {}
    if not verify_document(ctx.central_bank_public_key, receipt) or (
        document.get("obligation_id") != job.payload["obligation_id"]
        or document.get("debtor") != ctx.code
        or document.get("net") != int(job.payload["net"])
    ):
        raise BadCentralBankDocument("pair-settlement receipt does not verify or match")
    session.execute(
        text(
            "UPDATE net_obligations SET status = 'paid', paid_at = :at, "
            "receipt = CAST(:r AS jsonb) WHERE obligation_id = :o AND status = 'pending'"
        ),
        {"at": ctx.now(), "r": json.dumps(receipt), "o": uuid.UUID(job.payload["obligation_id"])},
    )
    repo.enqueue(
        session,
        kind="net_apply",
        reference=job.reference,
        payload={"obligation_id": job.payload["obligation_id"]},
    )
    repo.finish_job(session, job.id)


def release_payment(session: Session, *, job: OutboxJob, reason: str) -> None:
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    repo.release_tokens(session, job.reference)
    repo.finish_job(session, job.id, error=reason)


# ------------------------------------------------------------------ 5. apply


def applied(session: Session, obligation_id: str) -> bool:
    status = session.execute(
        text("SELECT status FROM net_obligations WHERE obligation_id = :o"),
        {"o": uuid.UUID(obligation_id)},
    ).scalar()
    return status in ("applied", "delivered")


def fetch_settled_pair(
    ctx: OperatorContext, obligation_id: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The obligation as the clearing house shows it to us, with every item addressed to us."""
    detail = ctx.central_bank.obligation(obligation_id)
    items = list(detail.get("items", []))
    while len(items) < int(detail["items_in"]) and detail.get("items"):
        detail = ctx.central_bank.obligation(obligation_id, offset=len(items))
        items += detail.get("items", [])
    return detail, items


def apply_pair(
    session: Session,
    ctx: OperatorContext,
    *,
    job: OutboxJob | None,
    detail: dict[str, Any],
    items: list[dict[str, Any]],
) -> bool:
    """Apply a settled pair settlement in this transaction, once. Returns False if it was
    applied already (or the job finished meanwhile)."""
    if job is not None:
        locked = repo.lock_job(session, job.id)
        if locked is None or locked.status != "pending":
            return False
    oid = detail["obligation_id"]
    row = session.execute(
        text("SELECT status FROM net_obligations WHERE obligation_id = :o FOR UPDATE"),
        {"o": uuid.UUID(oid)},
    ).first()
    if row is not None and row.status in ("applied", "delivered"):
        return False
    receipt = detail.get("receipt") or {}
    document = receipt.get("document", {}) if isinstance(receipt, dict) else {}
    if not verify_document(ctx.central_bank_public_key, receipt) or (
        document.get("kind") != "net_settlement"
        or document.get("obligation_id") != oid
        or ctx.code not in (document.get("operator_a"), document.get("operator_b"))
    ):
        raise BadCentralBankDocument("pair-settlement receipt does not verify or match")
    is_a = document["operator_a"] == ctx.code
    peer = document["operator_b"] if is_a else document["operator_a"]
    side, other = ("ab", "ba") if is_a else ("ba", "ab")
    gross_out, gross_in = int(document[f"gross_{side}"]), int(document[f"gross_{other}"])
    net = int(document["net"])
    role = (
        "debtor"
        if document["debtor"] == ctx.code
        else "creditor"
        if document["creditor"] == ctx.code
        else "even"
    )
    _check_incoming(document, other, items)
    tokens = vault.verified_tokens(ctx, list(detail.get("tokens", [])))
    token_sum = sum(int(t["amount"]) for t in tokens)
    serials = sorted(t["serial"] for t in tokens)
    reference = f"net:{oid}"
    now = ctx.now()
    if role == "creditor":
        if serials != sorted(document["creditor_tokens"]) or token_sum != net:
            raise BadCentralBankDocument("the tokens are not the ones the receipt names")
    elif role == "debtor":
        reserved = session.execute(
            text(
                "SELECT serial, amount FROM vault_tokens WHERE reserved_for = :r "
                "AND status = 'reserved'"
            ),
            {"r": reference},
        ).all()
        if sorted(str(t.serial) for t in reserved) != sorted(document["inputs"]) or (
            serials != sorted(document["change_tokens"])
            or token_sum != sum(int(t.amount) for t in reserved) - net
        ):
            raise BadCentralBankDocument("the receipt's inputs or change are not ours")
    elif tokens or net:
        raise BadCentralBankDocument("an even pair moves no tokens")

    # our own items: settled
    mine = session.execute(
        text(
            "UPDATE net_items SET status = 'settled', obligation_id = :o, settled_at = :at "
            "WHERE submission_id = ANY(CAST(:subs AS uuid[])) AND status = 'submitted' "
            "RETURNING order_id, amount"
        ),
        {"o": uuid.UUID(oid), "at": now, "subs": list(document[f"submissions_{side}"])},
    ).all()
    if sum(int(r.amount) for r in mine) != gross_out or len(mine) != int(document[f"items_{side}"]):
        raise BadCentralBankDocument("the receipt's gross does not match what we submitted")

    # lock every account this touches, once, in ascending order
    wanted = {i["payee_wallet"] for i in items if _ours(ctx, i["payee_wallet"])}
    system = [ctx.account(c) for c in ("tokens_held", "in_transit_out", "returns_pending")]
    sweeping = ctx.policy.overflow == "sweep"
    to_lock = set(system) | states.wallet_accounts(session, sorted(wanted), with_deposits=sweeping)
    if sweeping:
        to_lock |= {ctx.account("vault_float"), ctx.account("deposits_contra")}
    balances = ledger.lock_accounts(session, to_lock)
    payees = states.load_wallet_states(session, sorted(wanted))  # as of the lock

    held = ctx.account("tokens_held")
    entries: list[ledger.Entry] = []
    if gross_out:
        entries.append(
            (
                "settlement_out",
                reference,
                [(ctx.account("in_transit_out"), -gross_out), (held, gross_out)],
            )
        )
    inbound = []  # (settlement id, item, outcome, reason, index of its entry)
    for item in items:
        amount = int(item["amount"])
        outcome, account, reason, sweep = _target(
            ctx, item["payee_wallet"], payees, balances, amount
        )
        target = account if account is not None else ctx.account("returns_pending")
        settlement_id = _item_id(oid, item["submission_id"], item["seq"])
        inbound.append((settlement_id, item, outcome, reason, len(entries)))
        entries.append(("settlement_in", reference, [(held, -amount), (target, amount)]))
        balances[target] = balances.get(target, 0) + amount
        if sweep and account is not None:
            payee = payees[item["payee_wallet"]]
            balances[account] -= sweep
            entries.append(
                (
                    "waterfall_sweep",
                    str(settlement_id),
                    [
                        (account, -sweep),
                        (ctx.account("vault_float"), sweep),
                        (ctx.account("deposits_contra"), -sweep),
                        (payee.deposit_account_id, sweep),
                    ],
                )
            )
    entry_ids = ledger.post_many(session, entries, at=now) if entries else []

    if role == "debtor":
        repo.tokens_gone(session, list(document["inputs"]), now)
        # a payment job still pending (its record of success was lost) has nothing left to do
        repo.release_tokens(session, reference)
        session.execute(
            text(
                "UPDATE outbox SET status = 'done', done_at = now(), last_error = 'applied' "
                "WHERE kind = 'net_pay' AND reference = :r AND status = 'pending'"
            ),
            {"r": reference},
        )
    if tokens:
        repo.add_vault_tokens(session, tokens, via=f"net-settlement:{oid}")
    if inbound:
        _insert_inbound(session, peer, oid, inbound, entry_ids, now)
    if mine:
        session.execute(
            text(
                "UPDATE orders SET status = 'settled', updated_at = :at "
                "WHERE id = ANY(CAST(:ids AS uuid[])) AND status = 'pending_settlement'"
            ),
            {"at": now, "ids": any_array([r.order_id for r in mine])},
        )
    credited: dict[str, int] = defaultdict(int)
    returned: list[str] = []
    for settlement_id, item, outcome, reason, _ in inbound:
        if outcome == "credited":
            credited[item["payee_wallet"]] += int(item["amount"])
            continue
        returned.append(item["reference"])
        settlement.queue_return(session, peer, settlement_id, int(item["amount"]), item, reason)
    aml.on_receipts(session, ctx, credited)
    status = "applied" if gross_out else "delivered"  # nothing of ours to see delivered
    values = {
        "o": uuid.UUID(oid),
        "c": int(document["cycle_id"]),
        "p": peer,
        "r": role,
        "n": net,
        "go": gross_out,
        "gi": gross_in,
        "io": len(mine),
        "ii": len(items),
        "s": status,
        "rc": json.dumps(receipt),
        "ret": returned,
        "at": now,
    }
    session.execute(
        text(
            "INSERT INTO net_obligations (obligation_id, cycle_id, peer, role, net, gross_out, "
            "gross_in, items_out, items_in, status, receipt, returned, created_at, applied_at, "
            "delivered_at) VALUES (:o, :c, :p, :r, :n, :go, :gi, :io, :ii, :s, "
            "CAST(:rc AS jsonb), :ret, :at, :at, CASE WHEN :s = 'delivered' THEN :at END) "
            "ON CONFLICT (obligation_id) DO UPDATE SET status = EXCLUDED.status, "
            "receipt = EXCLUDED.receipt, returned = EXCLUDED.returned, "
            "applied_at = EXCLUDED.applied_at, delivered_at = EXCLUDED.delivered_at"
        ),
        values,
    )
    return True


def _item_id(obligation_id: str, submission_id: Any, seq: Any) -> str:
    """str(uuid.uuid5(ITEM_NAMESPACE, "obligation:submission:seq")), without building UUID
    objects: the id of a received item, the same whenever the pair is applied."""
    name = f"{obligation_id}:{submission_id}:{seq}".encode()
    b = bytearray(hashlib.sha1(ITEM_NAMESPACE.bytes + name).digest()[:16])
    b[6] = (b[6] & 0x0F) | 0x50
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _check_incoming(document: dict[str, Any], other: str, items: list[dict[str, Any]]) -> None:
    """The items addressed to us are exactly the ones the receipt's digest covers."""
    by_submission: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for item in sorted(items, key=lambda i: (i["submission_id"], int(i["seq"]))):
        by_submission[item["submission_id"]].append(item)
    for sub_items in by_submission.values():
        if [int(i["seq"]) for i in sub_items] != list(range(len(sub_items))):
            raise BadCentralBankDocument("a submission's items are incomplete")
    digest = direction_digest(
        (sid, submission_digest(sub_items)) for sid, sub_items in by_submission.items()
    )
    if (
        sorted(by_submission) != sorted(document[f"submissions_{other}"])
        or digest != document[f"digest_{other}"]
        or sum(int(i["amount"]) for i in items) != int(document[f"gross_{other}"])
        or len(items) != int(document[f"items_{other}"])
    ):
        raise BadCentralBankDocument("the items addressed to us do not match the receipt")


def _ours(ctx: OperatorContext, wallet_id: str) -> bool:
    return is_valid_wallet_id(wallet_id) and routing_code(wallet_id) == ctx.code


def _target(
    ctx: OperatorContext,
    wallet_id: str,
    payees: dict[str, states.WalletState],
    balances: dict[int, int],
    amount: int,
) -> tuple[str, int | None, str | None, int]:
    """(outcome, account to credit, reason, amount to sweep past the cap): the rules of an
    RTGS delivery (operators/settlement/delivery.py), against the locked balances."""
    if not _ours(ctx, wallet_id):
        return "returning", None, "invalid_wallet_id", 0
    payee = payees.get(wallet_id)
    if payee is None:
        return "returning", None, "unknown_wallet", 0
    return settlement.credit_verdict(
        ctx,
        account_id=payee.account_id,
        wallet_class=payee.wallet_class,
        status=payee.status,
        balance=balances[payee.account_id],
        amount=amount,
    )


def _insert_inbound(
    session: Session,
    peer: str,
    oid: str,
    inbound: list[tuple[str, dict[str, Any], str, str | None, int]],
    entry_ids: list[int],
    now: datetime,
) -> None:
    """One row per received payment (the fan-in rule and the payee's history read them)."""
    session.execute(
        text(
            "INSERT INTO inbound_settlements (settlement_id, payer_operator, reference, kind, "
            "payee_wallet, payer_alias, amount, outcome, receipt, entry_id, created_at) "
            "SELECT t.id, :peer, t.ref, 'payment', t.wallet, t.alias, t.amount, t.outcome, "
            "t.receipt, t.entry, :at FROM unnest(CAST(:ids AS uuid[]), CAST(:refs AS text[]), "
            "CAST(:wallets AS text[]), CAST(:aliases AS text[]), CAST(:amounts AS bigint[]), "
            "CAST(:outcomes AS text[]), CAST(:receipts AS jsonb[]), CAST(:entries AS bigint[])) "
            "AS t(id, ref, wallet, alias, amount, outcome, receipt, entry)"
        ),
        {
            "peer": peer,
            "at": now,
            "ids": any_array([s for s, *_ in inbound]),
            "refs": text_array([i["reference"] for _, i, *_ in inbound]),
            "wallets": text_array([i["payee_wallet"] for _, i, *_ in inbound]),
            "aliases": nullable_text_array([i["payer_alias"] for _, i, *_ in inbound]),
            "amounts": int_array(int(i["amount"]) for _, i, *_ in inbound),
            "outcomes": text_array([o for _, _, o, *_ in inbound]),
            "receipts": text_array(
                [
                    json.dumps(
                        {
                            "kind": "net_item",
                            "obligation_id": oid,
                            "submission_id": i["submission_id"],
                            "seq": int(i["seq"]),
                        }
                    )
                    for _, i, *_ in inbound
                ]
            ),
            "entries": int_array(entry_ids[k] for *_, k in inbound),
        },
    )


def returned_references(session: Session, obligation_id: str) -> list[str]:
    value = session.execute(
        text("SELECT returned FROM net_obligations WHERE obligation_id = :o"),
        {"o": uuid.UUID(obligation_id)},
    ).scalar()
    return list(value or [])


# ------------------------------------------------------------------ 6. delivered


def awaiting_delivery(session: Session) -> list[str]:
    rows = session.execute(
        text("SELECT obligation_id FROM net_obligations WHERE status = 'applied' ORDER BY 1")
    ).scalars()
    return [str(r) for r in rows]


def mark_delivered(
    session: Session, ctx: OperatorContext, *, obligation_id: str, returned: Sequence[str]
) -> int:
    """The peer has applied the pair: our payments in it are delivered, except those it is
    sending back. Returns how many orders changed."""
    oid = uuid.UUID(obligation_id)
    status = session.execute(
        text("SELECT status FROM net_obligations WHERE obligation_id = :o FOR UPDATE"),
        {"o": oid},
    ).scalar()
    if status != "applied":
        return 0
    back = []
    for ref in returned:
        try:
            back.append(uuid.UUID(ref))
        except ValueError:
            continue
    now = ctx.now()
    changed = session.execute(
        text(
            "UPDATE orders SET status = 'delivered', updated_at = :at WHERE id IN "
            "(SELECT order_id FROM net_items WHERE obligation_id = :o) AND status = 'settled' "
            "AND NOT (id = ANY(CAST(:back AS uuid[])))"
        ),
        {"at": now, "o": oid, "back": back},
    )
    session.execute(
        text(
            "UPDATE net_obligations SET status = 'delivered', delivered_at = :at "
            "WHERE obligation_id = :o"
        ),
        {"at": now, "o": oid},
    )
    return int(changed.rowcount or 0)  # type: ignore[attr-defined]


# ------------------------------------------------------------------ driving it


class _HasRunner(Protocol):
    runner: JobRunner


def _runner(target: JobRunner | _HasRunner) -> JobRunner:
    return target.runner if hasattr(target, "runner") else target  # type: ignore[return-value]


def outstanding(session: Session) -> dict[str, int]:
    """Net work not finished here: items not settled, obligations not applied or delivered."""
    row = session.execute(
        text(
            "SELECT count(*) FILTER (WHERE status = 'open') AS open, "
            "count(*) FILTER (WHERE status = 'submitted') AS submitted, "
            "coalesce(sum(amount) FILTER (WHERE status IN ('open', 'submitted')), 0) AS value "
            "FROM net_items WHERE status IN ('open', 'submitted')"
        )
    ).one()
    obligations = session.execute(
        text(
            "SELECT count(*) FILTER (WHERE status IN ('pending', 'paid')) AS unapplied, "
            "count(*) FILTER (WHERE status = 'applied') AS undelivered "
            "FROM net_obligations WHERE status <> 'delivered'"
        )
    ).one()
    return {
        "items_open": int(row.open),
        "items_submitted": int(row.submitted),
        "in_flight": int(row.value),
        "obligations_unapplied": int(obligations.unapplied),
        "obligations_undelivered": int(obligations.undelivered),
    }


def is_active(target: JobRunner | _HasRunner) -> bool:
    """Whether there is net work here: the mode is "net", or items or obligations queued under
    it are not finished (they finish under net even after a switch back to RTGS)."""
    return _runner(target).ctx.settlement_mode == "net" or unfinished(target)


def unfinished(target: JobRunner | _HasRunner) -> bool:
    """Whether items or obligations here are not finished (see `outstanding`)."""
    left = _runner(target).tx(outstanding)
    return any(
        left[k]
        for k in (
            "items_open",
            "items_submitted",
            "obligations_unapplied",
            "obligations_undelivered",
        )
    )


def sync(
    target: JobRunner | _HasRunner,
    *,
    now: datetime | None = None,
    force: bool = False,
    poll: bool = True,
    roles: Sequence[str] | None = None,
) -> dict[str, Any]:
    """One pass of the clearing steps, in order: submit the due open items (`force`: all of
    them), then (`poll`) ask the clearing house what we must act on and do it (pay what we owe,
    apply settled pairs and acknowledge them), then mark delivered what the peers have applied.
    `now` is the clock the submission rule uses (default: the context's clock). `roles`: act
    only on the obligations where we are one of these ("debtor", "creditor", "even"), and leave
    jobs retried earlier to the worker (the simulator phases a cycle this way so that every
    operator applies its pairs in the same order however its threads interleave). Safe to call
    any number of times; returns what it did."""
    runner = _runner(target)
    ctx = runner.ctx
    now = now or ctx.now()
    result: dict[str, Any] = {"submissions": 0, "obligations": 0, "delivered": 0, "errors": []}
    created = runner.tx(lambda s: create_submissions(s, ctx, now=now, force=force))
    result["submissions"] = len(created)
    # earlier submissions whose call failed are retried here too (and by the worker)
    retried = runner.tx(lambda s: _pending_references(s, ("net_submit",)))
    for reference in dict.fromkeys(created + retried):
        runner.run_reference(reference, patience=0)
    if not poll:
        return result
    try:
        actionable = ctx.central_bank.obligations(actionable=True)
    except (RemoteUnavailable, RemoteError) as exc:
        result["errors"].append(str(exc))
        return result
    if roles is not None:  # in a fixed order: by cycle, then peer
        actionable = sorted(
            (ob for ob in actionable if ob["role"] in roles),
            key=lambda ob: (int(ob["cycle_id"]), str(ob["peer"])),
        )
    references = runner.tx(lambda s: note_obligations(s, ctx, actionable))
    if roles is None:
        references += runner.tx(lambda s: _pending_references(s, ("net_pay", "net_apply")))
    for reference in dict.fromkeys(references):
        runner.run_reference(reference, patience=0)
    result["obligations"] = len(set(references))
    for oid in runner.tx(awaiting_delivery):
        try:
            view = ctx.central_bank.obligation(oid, items=False)
        except (RemoteUnavailable, RemoteError) as exc:
            result["errors"].append(str(exc))
            continue
        peer_ack = (view.get("acks") or {}).get(view.get("peer"))
        if peer_ack is not None:
            returned = list(peer_ack.get("returned", []))
            result["delivered"] += runner.tx(
                lambda s, oid=oid, returned=returned: mark_delivered(
                    s, ctx, obligation_id=oid, returned=returned
                )
            )
    return result


def _pending_references(session: Session, kinds: Sequence[str]) -> list[str]:
    rows = session.execute(
        text(
            "SELECT reference FROM outbox WHERE kind = ANY(:k) AND status = 'pending' "
            "AND next_attempt_at <= now() ORDER BY id LIMIT 1000"
        ),
        {"k": list(kinds)},
    ).scalars()
    return [str(r) for r in rows]
