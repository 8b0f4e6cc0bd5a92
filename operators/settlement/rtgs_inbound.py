"""Batched gross settlement, the payee's side: a batch of settlements another operator
delivers (`POST /v1/interop/settlements/batch`), each with its central bank receipt and minted
tokens, credited in one transaction.

Each item is judged exactly as `settlement.receive` judges a single delivery: the receipt and
tokens must verify and name this operator and the delivering one (else the item is `rejected`,
the others still go on); an item seen before (same settlement id, in a batch or alone) is
answered with its recorded outcome; the payee is credited (`credited`, swept past its cap if the
policy says so) or the money is held in `returns_pending` and sent back (`returning`, by the
single settlement path, kind "return"). Every account the batch touches is locked once, in
ascending id order, as every path does; entries, inbound records and vault tokens are written
set-based.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.sqlarrays import any_array, int_array, nullable_text_array, text_array
from operators.compliance import aml
from operators.context import OperatorContext
from operators.errors import SettlementRejected
from operators.settlement.delivery import check_delivery, credit_verdict, queue_return

Checked = tuple[int, str, int, dict[str, Any]]  # (index, settlement id, amount, body)


def receive_batch(
    session: Session, ctx: OperatorContext, *, payer_operator: str, items: list[dict[str, Any]]
) -> dict[str, Any]:
    answers: list[dict[str, Any] | None] = [None] * len(items)
    checked: list[Checked] = []
    first: dict[str, int] = {}
    repeats: dict[int, int] = {}
    for n, body in enumerate(items):
        try:
            settlement_id, amount = _check(ctx, payer_operator, body)
        except _Rejected as exc:
            answers[n] = {
                "reference": body.get("reference"),
                "settlement_id": None,
                "outcome": "rejected",
                "code": "settlement_rejected",
                "reason": str(exc),
            }
            continue
        if settlement_id in first:
            repeats[n] = first[settlement_id]
            continue
        first[settlement_id] = n
        checked.append((n, settlement_id, amount, body))
    ids = sorted(sid for _, sid, _, _ in checked)
    if ids:  # the same advisory lock as a single delivery of each (repo.lock_inbound_key)
        session.execute(
            text(
                "SELECT pg_advisory_xact_lock(hashtext(k)) "
                "FROM unnest(CAST(:ids AS text[])) AS k ORDER BY k"
            ),
            {"ids": text_array(ids)},
        )
    seen = _recorded(session, ids)
    new = [c for c in checked if c[1] not in seen]
    for n, sid, _, body in checked:
        if sid in seen:
            answers[n] = _answer(body, sid, seen[sid], None, replayed=True)
    if new:
        for n, answer in _credit(session, ctx, payer_operator, new).items():
            answers[n] = answer
    for n, earlier in repeats.items():
        answers[n] = {**(answers[earlier] or {}), "replayed": True}
    return {"items": answers}


class _Rejected(Exception):
    pass


def _check(ctx: OperatorContext, payer_operator: str, body: dict[str, Any]) -> tuple[str, int]:
    if body.get("kind") != "payment":
        raise _Rejected("a batch delivers payments; returns are delivered one by one")
    try:
        return check_delivery(ctx, payer_operator, body)
    except SettlementRejected as exc:
        raise _Rejected(str(exc)) from None


def _answer(
    body: dict[str, Any], sid: str, outcome: str, reason: str | None, *, replayed: bool
) -> dict[str, Any]:
    return {
        "reference": body.get("reference"),
        "settlement_id": sid,
        "outcome": outcome,
        "reason": reason,
        "replayed": replayed,
    }


def _credit(
    session: Session, ctx: OperatorContext, payer_operator: str, new: list[Checked]
) -> dict[int, dict[str, Any]]:
    wallet_ids = sorted(
        {
            b["payee_wallet"]
            for _, _, _, b in new
            if is_valid_wallet_id(b["payee_wallet"]) and routing_code(b["payee_wallet"]) == ctx.code
        }
    )
    sweeping = ctx.policy.overflow == "sweep"
    wallets = _wallets(session, wallet_ids)
    held, pending = ctx.account("tokens_held"), ctx.account("returns_pending")
    accounts = {held, pending} | {w["account_id"] for w in wallets.values()}
    if sweeping:
        accounts |= {ctx.account("vault_float"), ctx.account("deposits_contra")}
        accounts |= {w["deposit_account_id"] for w in wallets.values()}
    balances = ledger.lock_accounts(session, accounts)
    wallets = _wallets(session, wallet_ids)  # class and status as of the lock
    entries: list[ledger.Entry] = []
    verdicts: list[tuple[str, str | None, int]] = []  # (outcome, reason, sweep)
    for _, sid, amount, body in new:
        wallet = wallets.get(body["payee_wallet"])
        reason: str | None
        if not is_valid_wallet_id(body["payee_wallet"]) or (
            routing_code(body["payee_wallet"]) != ctx.code
        ):
            outcome, credit, reason, sweep = "returning", None, "invalid_wallet_id", 0
        elif wallet is None:
            outcome, credit, reason, sweep = "returning", None, "unknown_wallet", 0
        else:
            outcome, credit, reason, sweep = credit_verdict(
                ctx,
                account_id=wallet["account_id"],
                wallet_class=wallet["wallet_class"],
                status=wallet["status"],
                balance=balances[wallet["account_id"]],
                amount=amount,
            )
        target = credit if credit is not None else pending
        balances[target] = balances.get(target, 0) + amount - sweep
        entries.append(("settlement_in", sid, [(held, -amount), (target, amount)]))
        verdicts.append((outcome, reason, sweep))
    entry_ids = ledger.post_many(session, entries, at=ctx.now())
    _add_tokens(session, new)
    _add_inbound(session, payer_operator, new, verdicts, entry_ids, now=ctx.now())
    credited: dict[str, int] = {}
    answers: dict[int, dict[str, Any]] = {}
    for (n, sid, amount, body), (outcome, reason, sweep) in zip(new, verdicts, strict=True):
        wallet_id = body["payee_wallet"]
        if sweep:
            from operators.wallets.service import sweep_wallet_excess

            sweep_wallet_excess(session, ctx, wallet_id=wallet_id, amount=sweep, reference=sid)
        if outcome == "credited":
            credited[wallet_id] = credited.get(wallet_id, 0) + amount
        else:
            queue_return(session, payer_operator, sid, amount, body, reason, now=ctx.now())
        answers[n] = _answer(body, sid, outcome, reason, replayed=False)
    if credited:
        aml.on_receipts(session, ctx, credited)
    return answers


# ------------------------------------------------------------------ SQL of this module


def _recorded(session: Session, ids: list[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = session.execute(
        text(
            "SELECT settlement_id, outcome FROM inbound_settlements "
            "WHERE settlement_id = ANY(CAST(:ids AS uuid[]))"
        ),
        {"ids": any_array(ids)},
    ).all()
    return {str(r.settlement_id): str(r.outcome) for r in rows}


def _wallets(session: Session, wallet_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not wallet_ids:
        return {}
    rows = session.execute(
        text(
            "SELECT w.id, w.account_id, w.wallet_class, w.status, c.deposit_account_id "
            "FROM wallets w JOIN customers c ON c.id = w.customer_id "
            "WHERE w.id = ANY(CAST(:ids AS text[]))"
        ),
        {"ids": text_array(wallet_ids)},
    ).mappings()
    return {str(r["id"]): dict(r) for r in rows}


def _add_tokens(session: Session, new: list[Checked]) -> None:
    rows = [
        {
            "serial": t["serial"],
            "amount": t["amount"],
            "issued_at": t["issued_at"],
            "signature": t["signature"],
            "via": f"settlement:{sid}",
        }
        for _, sid, _, body in new
        for t in body["payee_tokens"]
    ]
    session.execute(
        text(
            "INSERT INTO vault_tokens (serial, amount, issued_at, signature, received_via) "
            "SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS t(serial uuid, "
            "amount bigint, issued_at timestamptz, signature text, via text) "
            "ON CONFLICT DO NOTHING"
        ),
        {"rows": json.dumps(rows)},
    )


def _add_inbound(
    session: Session,
    payer_operator: str,
    new: list[Checked],
    verdicts: list[tuple[str, str | None, int]],
    entry_ids: list[int],
    *,
    now: datetime,
) -> None:
    session.execute(
        text(
            "INSERT INTO inbound_settlements (settlement_id, payer_operator, reference, kind, "
            "payee_wallet, payer_alias, amount, outcome, receipt, entry_id, created_at) "
            "SELECT i.sid, :payer, i.ref, 'payment', i.wallet, i.alias, i.amount, i.outcome, "
            "CAST(:receipts AS jsonb) -> (i.n - 1)::int, i.entry, :at "
            "FROM unnest(CAST(:sids AS uuid[]), CAST(:refs AS text[]), "
            "CAST(:wallets AS text[]), CAST(:aliases AS text[]), CAST(:amounts AS bigint[]), "
            "CAST(:outcomes AS text[]), CAST(:entries AS bigint[])) WITH ORDINALITY "
            "AS i(sid, ref, wallet, alias, amount, outcome, entry, n)"
        ),
        {
            "payer": payer_operator,
            "sids": any_array([uuid.UUID(sid) for _, sid, _, _ in new]),
            "refs": text_array([str(b["reference"]) for _, _, _, b in new]),
            "wallets": text_array([str(b["payee_wallet"]) for _, _, _, b in new]),
            "aliases": nullable_text_array([b.get("payer_alias") for _, _, _, b in new]),
            "amounts": int_array(amount for _, _, amount, _ in new),
            "outcomes": text_array([o for o, _, _ in verdicts]),
            "entries": int_array(entry_ids),
            "receipts": json.dumps([b["receipt"] for _, _, _, b in new]),
            "at": now,
        },
    )
