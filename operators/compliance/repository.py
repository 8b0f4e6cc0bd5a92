"""SQL of the operator's AML monitor (operators/compliance/aml.py): alerts, and the payment and
exchange history the rules count over their windows, one wallet at a time and for a whole
batch."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc.sqlarrays import text_array


def alert_count(session: Session) -> int:
    """How many AML alerts this operator has raised."""
    return int(session.execute(text("SELECT count(*) FROM aml_alerts")).scalar_one())


def recent_alert_exists(session: Session, *, wallet_id: str, rule: str, since: datetime) -> bool:
    return (
        session.execute(
            text(
                "SELECT 1 FROM aml_alerts WHERE wallet_id = :w AND rule = :r "
                "AND created_at >= :since LIMIT 1"
            ),
            {"w": wallet_id, "r": rule, "since": since},
        ).first()
        is not None
    )


def add_alert(
    session: Session,
    *,
    alert_id: uuid.UUID,
    wallet_id: str,
    rule: str,
    amount: int,
    details: dict[str, Any],
    at: datetime,
) -> None:
    session.execute(
        text(
            "INSERT INTO aml_alerts (id, wallet_id, rule, amount, details, created_at) "
            "VALUES (:i, :w, :r, :a, CAST(:d AS jsonb), :at)"
        ),
        {
            "i": alert_id,
            "w": wallet_id,
            "r": rule,
            "a": amount,
            "d": json.dumps(details),
            "at": at,
        },
    )


def add_alerts_and_reports(session: Session, alerts: list[dict[str, Any]]) -> None:
    """Store several alerts and queue their reports to the analysis centre in one statement:
    each alert a dict of id, wallet_id, rule, amount, details, at (ISO) and report (the
    outbox payload, as `repository.enqueue` would queue it under `aml:<id>`)."""
    session.execute(
        text(
            "WITH x AS (SELECT * FROM jsonb_to_recordset(CAST(:alerts AS jsonb)) AS x(id uuid, "
            "wallet_id text, rule text, amount bigint, details jsonb, at timestamptz, "
            "report jsonb)), "
            "a AS (INSERT INTO aml_alerts (id, wallet_id, rule, amount, details, created_at) "
            "SELECT id, wallet_id, rule, amount, details, at FROM x) "
            "INSERT INTO outbox (kind, reference, payload, next_attempt_at) "
            "SELECT 'aml_report', 'aml:' || x.id, x.report, x.at FROM x "
            "ON CONFLICT (kind, reference) DO NOTHING"
        ),
        {"alerts": json.dumps(alerts)},
    )


def exchange_totals(session: Session, *, account_id: int, since: datetime) -> tuple[int, int]:
    """What came into a wallet from outside (deposit loads and cash over the counter) and what
    went back out (to the deposit or in cash over the counter), since `since`."""
    row = session.execute(
        text(
            "SELECT coalesce(sum(p.amount) FILTER (WHERE j.kind IN ('load', 'cash_load')), 0) "
            "AS loaded, coalesce(-sum(p.amount) FILTER "
            "(WHERE j.kind IN ('unload', 'cash_withdrawal')), 0) AS unloaded "
            "FROM postings p JOIN journal_entries j ON j.id = p.entry_id "
            "WHERE p.account_id = :a AND j.created_at >= :since"
        ),
        {"a": account_id, "since": since},
    ).one()
    return int(row.loaded), int(row.unloaded)


def list_alerts(
    session: Session, *, rule: str | None, wallet_id: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = (
        session.execute(
            text(
                "SELECT id, wallet_id, rule, amount, details, created_at FROM aml_alerts "
                "WHERE (CAST(:r AS text) IS NULL OR rule = :r) "
                "AND (CAST(:w AS text) IS NULL OR wallet_id = :w) ORDER BY created_at DESC LIMIT :l"
            ),
            {"r": rule, "w": wallet_id, "l": limit},
        )
        .mappings()
        .all()
    )
    return [dict(r) for r in rows]


# ------------------------------------------------------------------ AML over a batch


# The payment rules over a batch already written to `orders`, in one statement: per payer its
# payments inside the velocity window and its distinct payees inside the fan window; per payer
# with a payment just under a limit, its payments in that band inside the structuring window;
# per local payee its distinct payers inside the fan window (same-operator payers plus
# cross-operator payer aliases; a payment sent back to its payer paid nobody and does not
# count). Of the (wallet, rule, count) at or over their thresholds, only those whose rule has
# not fired for the wallet inside the rule's window are returned. psycopg placeholders.
PAYMENT_CANDIDATES_SQL = (
    "WITH p AS (SELECT wallet_id, count(*) FILTER (WHERE created_at >= %(vs)s) AS velocity, "
    "count(DISTINCT counterparty) FILTER (WHERE created_at >= %(fs)s) AS payees "
    "FROM orders WHERE wallet_id = ANY(%(payers)s::text[]) AND kind = 'payment' "
    "AND status <> 'failed' AND created_at >= least(%(vs)s::timestamptz, %(fs)s::timestamptz) "
    "GROUP BY wallet_id), "
    "s AS (SELECT o.wallet_id, count(*) AS n FROM orders o JOIN unnest(%(s_w)s::text[], "
    "%(s_lo)s::bigint[], %(s_hi)s::bigint[]) AS b(wallet_id, lo, hi) "
    "ON o.wallet_id = b.wallet_id WHERE o.kind = 'payment' AND o.status <> 'failed' "
    "AND o.created_at >= %(ss)s AND o.amount >= b.lo AND o.amount < b.hi "
    "GROUP BY o.wallet_id), "
    "f AS (SELECT payee, sum(n)::bigint AS n FROM ("
    "SELECT counterparty AS payee, count(DISTINCT wallet_id) AS n FROM orders "
    "WHERE counterparty = ANY(%(payees)s::text[]) AND kind = 'payment' "
    "AND status <> 'failed' AND created_at >= %(fs)s GROUP BY counterparty "
    "UNION ALL SELECT payee_wallet, count(DISTINCT payer_alias) FROM inbound_settlements "
    "WHERE payee_wallet = ANY(%(payees)s::text[]) AND kind = 'payment' "
    "AND outcome = 'credited' AND created_at >= %(fs)s GROUP BY payee_wallet) x "
    "GROUP BY payee), "
    "c AS (SELECT wallet_id, 'velocity' AS rule, velocity AS n, %(vs)s::timestamptz AS since "
    "FROM p WHERE velocity >= %(vc)s "
    "UNION ALL SELECT wallet_id, 'fan_out', payees, %(fs)s FROM p WHERE payees >= %(fc)s "
    "UNION ALL SELECT wallet_id, 'structuring', n, %(ss)s FROM s WHERE n >= %(sc)s "
    "UNION ALL SELECT payee, 'fan_in', n, %(fs)s FROM f WHERE n >= %(fc)s) "
    "SELECT c.wallet_id, c.rule, c.n FROM c WHERE NOT EXISTS (SELECT 1 FROM aml_alerts a "
    "WHERE a.wallet_id = c.wallet_id AND a.rule = c.rule AND a.created_at >= c.since)"
)


def payee_fan_in(
    session: Session, *, wallet_ids: list[str], since: datetime, at_least: int
) -> dict[str, int]:
    """Payees among `wallet_ids` paid by at least `at_least` distinct payers since `since`
    (same-operator payers plus cross-operator payer aliases). A payment sent back to its payer
    (the payee at its cap, closed, unknown) paid nobody and does not count."""
    rows = session.execute(
        text(
            "SELECT payee, sum(n) AS n FROM ("
            "SELECT counterparty AS payee, count(DISTINCT wallet_id) AS n FROM orders "
            "WHERE counterparty = ANY(CAST(:w AS text[])) AND kind = 'payment' "
            "AND status <> 'failed' "
            "AND created_at >= :since GROUP BY counterparty "
            "UNION ALL SELECT payee_wallet, count(DISTINCT payer_alias) FROM "
            "inbound_settlements WHERE payee_wallet = ANY(CAST(:w AS text[])) AND kind = 'payment' "
            "AND outcome = 'credited' AND created_at >= :since GROUP BY payee_wallet) x "
            "GROUP BY payee HAVING sum(n) >= :k"
        ),
        {"w": text_array(wallet_ids), "since": since, "k": at_least},
    ).all()
    return {r.payee: int(r.n) for r in rows}


def last_alerts(session: Session, *, wallet_ids: list[str]) -> dict[tuple[str, str], datetime]:
    rows = session.execute(
        text(
            "SELECT wallet_id, rule, max(created_at) AS at FROM aml_alerts "
            "WHERE wallet_id = ANY(CAST(:w AS text[])) GROUP BY wallet_id, rule"
        ),
        {"w": text_array(wallet_ids)},
    ).all()
    return {(r.wallet_id, r.rule): r.at for r in rows}
