"""Deferred net settlement, steps 3 and 4 (see `operators.settlement.netting`): the obligations
of a closed clearing cycle noted here, and the debtor paying its net with vault tokens (or
recording a liquidity shortfall and obtaining issuance)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.tokens import verify_document
from operators import repository as repo
from operators.context import OperatorContext
from operators.errors import BadCentralBankDocument
from operators.models import OutboxJob
from operators.vault import repository as vault_repo
from operators.vault import service as vault

log = logging.getLogger(__name__)


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
                now=ctx.now(),
                kind="net_pay",
                reference=reference,
                payload={"obligation_id": oid, "net": ob["net"], "creditor": ob["creditor"]},
            )
        elif ob["status"] == "settled":
            repo.enqueue(
                session,
                now=ctx.now(),
                kind="net_apply",
                reference=reference,
                payload={"obligation_id": oid},
            )
        else:
            continue
        references.append(reference)
    return references


# ------------------------------------------------------------------ 4. pay (debtor)


def prepare_payment(session: Session, *, job: OutboxJob, now: datetime) -> list[str] | None:
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
        repo.finish_job(session, job.id, now=now, error=f"already {status}")
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
    return vault.queue_issuance(
        session, missing, reference=f"{prefix}{job.attempts}", now=ctx.now()
    )


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
        now=ctx.now(),
        kind="net_apply",
        reference=job.reference,
        payload={"obligation_id": job.payload["obligation_id"]},
    )
    repo.finish_job(session, job.id, now=ctx.now())


def release_payment(session: Session, *, job: OutboxJob, reason: str, now: datetime) -> None:
    locked = repo.lock_job(session, job.id)
    if locked is None or locked.status != "pending":
        return
    vault_repo.release_tokens(session, job.reference)
    repo.finish_job(session, job.id, now=now, error=reason)
