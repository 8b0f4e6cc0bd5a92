"""What the engine observes after each step, read from the services' databases, and the
cross-tier invariants it checks there.

Cheap checks (every step, every run) compare account balances and token registers:
    per operator   vault tokens == -tokens_held == float + wallets + in transit + offline purses
                   no negative balance on a non-contra account; all balances sum to zero
    central bank   live tokens per operator == its circulation account
                   live tokens == issued - redeemed; all balances sum to zero
    across tiers   live tokens the central bank registers to an operator == tokens in its vault
Full checks (`full=True`: tests, and the end of every run) add the postings scans: every
journal entry balances and every balance equals the sum of its postings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cbdc import ledger
from central_bank.analysis import service as analysis
from operators import repository as repo
from operators.audit import operator_audit
from operators.compliance import repository as aml_repo
from operators.context import OperatorContext
from operators.settlement import repository as settlement_repo
from operators.vault import repository as vault_repo
from simulator.network import SimNetwork


def _operator_snapshot(session: Session, ctx: OperatorContext) -> dict[str, int]:
    kinds = ledger.balances_by_kind(session)
    accounts = repo.account_balances(session, list(ctx.accounts.values()))
    tokens = vault_repo.vault_summary(session)
    negative = repo.negative_balance_count(session)
    alerts = aml_repo.alert_count(session)
    return {
        "deposits": kinds.get("deposit", 0),
        "wallet_balances": kinds.get("wallet", 0),
        "vault_float": int(accounts["vault_float"]),
        "cash_on_hand": int(accounts["cash_on_hand"]),
        "in_transit": kinds.get("in_transit", 0),
        "purse_balances": kinds.get("offline_purse", 0),  # offline devices' purses
        "escrow_balances": kinds.get("escrow", 0),  # escrows (operators/programmable)
        "voucher_balances": kinds.get("voucher", 0),  # vouchers (operators/programmable)
        "fraud_losses": kinds.get("fraud_loss", 0),  # offline double spends carried
        "tokens_held": int(accounts["tokens_held"]),
        "vault_tokens": tokens.get("held_value", 0) + tokens.get("reserved_value", 0),
        "negative_balances": int(negative),
        "sum_of_balances": sum(kinds.values()),
        "aml_alerts_total": int(alerts),
    }


def _central_bank_snapshot(session: Session) -> dict[str, Any]:
    rows = session.execute(text("SELECT code, balance FROM accounts")).all()
    balances: dict[str, int] = {code: int(balance) for code, balance in rows}
    live: dict[str, int] = dict(
        session.execute(
            text(
                "SELECT o.code, coalesce(sum(t.amount), 0) FROM operators o LEFT JOIN tokens t "
                "ON t.owner_operator_id = o.id AND t.status = 'live' GROUP BY o.code"
            )
        ).all()
    )
    settled: dict[str, int] = dict(
        session.execute(
            text(
                "SELECT o.code, coalesce(sum(op.amount), 0) FROM operations op "
                "JOIN operators o ON o.id = op.operator_id WHERE op.kind = 'settlement' "
                "GROUP BY o.code"
            )
        ).all()
    )
    return {"balances": balances, "live": live, "rtgs_settled": settled}


def _tokens_in_delivery(net: SimNetwork) -> dict[str, int]:
    """Per payee operator: tokens the central bank registered to it that have not reached its
    vault yet: RTGS deliveries pending in payers' outboxes, and net pairs settled at the
    central bank that the creditor has not applied."""
    flight: dict[str, int] = {}
    for code in net.codes:
        with net.state(code).factory() as session:
            delivering = settlement_repo.tokens_in_delivery(session)
        for payee, amount in delivering.items():
            flight[payee] = flight.get(payee, 0) + amount
    with net.cb_state.factory() as session:
        if session.execute(text("SELECT to_regclass('clearing_obligations') IS NOT NULL")).scalar():
            rows = session.execute(
                text(
                    "SELECT o.code, coalesce(sum(c.net), 0) FROM clearing_obligations c "
                    "JOIN operators o ON o.id = c.creditor_id WHERE c.status = 'settled' AND "
                    "((c.creditor_id = c.operator_a_id AND c.a_ack IS NULL) OR "
                    "(c.creditor_id = c.operator_b_id AND c.b_ack IS NULL)) GROUP BY o.code"
                )
            ).all()
            for payee, amount in rows:
                flight[payee] = flight.get(payee, 0) + int(amount)
    return flight


def observe(net: SimNetwork, *, full: bool) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(figures per operator and central bank, checks) as of now."""
    checks: list[dict[str, Any]] = []

    def check(name: str, left: int, right: int) -> None:
        checks.append({"name": name, "left": int(left), "right": int(right), "ok": left == right})

    with net.cb_state.factory() as session:
        cb = _central_bank_snapshot(session)
        if full:
            report = analysis.audit(session)
            for c in report["checks"]:
                check(f"central bank: {c['name']}", c["left"], c["right"])
    balances = cb["balances"]
    check("central bank: all balances sum to zero", sum(int(v) for v in balances.values()), 0)
    in_flight = _tokens_in_delivery(net)
    operators: dict[str, dict[str, int]] = {}
    for code in net.codes:
        state = net.state(code)
        with state.factory() as session:
            snap = _operator_snapshot(session, state.ctx)
            if full:
                for c in operator_audit(session, state.ctx)["checks"]:
                    check(c["name"], c["left"], c["right"])
        operators[code] = snap
        live = int(cb["live"].get(code, 0))
        circulation = int(balances.get(f"circulation:{code}", 0))
        held = (
            snap["vault_float"]
            + snap["wallet_balances"]
            + snap["in_transit"]
            + snap["purse_balances"]
            + snap["escrow_balances"]
            + snap["voucher_balances"]
        )
        check(f"{code}: vault tokens == -tokens_held", snap["vault_tokens"], -snap["tokens_held"])
        # (the name predates escrows and vouchers, which `held` counts too)
        check(
            f"{code}: vault tokens == float + wallets + in transit + offline purses",
            snap["vault_tokens"],
            held,
        )
        check(f"{code}: no negative balances", snap["negative_balances"], 0)
        check(f"{code}: all balances sum to zero", snap["sum_of_balances"], 0)
        check(f"{code}: central bank live tokens == circulation account", live, circulation)
        # Tokens minted to an operator but not yet delivered to it (its own outage, or a pair
        # it has not applied yet) are money in flight, not missing.
        check(
            f"{code}: central bank live tokens == tokens in vault + tokens being delivered",
            live,
            snap["vault_tokens"] + in_flight.get(code, 0),
        )
        snap["reserves"] = int(balances.get(f"reserve:{code}", 0))
        snap["cbdc_outstanding"] = circulation
        snap["rtgs_settled_total"] = int(cb["rtgs_settled"].get(code, 0))
    return {"operators": operators, "central_bank": cb}, checks
