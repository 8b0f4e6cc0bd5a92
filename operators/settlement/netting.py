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

Steps 1-2 are in `net_submission`, 3-4 in `net_obligations`, 5-6 in `net_apply`; this module
holds what drives them. `sync()` drives 2, 4, 5 and 6 once, deterministically: the background
worker calls it every tick while there is net work (and now and then otherwise), an in-process
simulator calls it with its own clock. Every step is idempotent: outbox jobs with references
(`net-submit:<id>`, `net:<obligation id>`), the CB's idempotency, and the local `net_obligations`
row that says how far an obligation got.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.http import RemoteError, RemoteUnavailable
from operators.settlement.net_apply import awaiting_delivery, mark_delivered
from operators.settlement.net_obligations import note_obligations
from operators.settlement.net_submission import create_submissions

if TYPE_CHECKING:
    from operators.jobs import JobRunner


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
    retried = runner.tx(lambda s: _pending_references(s, ("net_submit",), now=now))
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
        references += runner.tx(lambda s: _pending_references(s, ("net_pay", "net_apply"), now=now))
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


def _pending_references(session: Session, kinds: Sequence[str], *, now: datetime) -> list[str]:
    rows = session.execute(
        text(
            "SELECT reference FROM outbox WHERE kind = ANY(:k) AND status = 'pending' "
            "AND next_attempt_at <= :now ORDER BY id LIMIT 1000"
        ),
        {"k": list(kinds), "now": now},
    ).scalars()
    return [str(r) for r in rows]
