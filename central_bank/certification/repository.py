"""Queries of the certification centre: operators, and the balances and live token value
behind their positions."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from central_bank.models import Operator, Token


def operator_by_code(session: Session, code: str) -> Operator | None:
    return session.scalars(select(Operator).where(Operator.code == code)).first()


def operator_by_id(session: Session, operator_id: int) -> Operator | None:
    return session.get(Operator, operator_id)


def operator_exists(session: Session, *, code: str, public_key: str) -> bool:
    found = session.scalar(
        select(func.count())
        .select_from(Operator)
        .where((Operator.code == code) | (Operator.public_key == public_key))
    )
    return bool(found)


def list_operators(session: Session) -> Sequence[Operator]:
    return session.scalars(select(Operator).order_by(Operator.code)).all()


def account_balances(session: Session) -> dict[str, int]:
    rows = session.execute(text("SELECT code, balance FROM accounts")).all()
    return {str(r.code): int(r.balance) for r in rows}


def live_value_by_operator(session: Session) -> dict[int, int]:
    rows = session.execute(
        select(Token.owner_operator_id, func.coalesce(func.sum(Token.amount), 0))
        .where(Token.status == "live")
        .group_by(Token.owner_operator_id)
    ).all()
    return {int(op): int(total) for op, total in rows}
