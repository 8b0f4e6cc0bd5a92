"""Property: for any sequence of loads, unloads and payments (same- and cross-operator), each
operation either takes effect exactly as a simple model says or is refused with the code the
model predicts, nothing else moves, and money is conserved across the tiers.

Each example opens fresh wallets on one network (the database is real, so examples are few).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cbdc.http import RemoteError

YUAN = 100
LIMITS = {  # class: (balance cap, single payment, daily), minor units; None = unlimited
    "I": (None, None, None),
    "II": (500_000 * YUAN, 50_000 * YUAN, 100_000 * YUAN),
    "IV": (10_000 * YUAN, 2_000 * YUAN, 5_000 * YUAN),
}
LAYOUT = [("BKA1", "IV"), ("BKA1", "II"), ("BKB1", "IV"), ("BKB1", "I")]
DEPOSIT = 15_000 * YUAN
LOAD = 5_000 * YUAN  # loaded when the wallet is opened


@dataclass
class Model:
    code: str
    wallet_class: str
    balance: int = LOAD
    deposit: int = DEPOSIT - LOAD
    spent_all: int = 0  # accepted payments, including ones later returned
    spent_net: int = 0  # accepted payments that were not returned
    history: list[str] = field(default_factory=list)

    @property
    def cap(self) -> int | None:
        return LIMITS[self.wallet_class][0]


AMOUNTS = st.one_of(
    st.integers(min_value=1, max_value=5_000),
    st.integers(min_value=1, max_value=300_000),
    st.integers(min_value=150_000, max_value=1_200_000),
)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("pay"), st.integers(0, 3), AMOUNTS, st.integers(1, 3)),
        st.tuples(st.just("load"), st.integers(0, 3), AMOUNTS),
        st.tuples(st.just("unload"), st.integers(0, 3), AMOUNTS),
        st.tuples(st.just("pay"), st.integers(0, 3), AMOUNTS, st.integers(1, 3)),
    ),
    min_size=1,
    max_size=10,
)


def audit(network: Any) -> None:
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    held = 0
    for code in ("BKA1", "BKB1"):
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        assert report["in_transit_total"] == 0 and report["outbox"].get("pending", 0) == 0
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]
        held += report["vault_float"] + report["wallets"] + report["in_transit_total"]
    assert held == central["issued"] - central["redeemed"] == central["live_token_value"]


def expected_load(m: Model, amount: int) -> str | None:
    if m.deposit < amount:
        return "insufficient_funds"
    if m.cap is not None and m.balance + amount > m.cap:
        return "balance_cap_exceeded"
    return None


def expected_payment(payer: Model, payee: Model, amount: int) -> set[str | None]:
    """The outcomes the rules allow: None (accepted) or a refusal code."""
    _cap, single, daily = LIMITS[payer.wallet_class]
    if single is not None and amount > single:
        return {"single_payment_limit_exceeded"}
    if daily is not None:
        if payer.spent_net + amount > daily:
            return {"daily_limit_exceeded"}
        if payer.spent_all + amount > daily:
            # whether a returned payment still counts against the day is the operator's call
            return {"daily_limit_exceeded", *expected_after_limits(payer, payee, amount)}
    return expected_after_limits(payer, payee, amount)


def expected_after_limits(payer: Model, payee: Model, amount: int) -> set[str | None]:
    if payer.balance < amount:
        return {"insufficient_funds"}
    if payer.code == payee.code and payee.cap is not None and payee.balance + amount > payee.cap:
        return {"payee_balance_cap_exceeded"}
    return {None}


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(operations=OPERATIONS)
def test_money_is_conserved_for_any_sequence_of_operations(
    network: Any, operations: list[tuple]
) -> None:
    wallets = [
        network.open_wallet(code, wallet_class=cls, deposit=DEPOSIT, load=LOAD)
        for code, cls in LAYOUT
    ]
    models = [Model(code, cls) for code, cls in LAYOUT]

    for op in operations:
        kind, index, amount = op[0], op[1], op[2]
        wallet, m = wallets[index], models[index]
        outcome: str | None
        if kind in ("load", "unload"):
            expected = (
                expected_load(m, amount)
                if kind == "load"
                else ("insufficient_funds" if m.balance < amount else None)
            )
            try:
                getattr(wallet, kind)(amount)
                outcome = None
            except RemoteError as exc:
                outcome = exc.code
            assert outcome == expected, (op, m)
            event(f"{kind}: {outcome or 'ok'}")
            if outcome is None:
                sign = 1 if kind == "load" else -1
                m.balance += sign * amount
                m.deposit -= sign * amount
        else:
            payee_index = (index + op[3]) % len(wallets)
            payee, pm = wallets[payee_index], models[payee_index]
            allowed = expected_payment(m, pm, amount)
            try:
                receipt = wallet.pay(payee.wallet_id, amount)
                outcome = None
            except RemoteError as exc:
                outcome = exc.code
            assert outcome in allowed, (op, m, pm, outcome, allowed)
            event(f"pay: {outcome or 'ok'}")
            if outcome is None:
                network.run_jobs()
                final = wallet.payment(receipt.payment_id).status
                cross = m.code != pm.code
                returned = cross and pm.cap is not None and pm.balance + amount > pm.cap
                assert final == (
                    "returned" if returned else "delivered" if cross else "completed"
                ), (op, final)
                m.spent_all += amount
                if not returned:
                    m.spent_net += amount
                    m.balance -= amount
                    pm.balance += amount

    network.run_jobs()
    for wallet, m in zip(wallets, models, strict=True):
        info = wallet.balance()
        assert (info.balance, info.deposit_balance) == (m.balance, m.deposit), m
    # money moved only among these wallets and their deposits
    assert sum(m.balance + m.deposit for m in models) == DEPOSIT * len(models)
    audit(network)
