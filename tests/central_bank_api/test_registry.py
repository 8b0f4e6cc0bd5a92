"""The token registry as an operator sees it: issuance, redemption with change, splitting,
RTGS settlement, double-spend and ownership refusals, idempotent retries."""

from __future__ import annotations

import uuid
from typing import Any

from cbdc.crypto import SigningKey
from cbdc.tokens import verify_document, verify_token
from tests.central_bank_api.helpers import (
    RESERVES,
    cb_audit_ok,
    idem,
    issue,
    operator_client,
    position,
    refused,
    token_info,
)


def test_issuance_debits_reserves_and_mints_signed_tokens(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    cb_public = network.cb_key.public_key
    start = position(bka)
    assert start["reserves"] == RESERVES and start["circulation"] == 0

    small = issue(bka, 123_45)
    assert small["replayed"] is False
    assert small["amount"] == 123_45
    assert len(small["tokens"]) == 1
    token = small["tokens"][0]
    assert token["amount"] == 123_45 and token["currency"] == "CNY"
    assert verify_token(cb_public, token)
    assert not verify_token(cb_public, {**token, "amount": 999_99})
    assert not verify_token(SigningKey.generate().public_key, token)
    assert verify_document(cb_public, small["receipt"])
    assert small["receipt"]["document"]["serials"] == [token["serial"]]

    # above max_token_amount (1,000,000.00) the issuance is minted in several tokens
    big_amount = 2_500_000_00
    big = issue(bka, big_amount)
    assert sorted(t["amount"] for t in big["tokens"]) == [500_000_00, 1_000_000_00, 1_000_000_00]
    assert all(verify_token(cb_public, t) for t in big["tokens"])
    assert sum(t["amount"] for t in big["tokens"]) == big_amount

    after = position(bka)
    total = 123_45 + big_amount
    assert after["reserves"] == RESERVES - total
    assert after["circulation"] == total
    assert after["live_token_value"] == total
    for t in [token, *big["tokens"]]:
        info = token_info(network, t["serial"])
        assert info == {
            "serial": t["serial"],
            "amount": t["amount"],
            "status": "live",
            "owner": "BKA1",
            "issued_at": t["issued_at"],
        }
    # the other operator is untouched
    assert position(operator_client(network, "BKB1"))["reserves"] == RESERVES

    report = cb_audit_ok(network)
    assert report["issued"] == total and report["redeemed"] == 0
    assert report["operators"]["BKA1"]["live_token_value"] == total
    supply = bka.request("GET", "/v1/stats/money-supply")
    assert supply["digital_currency_outstanding"] == total
    assert supply["operations"]["issuance"] == {"count": 2, "amount": total}


def test_issuance_refusals_leave_no_partial_write(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    before = position(bka)
    key = idem()
    refused(lambda: issue(bka, RESERVES + 1, key), 422, "insufficient_reserves")
    assert position(bka) == before

    network.admin.request("PUT", "/v1/admin/operators/BKA1/quota", {"quota": 1_000_00})
    assert issue(bka, 600_00)["amount"] == 600_00
    refused(lambda: issue(bka, 400_01), 422, "issuance_quota_exceeded")
    now = position(bka)
    assert now["circulation"] == 600_00 and now["reserves"] == RESERVES - 600_00
    assert now["quota"] == 1_000_00
    # exactly up to the quota is allowed
    issue(bka, 400_00)
    refused(lambda: issue(bka, 1), 422, "issuance_quota_exceeded")

    # the refused request stored nothing under its key: once reserves suffice it goes through
    network.admin.request(
        "POST", "/v1/admin/operators/BKA1/reserves", {"amount": 5}, idempotency_key=idem()
    )
    network.admin.request("PUT", "/v1/admin/operators/BKA1/quota", {"quota": 10**15})
    reserves = position(bka)["reserves"]
    done = issue(bka, reserves, key)
    assert done["replayed"] is False and done["amount"] == reserves
    assert position(bka)["reserves"] == 0
    refused(lambda: issue(bka, 1), 422, "insufficient_reserves")

    report = cb_audit_ok(network)
    assert report["issued"] == 1_000_00 + reserves
    supply = network.admin.request("GET", "/v1/stats/money-supply")
    assert supply["operations"]["issuance"]["count"] == 3


def test_redemption_returns_change_and_credits_reserves(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    token = issue(bka, 1_000_00)["tokens"][0]
    refused(
        lambda: bka.request(
            "POST",
            "/v1/redemption",
            {"serials": [token["serial"]], "amount": 1_000_01},
            idempotency_key=idem(),
        ),
        422,
        "amount_mismatch",
    )
    assert token_info(network, token["serial"])["status"] == "live"

    result = bka.request(
        "POST",
        "/v1/redemption",
        {"serials": [token["serial"]], "amount": 300_00},
        idempotency_key=idem(),
    )
    assert result["amount"] == 300_00
    assert len(result["change"]) == 1
    change = result["change"][0]
    assert change["amount"] == 700_00
    assert verify_token(network.cb_key.public_key, change)
    assert verify_document(network.cb_key.public_key, result["receipt"])
    assert result["receipt"]["document"]["inputs"] == [token["serial"]]
    assert token_info(network, token["serial"])["status"] == "redeemed"
    assert token_info(network, change["serial"])["status"] == "live"
    pos = position(bka)
    assert pos["reserves"] == RESERVES - 700_00
    assert pos["circulation"] == pos["live_token_value"] == 700_00

    # redeem the change exactly: no change token
    exact = bka.request(
        "POST",
        "/v1/redemption",
        {"serials": [change["serial"]], "amount": 700_00},
        idempotency_key=idem(),
    )
    assert exact["change"] == []
    assert position(bka)["reserves"] == RESERVES
    report = cb_audit_ok(network)
    assert report["issued"] == 1_000_00 and report["redeemed"] == 1_000_00
    assert report["live_token_value"] == 0


def test_split_spends_inputs_and_mints_outputs(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    tokens = issue(bka, 1_000_00)["tokens"] + issue(bka, 500)["tokens"]
    serials = [t["serial"] for t in tokens]
    refused(
        lambda: bka.request(
            "POST",
            "/v1/tokens/split",
            {"serials": serials, "outputs": [1_000_00, 499]},
            idempotency_key=idem(),
        ),
        422,
        "amount_mismatch",
    )
    refused(
        lambda: bka.request(
            "POST",
            "/v1/tokens/split",
            {"serials": serials, "outputs": [1_000_00, 500, 0]},
            idempotency_key=idem(),
        ),
        422,
        "validation_error",
    )
    refused(
        lambda: bka.request(
            "POST",
            "/v1/tokens/split",
            {"serials": [serials[0], serials[0]], "outputs": [1]},
            idempotency_key=idem(),
        ),
        422,
        "validation_error",
    )
    result = bka.request(
        "POST",
        "/v1/tokens/split",
        {"serials": serials, "outputs": [100, 25_000, 75_400]},
        idempotency_key=idem(),
    )
    outputs = result["tokens"]
    assert [t["amount"] for t in outputs] == [100, 25_000, 75_400]
    assert all(verify_token(network.cb_key.public_key, t) for t in outputs)
    assert verify_document(network.cb_key.public_key, result["receipt"])
    for serial in serials:
        assert token_info(network, serial)["status"] == "spent"
    for t in outputs:
        assert token_info(network, t["serial"])["owner"] == "BKA1"
    pos = position(bka)
    assert pos["circulation"] == pos["live_token_value"] == 1_000_00 + 500
    cb_audit_ok(network)


def test_settlement_moves_ownership_between_operators(network: Any) -> None:
    bka, bkb = operator_client(network, "BKA1"), operator_client(network, "BKB1")
    token = issue(bka, 1_000_00)["tokens"][0]

    def settle(payee: str, amount: int = 400_00) -> dict[str, Any]:
        return bka.request(
            "POST",
            "/v1/settlements",
            {
                "payee_operator": payee,
                "amount": amount,
                "serials": [token["serial"]],
                "reference": "pay:test",
            },
            idempotency_key=idem(),
        )

    refused(lambda: settle("BKA1"), 422, "validation_error")
    refused(lambda: settle("ZZZ9"), 404, "unknown_operator")
    refused(lambda: settle("BKB1", 1_000_01), 422, "amount_mismatch")
    assert token_info(network, token["serial"])["status"] == "live"

    result = settle("BKB1")
    receipt = result["receipt"]
    assert verify_document(network.cb_key.public_key, receipt)
    doc = receipt["document"]
    assert doc["payer_operator"] == "BKA1" and doc["payee_operator"] == "BKB1"
    assert doc["amount"] == 400_00 and doc["inputs"] == [token["serial"]]
    (payee_token,) = result["payee_tokens"]
    (change,) = result["change"]
    assert payee_token["amount"] == 400_00 and change["amount"] == 600_00
    assert doc["payee_tokens"] == [payee_token["serial"]]
    assert doc["change_tokens"] == [change["serial"]]
    for t in (payee_token, change):
        assert verify_token(network.cb_key.public_key, t)
    assert token_info(network, payee_token["serial"])["owner"] == "BKB1"
    assert token_info(network, change["serial"])["owner"] == "BKA1"
    assert token_info(network, token["serial"])["status"] == "spent"

    a, b = position(bka), position(bkb)
    assert a["circulation"] == a["live_token_value"] == 600_00
    assert b["circulation"] == b["live_token_value"] == 400_00
    # settlement moves ownership, never reserves
    assert a["reserves"] == RESERVES - 1_000_00 and b["reserves"] == RESERVES
    report = cb_audit_ok(network)
    assert report["issued"] == 1_000_00 and report["live_token_value"] == 1_000_00

    # the receiving operator can now spend what it received
    back = bkb.request(
        "POST",
        "/v1/redemption",
        {"serials": [payee_token["serial"]], "amount": 400_00},
        idempotency_key=idem(),
    )
    assert back["change"] == []
    assert position(bkb)["reserves"] == RESERVES + 400_00
    cb_audit_ok(network)


def test_double_spend_is_refused(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    token = issue(bka, 1_000)["tokens"][0]
    bka.request(
        "POST",
        "/v1/tokens/split",
        {"serials": [token["serial"]], "outputs": [400, 600]},
        idempotency_key=idem(),
    )
    before = position(bka)
    refused(
        lambda: bka.request(
            "POST",
            "/v1/tokens/split",
            {"serials": [token["serial"]], "outputs": [1_000]},
            idempotency_key=idem(),
        ),
        409,
        "double_spend",
    )
    refused(
        lambda: bka.request(
            "POST",
            "/v1/redemption",
            {"serials": [token["serial"]], "amount": 1_000},
            idempotency_key=idem(),
        ),
        409,
        "double_spend",
    )
    refused(
        lambda: bka.request(
            "POST",
            "/v1/settlements",
            {
                "payee_operator": "BKB1",
                "amount": 1_000,
                "serials": [token["serial"]],
                "reference": "x",
            },
            idempotency_key=idem(),
        ),
        409,
        "double_spend",
    )
    assert position(bka) == before
    assert token_info(network, token["serial"])["status"] == "spent"
    cb_audit_ok(network)


def test_spending_another_operators_token_is_refused(network: Any) -> None:
    bka, bkb = operator_client(network, "BKA1"), operator_client(network, "BKB1")
    token = issue(bka, 5_00)["tokens"][0]
    refused(
        lambda: bkb.request(
            "POST",
            "/v1/redemption",
            {"serials": [token["serial"]], "amount": 5_00},
            idempotency_key=idem(),
        ),
        403,
        "token_not_owned",
    )
    refused(
        lambda: bkb.request(
            "POST",
            "/v1/settlements",
            {
                "payee_operator": "BKA1",
                "amount": 5_00,
                "serials": [token["serial"]],
                "reference": "steal",
            },
            idempotency_key=idem(),
        ),
        403,
        "token_not_owned",
    )
    refused(lambda: bkb.request("GET", f"/v1/tokens/{token['serial']}"), 403, "token_not_owned")
    refused(lambda: bka.request("GET", f"/v1/tokens/{uuid.uuid4()}"), 404, "unknown_token")
    refused(
        lambda: bka.request(
            "POST",
            "/v1/redemption",
            {"serials": [str(uuid.uuid4())], "amount": 1},
            idempotency_key=idem(),
        ),
        404,
        "unknown_token",
    )
    assert bka.request("GET", f"/v1/tokens/{token['serial']}")["status"] == "live"
    assert position(bkb)["reserves"] == RESERVES
    cb_audit_ok(network)


def test_idempotent_retry_returns_the_same_response(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    key = idem()
    first = issue(bka, 77_00, key)
    again = issue(bka, 77_00, key)
    assert first["replayed"] is False and again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in first.items() if k != "replayed"
    }
    pos = position(bka)
    assert pos["reserves"] == RESERVES - 77_00 and pos["live_token_value"] == 77_00

    refused(lambda: issue(bka, 78_00, key), 409, "idempotency_key_reused")
    # the same key on another endpoint is another request too
    refused(
        lambda: bka.request(
            "POST",
            "/v1/redemption",
            {"serials": [first["tokens"][0]["serial"]], "amount": 1},
            idempotency_key=key,
        ),
        409,
        "idempotency_key_reused",
    )
    # keys are per operator: BKB1 may use the same one
    assert issue(operator_client(network, "BKB1"), 1_00, key)["replayed"] is False

    settle_key = idem()
    body = {
        "payee_operator": "BKB1",
        "amount": 10_00,
        "serials": [first["tokens"][0]["serial"]],
        "reference": "pay:idem",
    }
    s1 = bka.request("POST", "/v1/settlements", body, idempotency_key=settle_key)
    s2 = bka.request("POST", "/v1/settlements", body, idempotency_key=settle_key)
    assert s2["replayed"] is True
    assert s2["settlement_id"] == s1["settlement_id"]
    assert s2["payee_tokens"] == s1["payee_tokens"] and s2["receipt"] == s1["receipt"]
    assert position(bka)["live_token_value"] == 67_00
    assert position(operator_client(network, "BKB1"))["live_token_value"] == 11_00
    report = cb_audit_ok(network)
    assert report["issued"] == 78_00
