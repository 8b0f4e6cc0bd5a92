"""Paying an obligation: the debtor pays the net with vault tokens; the central bank mints
the net to the creditor and the change to the debtor and signs the pair-settlement receipt."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.tokens import sign_document
from central_bank.certification import repository as certification_repo
from central_bank.certification.service import circulation_code
from central_bank.clearing.cycles import pair_receipt_document
from central_bank.clearing.obligations import lock_obligation, submission_ids
from central_bank.clearing.submissions import parse_canonical_uuid
from central_bank.context import CentralBank
from central_bank.errors import AmountMismatch, NotDebtor, ObligationSettled, UnknownObligation
from central_bank.models import Operation, Operator
from central_bank.operations import Idempotency, record_operation, run_idempotent
from central_bank.registration import repository as registry
from central_bank.registration.service import lock_spendable_inputs, mint_tokens


def pay(
    session: Session,
    cb: CentralBank,
    *,
    operator: Operator,
    obligation_id: str,
    serials: Sequence[str],
    idem: Idempotency,
    now: datetime,
) -> dict[str, Any]:
    """The debtor pays an obligation's net with the named tokens (idempotent on the key)."""
    oid = parse_canonical_uuid(obligation_id, "obligation_id")

    def run(op_id: uuid.UUID) -> tuple[Operation, dict[str, Any]]:
        row = lock_obligation(session, oid)
        if row is None or operator.id not in (row.operator_a_id, row.operator_b_id):
            raise UnknownObligation(f"no obligation {obligation_id}")
        if row.status != "pending":
            raise ObligationSettled(f"obligation {obligation_id} is already settled")
        if row.debtor_id != operator.id:
            raise NotDebtor(f"{operator.code} is not the debtor of obligation {obligation_id}")
        creditor = certification_repo.operator_by_id(session, row.creditor_id)
        assert creditor is not None
        net = int(row.net)
        tokens, total = lock_spendable_inputs(session, operator, serials)
        if total < net:
            raise AmountMismatch(f"tokens worth {cb.money(total)} cannot pay {cb.money(net)}")
        debtor_acc = ledger.account_id(session, circulation_code(operator.code))
        creditor_acc = ledger.account_id(session, circulation_code(creditor.code))
        assert debtor_acc is not None and creditor_acc is not None
        ledger.lock_accounts(session, [debtor_acc, creditor_acc])
        reference = f"net:{oid}"
        entry = ledger.post_many(
            session,
            [("net_settlement", reference, [(debtor_acc, -net), (creditor_acc, net)])],
            at=now,
        )[0]
        op = record_operation(
            session,
            op_id,
            operator,
            idem,
            at=now,
            kind="net_settlement",
            amount=net,
            counterparty_id=creditor.id,
            reference=reference,
            entry_id=entry,
        )
        registry.mark_tokens(session, [t.serial for t in tokens], status="spent", by=op_id, at=now)
        creditor_rows, creditor_wire = mint_tokens(
            cb, owner=creditor, amount=net, operation_id=op_id, chunked=True, now=now
        )
        registry.add_tokens(session, creditor_rows)
        change_wire: list[dict[str, Any]] = []
        if total > net:
            rows, change_wire = mint_tokens(
                cb, owner=operator, amount=total - net, operation_id=op_id, chunked=False, now=now
            )
            registry.add_tokens(session, rows)
        codes = {o.id: o.code for o in (operator, creditor)}  # the pair: debtor and creditor
        document = pair_receipt_document(
            obligation_id=oid,
            cycle_id=int(row.cycle_id),
            pair={
                "a": row.operator_a_id,
                "b": row.operator_b_id,
                "gab": int(row.gross_ab),
                "gba": int(row.gross_ba),
                "iab": int(row.items_ab),
                "iba": int(row.items_ba),
                "dab": row.digest_ab,
                "dba": row.digest_ba,
                "net": net,
                "debtor": row.debtor_id,
                "creditor": row.creditor_id,
            },
            codes=codes,
            submissions_ab=submission_ids(session, oid, row.operator_a_id),
            submissions_ba=submission_ids(session, oid, row.operator_b_id),
            inputs=[str(t.serial) for t in tokens],
            creditor_tokens=[t["serial"] for t in creditor_wire],
            change_tokens=[t["serial"] for t in change_wire],
            settled_at=now,
        )
        receipt = sign_document(cb.key, document)
        session.execute(
            text(
                "UPDATE clearing_obligations SET status = 'settled', operation_id = :op, "
                "receipt = CAST(:r AS jsonb), creditor_tokens = CAST(:t AS jsonb), "
                "settled_at = :at WHERE id = :i"
            ),
            {
                "op": op_id,
                "r": json.dumps(receipt),
                "t": json.dumps(creditor_wire),
                "at": now,
                "i": oid,
            },
        )
        return op, {"obligation_id": str(oid), "receipt": receipt, "change": change_wire}

    return run_idempotent(session, operator, idem, run)
