"""Idempotent operator requests: every request that moves money (reserve funding, issuance,
redemption, split, settlement, paying a clearing obligation) runs once per Idempotency-Key and
is recorded as an `operations` row with its answer; a retry with the same key and body gets
the stored answer, with another body it is refused."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from cbdc.errors import IdempotencyMismatch
from central_bank.errors import OperatorSuspended
from central_bank.models import Operation, Operator


@dataclass(frozen=True)
class Idempotency:
    key: str
    request_hash: str


def run_idempotent(
    session: Session,
    operator: Operator,
    idem: Idempotency,
    run: Callable[[uuid.UUID], tuple[Operation, dict[str, Any]]],
) -> dict[str, Any]:
    """Run an operator request once per Idempotency-Key.

    `run` adds its Operation row (tokens it mints reference it) and returns the response, which
    is stored with the operation: a retry with the same key and body gets it back unchanged;
    the same key with another body is refused. A completed operation is answered even if the
    operator has been suspended since: the answer may have been lost, and refusing it now
    would make the operator undo what the central bank already did."""
    lock_idempotency_key(session, operator.id, idem.key)
    previous = find_operation(session, operator.id, idem.key)
    if previous is not None:
        if previous.request_hash != idem.request_hash:
            raise IdempotencyMismatch(f"Idempotency-Key {idem.key!r} was used for another request")
        return {**previous.response, "replayed": True}
    if operator.status != "active":
        raise OperatorSuspended(f"operator {operator.code} is {operator.status}")
    operation, response = run(uuid.uuid4())
    operation.response = response
    session.flush()
    return {**response, "replayed": False}


def record_operation(
    session: Session,
    op_id: uuid.UUID,
    operator: Operator,
    idem: Idempotency,
    *,
    at: datetime,
    **values: Any,
) -> Operation:
    """Add the Operation row of the request being run by `run_idempotent` (its answer is
    filled in when `run` returns), made `at` (the service's clock); tokens the request mints
    reference its id."""
    op = Operation(
        id=op_id,
        operator_id=operator.id,
        idempotency_key=idem.key,
        request_hash=idem.request_hash,
        response={},
        created_at=at,
        **values,
    )
    session.add(op)
    session.flush()
    return op


# ---------------------------------------------------------------- queries


def lock_idempotency_key(session: Session, operator_id: int, key: str) -> None:
    """Serialise concurrent requests with the same idempotency key (transaction-scoped)."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(:op, hashtext(:key))"), {"op": operator_id, "key": key}
    )


def find_operation(session: Session, operator_id: int, key: str) -> Operation | None:
    return session.scalars(
        select(Operation).where(
            Operation.operator_id == operator_id, Operation.idempotency_key == key
        )
    ).first()
