"""The analysis centre: pseudonymous AML reports from operators, for the regulator.

Reports carry a wallet id (a pseudonym: it names the operator and an account number, never a
person), the rule that fired, amounts and times. Identities stay with the operators, sealed to
the regulator; the regulator gets one only with a signed disclosure order (operators/disclosure).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.clock import iso, parse_iso
from cbdc.errors import ValidationFailed
from central_bank.models import Operator


def receive_report(session: Session, *, operator: Operator, report: dict[str, Any]) -> dict:
    """Store one report; idempotent on its report_id."""
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
            "occurred_at) VALUES (:i, :o, :w, :r, :a, CAST(:d AS jsonb), :t) "
            "ON CONFLICT (id) DO NOTHING RETURNING id"
        ),
        {
            "i": report_id,
            "o": operator.id,
            "w": report["wallet"],
            "r": report["rule"],
            "a": report["amount"],
            "d": _json(report.get("details", {})),
            "t": occurred,
        },
    ).scalar()
    return {"report_id": str(report_id), "stored": inserted is not None}


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


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
