"""The analysis centre: pseudonymous AML reports from operators, for the regulator; the
money supply; and the central bank's side of the cross-tier audit.

Reports carry a wallet id (a pseudonym: it names the operator and an account number, never a
person), the rule that fired, amounts and times. Identities stay with the operators, sealed to
the regulator; the regulator gets one only with a signed disclosure order
(operators/compliance/disclosure).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from cbdc.clock import iso, parse_iso
from cbdc.errors import ValidationFailed
from central_bank.analysis import repository as repo
from central_bank.certification import repository as certification_repo
from central_bank.certification.service import circulation_code, reserve_code
from central_bank.clearing import stats as clearing
from central_bank.models import Operator


def receive_report(
    session: Session, *, operator: Operator, report: dict[str, Any], now: datetime
) -> dict:
    """Store one report, received `now`; idempotent on its report_id."""
    try:
        report_id = uuid.UUID(report["report_id"])
        occurred = parse_iso(report["occurred_at"])
    except (ValueError, KeyError):
        raise ValidationFailed("report_id must be a UUID and occurred_at ISO 8601") from None
    if not str(report["wallet"]).startswith(operator.code):
        raise ValidationFailed("wallet: an operator reports only its own wallets")
    inserted = session.execute(
        text(
            "INSERT INTO aml_reports (id, operator_id, wallet_pseudonym, rule, amount, details, "
            "occurred_at, received_at) VALUES (:i, :o, :w, :r, :a, CAST(:d AS jsonb), :t, :at) "
            "ON CONFLICT (id) DO NOTHING RETURNING id"
        ),
        {
            "i": report_id,
            "o": operator.id,
            "w": report["wallet"],
            "r": report["rule"],
            "a": report["amount"],
            "d": json.dumps(report.get("details", {})),
            "t": occurred,
            "at": now,
        },
    ).scalar()
    return {"report_id": str(report_id), "stored": inserted is not None}


def list_alerts(
    session: Session,
    *,
    rule: str | None,
    operator: str | None,
    wallet: str | None,
    since: datetime | None,
    limit: int,
) -> list[dict[str, Any]]:
    rows = (
        session.execute(
            text(
                """
SELECT r.id, o.code AS operator, r.wallet_pseudonym, r.rule, r.amount, r.details,
       r.occurred_at, r.received_at
FROM aml_reports r JOIN operators o ON o.id = r.operator_id
WHERE (CAST(:rule AS text) IS NULL OR r.rule = :rule)
  AND (CAST(:op AS text) IS NULL OR o.code = :op)
  AND (CAST(:wallet AS text) IS NULL OR r.wallet_pseudonym = :wallet)
  AND (CAST(:since AS timestamptz) IS NULL OR r.occurred_at >= :since)
ORDER BY r.occurred_at DESC
LIMIT :limit
"""
            ),
            {"rule": rule, "op": operator, "wallet": wallet, "since": since, "limit": limit},
        )
        .mappings()
        .all()
    )
    return [
        {
            "report_id": str(r["id"]),
            "operator": r["operator"],
            "wallet": r["wallet_pseudonym"],
            "rule": r["rule"],
            "amount": int(r["amount"]),
            "details": r["details"],
            "occurred_at": iso(r["occurred_at"]),
            "received_at": iso(r["received_at"]),
        }
        for r in rows
    ]


def alert_summary(session: Session) -> dict[str, int]:
    rows = session.execute(text("SELECT rule, count(*) AS n FROM aml_reports GROUP BY rule")).all()
    return {str(r.rule): int(r.n) for r in rows}


# ---------------------------------------------------------------- money supply and audit


def money_supply(session: Session, *, only_operator: str | None = None) -> dict[str, Any]:
    """Network totals; per operator lines for all (the central bank, the regulator) or, with
    `only_operator`, that operator's own line only: an operator never learns another's
    reserves or circulation."""
    operators = certification_repo.list_operators(session)
    balances = certification_repo.account_balances(session)
    ops = repo.operations_summary(session)
    by_operator = [
        {
            "operator": o.code,
            "circulation": balances.get(circulation_code(o.code), 0),
            "reserves": balances.get(reserve_code(o.code), 0),
        }
        for o in operators
    ]
    return {
        "digital_currency_outstanding": sum(o["circulation"] for o in by_operator),
        "reserves_total": sum(o["reserves"] for o in by_operator),
        "live_tokens": repo.live_token_count(session),
        "operations": {k: {"count": n, "amount": a} for k, (n, a) in ops.items()},
        "by_operator": [
            o for o in by_operator if only_operator is None or o["operator"] == only_operator
        ],
        "clearing": clearing.clearing_position(session),
    }


def audit(session: Session) -> dict[str, Any]:
    """The central bank's side of the cross-tier invariants."""
    operators = certification_repo.list_operators(session)
    balances = certification_repo.account_balances(session)
    live = certification_repo.live_value_by_operator(session)
    flows = repo.postings_total_by_kind(session, "circulation:")
    reserve_flows = repo.postings_total_by_kind(session, "reserve:")
    issued = flows.get("issuance", 0)
    redeemed = -flows.get("redemption", 0)
    live_total = sum(live.values())
    checks = []

    def check(name: str, left: int, right: int) -> None:
        checks.append({"name": name, "left": left, "right": right, "ok": left == right})

    check("live tokens == issued - redeemed", live_total, issued - redeemed)
    check(
        "issued - redeemed == reserves debited - reserves credited",
        issued - redeemed,
        -reserve_flows.get("issuance", 0) - reserve_flows.get("redemption", 0),
    )
    check("settlements net to zero", flows.get("settlement", 0), 0)
    check("net settlements net to zero", flows.get("net_settlement", 0), 0)
    for name, left, right in clearing.audit_checks(session):
        check(name, left, right)
    per_operator = {}
    for o in operators:
        circulation = balances.get(circulation_code(o.code), 0)
        check(f"{o.code}: live tokens == circulation account", live.get(o.id, 0), circulation)
        per_operator[o.code] = {
            "live_token_value": live.get(o.id, 0),
            "circulation": circulation,
            "reserves": balances.get(reserve_code(o.code), 0),
        }
    integrity = ledger.ledger_integrity(session)
    check("ledger: unbalanced entries", integrity["unbalanced_entries"], 0)
    check("ledger: balances equal postings", integrity["balance_drift_accounts"], 0)
    check("ledger: no negative balances", integrity["negative_balances"], 0)
    check("ledger: all balances sum to zero", integrity["sum_of_all_balances"], 0)
    return {
        "issued": issued,
        "redeemed": redeemed,
        "live_token_value": live_total,
        "operators": per_operator,
        "checks": checks,
        "ok": all(c["ok"] for c in checks),
    }
