"""Deferred net settlement, steps 5 and 6 (see `operators.settlement.netting`): a settled pair
applied in one transaction (receipt, tokens and item digests checked; payees credited or
payments sent back), and the peer's acknowledgement turning our orders `delivered`."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.addresses import is_valid_wallet_id, routing_code
from cbdc.netting import direction_digest, submission_digest
from cbdc.sqlarrays import any_array, int_array, nullable_text_array, text_array
from cbdc.tokens import verify_document
from operators import repository as repo
from operators.compliance import aml
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument
from operators.models import OutboxJob
from operators.settlement import delivery as settlement
from operators.vault import repository as vault_repo
from operators.vault import service as vault
from operators.wallets import states

ITEM_NAMESPACE = uuid.UUID("6b1f0c2e-7a44-4d0e-9a51-1f3e2b7c9d10")  # ids of received items


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
        vault_repo.tokens_gone(session, list(document["inputs"]), now)
        # a payment job still pending (its record of success was lost) has nothing left to do
        vault_repo.release_tokens(session, reference)
        session.execute(
            text(
                "UPDATE outbox SET status = 'done', done_at = :now, last_error = 'applied' "
                "WHERE kind = 'net_pay' AND reference = :r AND status = 'pending'"
            ),
            {"r": reference, "now": now},
        )
    if tokens:
        vault_repo.add_vault_tokens(session, tokens, via=f"net-settlement:{oid}")
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
        settlement.queue_return(
            session, peer, settlement_id, int(item["amount"]), item, reason, now=now
        )
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
