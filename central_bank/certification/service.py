"""The certification centre: operators, their certificates and keys, quotas, reserves and
positions.

Per operator the central bank's ledger has a `reserve:<code>` account (the operator's reserves,
never negative) and a `circulation:<code>` account (value of the live tokens registered to it);
reserves come from `reserve_funding`, the only account allowed to go negative.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.clock import iso
from cbdc.tokens import sign_document
from central_bank.certification import repository as repo
from central_bank.context import CentralBank
from central_bank.errors import OperatorExists, UnknownOperator
from central_bank.models import Operation, Operator
from central_bank.operations import Idempotency, record_operation, run_idempotent

RESERVE_FUNDING = "reserve_funding"


def reserve_code(code: str) -> str:
    return f"reserve:{code}"


def circulation_code(code: str) -> str:
    return f"circulation:{code}"


def bootstrap(session: Session) -> None:
    ledger.ensure_account(session, code=RESERVE_FUNDING, kind="funding", allow_negative=True)


# ---------------------------------------------------------------- certification centre


def register_operator(
    session: Session,
    cb: CentralBank,
    *,
    code: str,
    name: str,
    public_key: str,
    quota: int,
    now: datetime,
) -> Operator:
    if repo.operator_exists(session, code=code, public_key=public_key):
        raise OperatorExists(f"operator {code} or its key is already registered")
    certificate = {
        "type": "operator-certificate",
        "operator": code,
        "name": name,
        "public_key": public_key,
        "issued_at": iso(now),
        "issuer": "central_bank",
    }
    operator = Operator(
        code=code,
        name=name,
        public_key=public_key,
        certificate=certificate,
        certificate_signature=cb.key.sign_json(certificate),
        quota=quota,
        status="active",
        created_at=now,
    )
    session.add(operator)
    session.flush()
    ledger.ensure_account(session, code=reserve_code(code), kind="reserve", operator_id=operator.id)
    ledger.ensure_account(
        session, code=circulation_code(code), kind="circulation", operator_id=operator.id
    )
    return operator


def require_operator(session: Session, code: str) -> Operator:
    operator = repo.operator_by_code(session, code)
    if operator is None:
        raise UnknownOperator(f"no operator {code}")
    return operator


def set_quota(session: Session, *, code: str, quota: int) -> Operator:
    operator = require_operator(session, code)
    operator.quota = quota
    session.flush()
    return operator


def operator_position(session: Session, operator: Operator) -> dict[str, Any]:
    balances = repo.account_balances(session)
    live = repo.live_value_by_operator(session).get(operator.id, 0)
    return {
        "operator": operator.code,
        "name": operator.name,
        "status": operator.status,
        "reserves": balances.get(reserve_code(operator.code), 0),
        "circulation": balances.get(circulation_code(operator.code), 0),
        "live_token_value": live,
        "quota": operator.quota,
    }


def fund_reserves(
    session: Session,
    cb: CentralBank,
    *,
    operator: Operator,
    amount: int,
    idem: Idempotency,
    now: datetime,
) -> dict[str, Any]:
    """Credit an operator's reserve account (the operator deposits reserves, e.g. by transfer)."""

    def run(op_id: uuid.UUID) -> tuple[Operation, dict[str, Any]]:
        funding = ledger.account_id(session, RESERVE_FUNDING)
        reserve = ledger.account_id(session, reserve_code(operator.code))
        assert funding is not None and reserve is not None
        entry = ledger.post_many(
            session,
            [("reserve_funding", str(op_id), [(funding, -amount), (reserve, amount)])],
            at=now,
        )[0]
        doc = {
            "kind": "reserve_funding",
            "operation_id": str(op_id),
            "operator": operator.code,
            "amount": amount,
            "at": iso(now),
        }
        op = record_operation(
            session,
            op_id,
            operator,
            idem,
            at=now,
            kind="reserve_funding",
            amount=amount,
            entry_id=entry,
        )
        return op, {
            "operation_id": str(op_id),
            "amount": amount,
            "receipt": sign_document(cb.key, doc),
        }

    return run_idempotent(session, operator, idem, run)
