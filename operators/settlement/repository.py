"""SQL of inbound settlements: cross-operator payments delivered here, one row per settlement
id, so a redelivery is answered from it."""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.orm import Session

from operators.models import InboundSettlement


def get_inbound(session: Session, settlement_id: uuid.UUID) -> InboundSettlement | None:
    return session.get(InboundSettlement, settlement_id)


def add_inbound(session: Session, inbound: InboundSettlement) -> None:
    session.add(inbound)
    session.flush()


def lock_inbound_key(session: Session, settlement_id: str) -> None:
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": settlement_id})
