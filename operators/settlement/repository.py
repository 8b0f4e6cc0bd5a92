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


def tokens_in_delivery(session: Session) -> dict[str, int]:
    """Per payee operator: the value of the tokens it was paid (at the central bank) that this
    operator has not delivered to it yet: single deliveries (`deliver` jobs) and batched ones
    (`rtgs_deliver`) still pending."""
    rows = session.execute(
        text(
            "SELECT payee, coalesce(sum(amount), 0) FROM ("
            "SELECT payload ->> 'payee_operator' AS payee, (t ->> 'amount')::bigint "
            "AS amount FROM outbox, "
            "jsonb_array_elements(payload -> 'body' -> 'payee_tokens') t "
            "WHERE kind = 'deliver' AND status = 'pending' UNION ALL "
            "SELECT payload ->> 'payee_operator', (t ->> 'amount')::bigint FROM outbox, "
            "jsonb_array_elements(payload -> 'items') i, "
            "jsonb_array_elements(i -> 'body' -> 'payee_tokens') t "
            "WHERE kind = 'rtgs_deliver' AND status = 'pending') d GROUP BY 1"
        )
    ).all()
    return {str(payee): int(amount) for payee, amount in rows}
