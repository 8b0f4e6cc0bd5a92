"""De-anonymisation under law: identity escrow released only against a disclosure order.

A disclosure order is a document signed with the regulator's Ed25519 key:

    {"type": "disclosure-order", "order_id": <uuid>, "wallet_id", "legal_basis", "requester",
     "issued_at"}

The operator checks the signature against the regulator key it was configured with, the
order's age, that the wallet is one of its own, and that the order was never used before; then
it appends the order to the hash-chained disclosure log (cbdc/hashchain.py) and only then, in
the same committed transaction, releases the wallet's sealed escrow record. The operator cannot
read that record; the regulator opens it with its private X25519 key. Each new head of the log is
signed and registered with the central bank (an outbox job queued with the entry), so a rewrite
of the log inside this database, hashes recomputed, still shows against the anchors.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.clock import iso, parse_iso
from cbdc.crypto import verify_json
from cbdc.disclosure_log import verify_log as check_log
from cbdc.errors import Conflict, DomainError, ValidationFailed
from cbdc.hashchain import GENESIS, link_hash
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import UnknownWallet
from operators.wallets import repository as wallet_repo
from operators.wallets.identity_history import released_identity

ORDER_MAX_AGE = timedelta(hours=24)
ORDER_MAX_SKEW = timedelta(minutes=5)


class InvalidDisclosureOrder(DomainError):
    code = "disclosure_order_invalid"
    status = 403
    title = "Disclosure order is not signed by the regulator"


class DisclosureOrderExpired(DomainError):
    code = "disclosure_order_expired"
    status = 422
    title = "Disclosure order is too old or dated in the future"


class DisclosureOrderReplayed(Conflict):
    code = "disclosure_order_replayed"
    title = "This disclosure order was already executed"


def append_log(session: Session, entry: dict[str, Any], *, now: datetime) -> dict[str, Any]:
    """Append under an exclusive lock so the chain has one head."""
    session.execute(text("LOCK TABLE disclosure_log IN EXCLUSIVE MODE"))
    last = session.execute(
        text("SELECT seq, hash FROM disclosure_log ORDER BY seq DESC LIMIT 1")
    ).first()
    seq, previous = (int(last.seq) + 1, str(last.hash)) if last else (1, GENESIS)
    digest = link_hash(previous, entry)
    session.execute(
        text(
            "INSERT INTO disclosure_log (seq, prev_hash, entry, hash) "
            "VALUES (:s, :p, CAST(:e AS jsonb), :h)"
        ),
        {"s": seq, "p": previous, "e": json.dumps(entry), "h": digest},
    )
    # The new head is registered with the central bank, outside this database, through the
    # outbox: queued in this very transaction, so a committed entry is anchored exactly once
    # eventually, whatever crashes in between (operators/jobs.py `_disclosure_anchor`).
    repo.enqueue(
        session,
        now=now,
        kind="disclosure_anchor",
        reference=anchor_reference(seq),
        payload={"seq": seq, "hash": digest},
    )
    # prev_hash lets the regulator check that this head extends the one it knew
    # (regulator/client.py `record_disclosure_head`).
    return {"seq": seq, "prev_hash": previous, "hash": digest}


def anchor_reference(seq: int) -> str:
    """The outbox reference of the job that registers the head after entry `seq`."""
    return f"disclosure-anchor:{seq}"


def log_rows(session: Session) -> list[dict[str, Any]]:
    rows = (
        session.execute(
            text("SELECT seq, prev_hash, entry, hash, created_at FROM disclosure_log ORDER BY seq")
        )
        .mappings()
        .all()
    )
    return [
        {
            "seq": int(r["seq"]),
            "prev_hash": r["prev_hash"],
            "entry": r["entry"],
            "hash": r["hash"],
            "created_at": iso(r["created_at"]),
        }
        for r in rows
    ]


def verify_log(session: Session, ctx: OperatorContext) -> dict[str, Any]:
    """The log's hash chain and every logged order's regulator signature (see
    cbdc/disclosure_log.py); the heads anchored at the central bank are compared by
    `cbdc audit` and `cbdc regulator log`, which do not take this operator's word for it."""
    return check_log(log_rows(session), regulator_key=ctx.regulator_signing_key, operator=ctx.code)


def disclose(
    session: Session, ctx: OperatorContext, *, order: dict[str, Any], signature: str
) -> dict[str, Any]:
    if ctx.regulator_signing_key is None:
        raise InvalidDisclosureOrder("this operator has no regulator key configured")
    if order.get("type") != "disclosure-order":
        raise ValidationFailed("order.type: must be 'disclosure-order'")
    if not verify_json(ctx.regulator_signing_key, order, signature):
        raise InvalidDisclosureOrder("the order's signature does not verify with the regulator key")
    for field in ("legal_basis", "requester"):
        if not str(order.get(field, "")).strip():
            raise ValidationFailed(f"order.{field}: required")
    try:
        order_id = str(uuid.UUID(order["order_id"]))
        issued = parse_iso(order["issued_at"])
    except (KeyError, ValueError):
        raise ValidationFailed("order.order_id must be a UUID, order.issued_at ISO 8601") from None
    if order_id != order["order_id"]:
        # One spelling per order, or a replay could pass as a new order in upper case.
        raise ValidationFailed("order.order_id: must be a UUID in canonical lower-case form")
    now = ctx.now()
    if issued < now - ORDER_MAX_AGE or issued > now + ORDER_MAX_SKEW:
        raise DisclosureOrderExpired("the order was issued outside the accepted window")
    wallet = wallet_repo.get_wallet(session, str(order.get("wallet_id", "")))
    if wallet is None or wallet.escrow is None:
        raise UnknownWallet(f"no wallet {order.get('wallet_id')} with escrow at {ctx.code}")
    # The identity as it was at the order's `as_of`, or every version with its period
    # (operators/wallets/identity_history.py); chosen before the log entry that records it.
    release = released_identity(
        session, wallet_id=wallet.id, current=wallet.escrow, as_of=_as_of(order)
    )
    session.execute(text("LOCK TABLE disclosure_log IN EXCLUSIVE MODE"))
    used = session.execute(
        text("SELECT 1 FROM disclosure_log WHERE entry -> 'order' ->> 'order_id' = :o"),
        {"o": order_id},
    ).first()
    if used is not None:
        raise DisclosureOrderReplayed(f"order {order_id} was already executed")
    link = append_log(
        session,
        {
            "order": order,
            "signature": signature,
            "operator": ctx.code,
            "released": "identity-escrow",
            "identity_versions": [v["version"] for v in release["versions"]],
            "as_of": release["as_of"],
            "at": iso(now),
        },
        now=now,
    )
    return {"order_id": order_id, "wallet_id": wallet.id, **release, "log": link}


def _as_of(order: dict[str, Any]) -> datetime | None:
    """The order's optional `as_of`: the time whose identity is to be released."""
    if order.get("as_of") is None:
        return None
    try:
        return parse_iso(str(order["as_of"]))
    except ValueError:
        raise ValidationFailed("order.as_of: must be ISO 8601 with a time zone") from None
