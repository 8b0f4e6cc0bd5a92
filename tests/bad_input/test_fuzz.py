"""Fuzzed payment orders never get a 500; a signed order round-trips."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey
from tests.bad_input.helpers import assert_problem, valid_order
from wallets.orders import sign_order

# ------------------------------------------------------------------ fuzz

JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _field_strategies(p: dict[str, Any]) -> dict[str, Any]:
    now = iso(utcnow())
    ids = [p["payer"].wallet_id, p["payee"].wallet_id, p["remote"].wallet_id]
    return {
        "type": st.one_of(st.just("payment"), JUNK),
        "payer": st.one_of(st.just(ids[0]), st.sampled_from(ids), JUNK),
        "payee": st.one_of(
            st.sampled_from(ids[1:]),
            st.sampled_from(ids),
            st.text(alphabet="BKA10123456789", min_size=20, max_size=20),
            JUNK,
        ),
        "amount": st.one_of(
            st.integers(min_value=1, max_value=5_000),
            st.integers(min_value=-(2**64), max_value=2**64),
            JUNK,
        ),
        "currency": st.one_of(st.just("CNY"), st.sampled_from(["USD", "cny", "CN"]), JUNK),
        "nonce": st.one_of(st.text(min_size=8, max_size=64), JUNK),
        "created_at": st.one_of(st.just(now), st.text(max_size=40), JUNK),
        "memo": st.one_of(st.text(max_size=150), JUNK),
    }


def test_fuzz_payment_orders_never_500(parties: dict[str, Any]) -> None:
    p = parties
    fields = _field_strategies(p)
    outcomes: dict[int, int] = {}

    @settings(
        max_examples=50,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        order = valid_order(
            p,
            payee=data.draw(st.sampled_from([p["payee"].wallet_id, p["remote"].wallet_id])),
            amount=data.draw(st.integers(min_value=1, max_value=5_000)),
        )
        if data.draw(st.booleans()):
            order["memo"] = data.draw(st.text(max_size=140))
        for _ in range(data.draw(st.integers(min_value=0, max_value=3))):
            field = data.draw(st.sampled_from([*fields, "extra"]))
            if field == "extra":
                order[data.draw(st.text(min_size=1, max_size=5))] = data.draw(JUNK)
            elif data.draw(st.booleans()):
                order[field] = data.draw(fields[field])
            else:
                order.pop(field, None)
        key = p["payer"].key if data.draw(st.integers(0, 9)) else SigningKey.generate()
        try:
            signature = key.sign_json(order)
        except (TypeError, ValueError):  # unserialisable junk: send a dummy signature
            signature = "A" * 86
        response = p["op"].send_json(
            "POST", "/v1/payments", {"order": order, "signature": signature}
        )
        outcomes[response.status_code] = outcomes.get(response.status_code, 0) + 1
        if response.status_code != 201:
            assert_problem(response)

    run()
    assert all(status < 500 for status in outcomes), outcomes
    assert outcomes.get(201, 0) > 0 and len(outcomes) > 1, outcomes
    net = p["network"]
    net.run_jobs()
    central = net.admin.request("GET", "/v1/admin/audit")
    assert central["ok"]
    for code in ("BKA1", "BKB1"):
        report = net.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], report["checks"]
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]


def test_signed_order_roundtrip_is_accepted(parties: dict[str, Any]) -> None:
    """Control for the tests above: the same client code with valid values succeeds."""
    receipt = parties["payer"].submit(sign_order(parties["payer"].key, valid_order(parties)))
    assert receipt.status == "completed"
