"""A device's sync: its signed transfers (`sent`) and the payments it accepted (`received`),
in one transaction. Transfers of our own devices are adjudicated here
(`operators.offline.adjudication`); payments from other operators' devices are checked (chain
to the payer operator's certificate in the central bank's directory, signature, payee) and
stored as claims, forwarded to the payer's operator by an `offline_forward` job queued in the
same transaction (`operators.offline.forwarding`). The answer carries a signed ack and the
central bank's signed revocation list."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import Row
from sqlalchemy.orm import Session

from cbdc import offline as kernel
from cbdc.tokens import sign_document
from operators import repository as repo
from operators.context import OperatorContext
from operators.offline import repository as offline_repo
from operators.offline.adjudication import adjudicate_many, refused
from operators.offline.devices import require_device
from operators.offline.errors import rejected
from operators.offline.revocations import latest_list

FORWARD_KIND = "offline_forward"


def sync_device(
    session: Session,
    ctx: OperatorContext,
    *,
    device_id: str,
    sent: list[dict[str, Any]],
    received: list[dict[str, Any]],
    counter: int | None = None,
    revocations: dict[str, Any] | None = None,
    wallet_id: str | None = None,
) -> dict[str, Any]:
    """Take a device's log (the batch signature already checked by the caller). `counter`: the
    batch's counter (default: the highest sent); `revocations`: the signed list to hand over
    (default: `latest_list`, fetched now: the API fetches it before its transaction);
    `wallet_id`: the caller's wallet, which must own the device (None: staff, the engine).
    Idempotent: the same log again moves nothing (duplicates)."""
    if not isinstance(sent, list) or not isinstance(received, list):
        raise rejected(kernel.OfflineRefusal(kernel.MALFORMED, "sent and received are lists"))
    if revocations is None:
        revocations = latest_list(ctx)
    device = require_device(session, device_id, wallet_id=wallet_id)
    now = ctx.now()
    own: list[dict[str, Any]] = []
    slots: list[tuple[str, int]] = []
    answers: dict[str, list[dict[str, Any] | None]] = {
        "sent": [None] * len(sent),
        "received": [None] * len(received),
    }
    for i, item in enumerate(sent):
        document = item.get("transfer") if isinstance(item, dict) else None
        if not isinstance(document, dict) or document.get("payer") != device.id:
            answers["sent"][i] = refused(kernel.MALFORMED, "not a transfer of this device")
            continue
        own.append(item)
        slots.append(("sent", i))
    claims: dict[str, list[tuple[int, dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for j, payment in enumerate(received):
        try:
            document, peer = _check_received(ctx, device, payment)
        except kernel.OfflineRefusal as exc:
            doc = payment.get("transfer") if isinstance(payment, dict) else None
            answers["received"][j] = refused(exc.code, exc.detail, doc)
            continue
        if peer == ctx.code:
            own.append(payment)
            slots.append(("received", j))
        else:
            claims[peer].append((j, document, payment))
    for (side, index), result in zip(
        slots, adjudicate_many(session, ctx, own, source=f"sync:{device.id}", now=now), strict=True
    ):
        answers[side][index] = result
    for peer, items in claims.items():
        _store_claims(session, ctx, device, peer, items, answers["received"], now)
    offline_repo.set_synced(session, device.id, now)
    last = max(
        (
            int(c)
            for side, i in slots
            if side == "sent" and isinstance(c := sent[i]["transfer"].get("counter"), int)
        ),
        default=0,
    )
    ack = kernel.sync_ack(
        device=device.id,
        counter=counter if isinstance(counter, int) else last,
        at=now,
        revocations_version=int(revocations["document"]["version"]),
    )
    after = require_device(session, device.id)
    return {
        "ack": sign_document(ctx.key, ack),
        "revocations": revocations,
        "sent": [_sent_line(r) for r in answers["sent"] if r is not None],
        "received": [_received_line(r) for r in answers["received"] if r is not None],
        "purse_balance": repo.account_balance(session, device.account_id),
        "device_status": after.status,
    }


def _sent_line(result: dict[str, Any]) -> dict[str, Any]:
    line = {k: result.get(k) for k in ("counter", "hash", "outcome")}
    if result.get("code"):
        line["code"] = result["code"]
    return line


def _received_line(result: dict[str, Any]) -> dict[str, Any]:
    line = {
        "payer": result.get("payer"),
        "counter": result.get("counter"),
        "hash": result.get("hash"),
        "status": result.get("outcome"),
    }
    if result.get("code"):
        line["code"] = result["code"]
    return line


def _check_received(
    ctx: OperatorContext, device: Row[Any], payment: Any
) -> tuple[dict[str, Any], str]:
    """A payment our device accepted: (its transfer, the payer's operator code)."""
    if not isinstance(payment, dict):
        raise kernel.OfflineRefusal(kernel.MALFORMED, "a payment is an object")
    operator_certificate = payment.get("operator_certificate")
    try:
        peer = str(operator_certificate["document"]["operator"])  # type: ignore[index]
    except (KeyError, TypeError):
        raise kernel.OfflineRefusal(kernel.BAD_CHAIN, "no operator certificate") from None
    if peer != ctx.code:
        entry = ctx.central_bank.operator(peer)
        if entry is None or entry.get("certificate") != operator_certificate.get("document"):  # type: ignore[union-attr]
            raise kernel.OfflineRefusal(
                kernel.BAD_CHAIN, f"not the central bank's certificate of operator {peer}"
            )
    try:
        payer = kernel.verify_device_chain(
            ctx.central_bank_public_key,
            operator_certificate,  # type: ignore[arg-type]
            payment.get("certificate"),  # type: ignore[arg-type]
        )
    except (KeyError, TypeError, AttributeError):
        raise kernel.OfflineRefusal(kernel.BAD_CHAIN, "malformed certificates") from None
    document = kernel.check_transfer_signature(payment, payer)
    if document["payee"] != device.id or document["payee_wallet"] != device.wallet_id:
        raise kernel.OfflineRefusal(kernel.WRONG_PAYEE, "the payment is made out to another device")
    if document.get("currency") != ctx.currency:
        raise kernel.OfflineRefusal(kernel.WRONG_CURRENCY, f"not in {ctx.currency}")
    return document, peer


def _store_claims(
    session: Session,
    ctx: OperatorContext,
    device: Row[Any],
    peer: str,
    items: list[tuple[int, dict[str, Any], dict[str, Any]]],
    answers: list[dict[str, Any] | None],
    now: Any,
) -> None:
    """Keep the payments from `peer`'s devices as claims; queue one forwarding job for the new
    ones (claims already stored answer their status)."""
    keys: list[list[Any]] = []
    for j, document, payment in items:
        digest = kernel.transfer_hash(document)
        key = {"payer_device": document["payer"], "counter": document["counter"]}
        status = offline_repo.add_claim(
            session,
            **key,
            transfer_hash=digest,
            payee_device=device.id,
            payment=payment,
            now=now,
        )
        if status is None:
            keys.append([document["payer"], document["counter"], digest])
        answers[j] = {
            "payer": document["payer"],
            "counter": document["counter"],
            "hash": digest,
            "outcome": status or "forwarding",
        }
    if keys:
        repo.enqueue(
            session,
            kind=FORWARD_KIND,
            reference=f"offline-forward:{peer}:{uuid.uuid4().hex}",
            payload={"peer": peer, "keys": keys},
            now=now,
        )
