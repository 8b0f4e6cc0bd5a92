"""Submissions: an operator hands in the cross-operator payments it made to one payee
operator, for the next clearing cycle (idempotent on the submission id; no money moves)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cbdc.addresses import routing_code
from cbdc.clock import iso
from cbdc.errors import IdempotencyMismatch, ValidationFailed
from cbdc.netting import MAX_SUBMISSION_ITEMS, submission_digest
from cbdc.sqlarrays import int_array, nullable_text_array, text_array
from central_bank.certification.service import require_operator
from central_bank.errors import DuplicateClearingItem, OperatorSuspended
from central_bank.models import Operator

SUBMIT_LOCK = 7102  # advisory lock namespace: one submission id at a time


def parse_canonical_uuid(value: str, what: str) -> uuid.UUID:
    try:
        parsed = uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        raise ValidationFailed(f"{what}: must be a UUID") from None
    if str(parsed) != value:
        raise ValidationFailed(f"{what}: must be a UUID in canonical lower-case form")
    return parsed


# ---------------------------------------------------------------- submissions


def submit(
    session: Session,
    *,
    operator: Operator,
    submission: dict[str, Any],
    request_hash: str,
    now: datetime,
) -> dict[str, Any]:
    """Store one submission of payments from `operator` to one payee operator (idempotent on
    its submission id: the same body again gets the first answer, another body is refused)."""
    sid = parse_canonical_uuid(submission["submission_id"], "submission_id")
    session.execute(
        text("SELECT pg_advisory_xact_lock(:ns, hashtext(:k))"), {"ns": SUBMIT_LOCK, "k": str(sid)}
    )
    previous = session.execute(
        text("SELECT operator_id, request_hash, response FROM clearing_submissions WHERE id = :i"),
        {"i": sid},
    ).first()
    if previous is not None:
        if previous.operator_id != operator.id or previous.request_hash != request_hash:
            raise IdempotencyMismatch("this submission_id was used for another submission")
        return {**previous.response, "replayed": True}
    if operator.status != "active":
        raise OperatorSuspended(f"operator {operator.code} is {operator.status}")
    payee = require_operator(session, submission["payee_operator"])
    if payee.id == operator.id:
        raise ValidationFailed("payee_operator: clearing needs two different operators")
    if payee.status != "active":
        raise OperatorSuspended(f"payee operator {payee.code} is {payee.status}")
    items: list[dict[str, Any]] = submission["items"]
    if not 0 < len(items) <= MAX_SUBMISSION_ITEMS:
        raise ValidationFailed(f"items: between 1 and {MAX_SUBMISSION_ITEMS}")
    gross = sum(int(i["amount"]) for i in items)
    if gross != submission["gross"]:
        raise ValidationFailed(f"gross: the items add up to {gross}, not {submission['gross']}")
    references = [i["reference"] for i in items]
    if len(set(references)) != len(references):
        raise ValidationFailed("items: a reference appears twice")
    misrouted = [i["payee_wallet"] for i in items if routing_code(i["payee_wallet"]) != payee.code]
    if misrouted:
        raise ValidationFailed(f"items: payee wallet {misrouted[0]!r} is not held at {payee.code}")
    seen = session.execute(
        text(
            "SELECT reference FROM clearing_items WHERE operator_id = :o "
            "AND reference = ANY(CAST(:refs AS text[])) LIMIT 1"
        ),
        {"o": operator.id, "refs": text_array(references)},
    ).scalar()
    if seen is not None:
        raise DuplicateClearingItem(f"payment {seen} was already submitted for clearing")
    digest = submission_digest(items)
    response = {
        "submission_id": str(sid),
        "payer_operator": operator.code,
        "payee_operator": payee.code,
        "items": len(items),
        "gross": gross,
        "digest": digest,
        "accepted_at": iso(now),
    }
    try:
        with session.begin_nested():
            session.execute(
                text(
                    "INSERT INTO clearing_submissions (id, operator_id, payee_operator_id, "
                    "request_hash, items, gross, digest, response, created_at) "
                    "VALUES (:i, :o, :p, :h, :n, :g, :d, CAST(:r AS jsonb), :at)"
                ),
                {
                    "i": sid,
                    "o": operator.id,
                    "p": payee.id,
                    "h": request_hash,
                    "n": len(items),
                    "g": gross,
                    "d": digest,
                    "r": json.dumps(response),
                    "at": now,
                },
            )
            session.execute(
                text(
                    "INSERT INTO clearing_items (submission_id, seq, operator_id, reference, "
                    "payee_wallet, payer_alias, amount) SELECT :s, t.seq, :o, t.ref, t.wallet, "
                    "t.alias, t.amount FROM unnest(CAST(:seq AS integer[]), "
                    "CAST(:refs AS text[]), CAST(:wallets AS text[]), CAST(:aliases AS text[]), "
                    "CAST(:amounts AS bigint[])) AS t(seq, ref, wallet, alias, amount)"
                ),
                {
                    "s": sid,
                    "o": operator.id,
                    "seq": int_array(range(len(items))),
                    "refs": text_array(references),
                    "wallets": text_array([i["payee_wallet"] for i in items]),
                    "aliases": nullable_text_array([i["payer_alias"] for i in items]),
                    "amounts": int_array(int(i["amount"]) for i in items),
                },
            )
    except IntegrityError as exc:
        if "uq_clearing_items_reference" in str(exc.orig):  # a concurrent submission had it
            raise DuplicateClearingItem("a payment was already submitted for clearing") from None
        raise
    return {**response, "replayed": False}


def waiting_items(session: Session) -> int:
    """Submitted payments not yet in a clearing cycle."""
    return int(
        session.execute(
            text("SELECT coalesce(sum(items), 0) FROM clearing_submissions WHERE cycle_id IS NULL")
        ).scalar_one()
    )
