"""SQL of the operator's vault: the central-bank tokens it holds, reserves, releases and gives
up, and their summary."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from operators.models import VaultToken


def add_vault_tokens(session: Session, tokens: Sequence[dict[str, Any]], *, via: str) -> int:
    if not tokens:
        return 0
    result = session.execute(
        text(
            "INSERT INTO vault_tokens (serial, amount, issued_at, signature, received_via) "
            "VALUES (:serial, :amount, :issued_at, :signature, :via) ON CONFLICT DO NOTHING"
        ),
        [
            {
                "serial": t["serial"],
                "amount": t["amount"],
                "issued_at": t["issued_at"],
                "signature": t["signature"],
                "via": via,
            }
            for t in tokens
        ],
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def reserved_tokens(session: Session, reference: str) -> list[VaultToken]:
    return list(
        session.scalars(
            select(VaultToken).where(
                VaultToken.reserved_for == reference, VaultToken.status == "reserved"
            )
        ).all()
    )


def smallest_covering_token(session: Session, amount: int) -> VaultToken | None:
    return session.scalars(
        select(VaultToken)
        .where(VaultToken.status == "held", VaultToken.amount >= amount)
        .order_by(VaultToken.amount, VaultToken.serial)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def held_tokens_for_update(session: Session, limit: int = 1000) -> list[VaultToken]:
    """Largest held tokens first, skipping those another transaction is reserving."""
    return list(
        session.scalars(
            select(VaultToken)
            .where(VaultToken.status == "held")
            .order_by(VaultToken.amount.desc(), VaultToken.serial)
            .limit(limit)
            .with_for_update(skip_locked=True)
        ).all()
    )


def reserve_tokens(session: Session, serials: Sequence[uuid.UUID], reference: str) -> None:
    session.execute(
        update(VaultToken)
        .where(VaultToken.serial.in_(serials), VaultToken.status == "held")
        .values(status="reserved", reserved_for=reference)
    )


def release_tokens(session: Session, reference: str) -> None:
    session.execute(
        update(VaultToken)
        .where(VaultToken.reserved_for == reference, VaultToken.status == "reserved")
        .values(status="held", reserved_for=None)
    )


def tokens_gone(session: Session, serials: Sequence[str], at: datetime) -> None:
    session.execute(
        update(VaultToken)
        .where(VaultToken.serial.in_([uuid.UUID(s) for s in serials]))
        .values(status="gone", reserved_for=None, released_at=at)
    )


def vault_summary(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(
            VaultToken.status, func.count(), func.coalesce(func.sum(VaultToken.amount), 0)
        ).group_by(VaultToken.status)
    ).all()
    out: dict[str, int] = {}
    for status, count, total in rows:
        out[f"{status}_count"] = int(count)
        out[f"{status}_value"] = int(total)
    return out
