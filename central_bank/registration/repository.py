"""Queries of the registration centre: the token registry."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from cbdc.sqlarrays import any_array, int_array, text_array
from central_bank.models import Token


def lock_tokens(session: Session, serials: Sequence[uuid.UUID]) -> list[Token]:
    """Lock the named tokens in ascending serial order (deadlock-free)."""
    return list(
        session.scalars(
            select(Token)
            .where(Token.serial.in_(sorted(serials)))
            .order_by(Token.serial)
            .with_for_update()
        ).all()
    )


def add_tokens(session: Session, tokens: Sequence[Token]) -> None:
    session.add_all(tokens)
    session.flush()


def mark_tokens(
    session: Session, serials: Sequence[uuid.UUID], *, status: str, by: uuid.UUID, at: datetime
) -> None:
    session.execute(
        update(Token)
        .where(Token.serial.in_(serials), Token.status == "live")
        .values(status=status, spent_by=by, spent_at=at)
    )


def get_token(session: Session, serial: uuid.UUID) -> Token | None:
    return session.get(Token, serial)


def insert_tokens(session: Session, tokens: Sequence[Token]) -> None:
    """Insert new tokens in one statement (no ORM unit of work): the batch paths' minting."""
    if not tokens:
        return
    session.execute(
        text(
            "INSERT INTO tokens (serial, amount, owner_operator_id, status, issued_at, "
            "signature, created_by) "
            "SELECT t.serial, t.amount, t.owner, 'live', t.issued, t.sig, t.by "
            "FROM unnest(CAST(:serials AS uuid[]), CAST(:amounts AS bigint[]), "
            "CAST(:owners AS int[]), CAST(:issued AS timestamptz[]), CAST(:sigs AS text[]), "
            "CAST(:bys AS uuid[])) AS t(serial, amount, owner, issued, sig, by)"
        ),
        {
            "serials": any_array([t.serial for t in tokens]),
            "amounts": int_array(int(t.amount) for t in tokens),
            "owners": int_array(int(t.owner_operator_id) for t in tokens),
            "issued": text_array([t.issued_at.isoformat() for t in tokens]),
            "sigs": text_array([t.signature for t in tokens]),
            "bys": any_array([t.created_by for t in tokens]),
        },
    )
