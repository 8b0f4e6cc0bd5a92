"""The central bank's API, called as an operator (signed envelopes, signed responses): issuance,
redemption with change, splitting, RTGS settlement, double-spend and ownership refusals,
idempotency, roles, and the central bank's own audit."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from cbdc.crypto import SigningKey, sha256_hex
from cbdc.envelope import (
    CENTRAL_BANK_AUDIENCE,
    H_AUDIENCE,
    H_KEY,
    H_NONCE,
    H_RESPONSE_SIG,
    H_SIG,
    H_TS,
    H_VERSION,
    RequestBinding,
    operator_audience,
    sign_request,
    verify_response,
)
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.tokens import verify_document, verify_token

RESERVES = 10**11  # what the network fixture funds each operator with


def operator_client(network: Any, code: str) -> SignedClient:
    return SignedClient(
        network.cb,
        key=network.operator_keys[code],
        key_id=f"operator:{code}",
        server_public_key=network.cb_key.public_key,
        audience=CENTRAL_BANK_AUDIENCE,
    )


def idem() -> str:
    return f"test-{uuid.uuid4()}"


def issue(client: SignedClient, amount: int, key: str | None = None) -> dict[str, Any]:
    return client.request("POST", "/v1/issuance", {"amount": amount}, idempotency_key=key or idem())


def position(client: SignedClient) -> dict[str, Any]:
    return client.request("GET", "/v1/operators/me")


def token_info(network: Any, serial: str) -> dict[str, Any]:
    return network.admin.request("GET", f"/v1/tokens/{serial}")


def cb_audit_ok(network: Any) -> dict[str, Any]:
    report = network.admin.request("GET", "/v1/admin/audit")
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    return report


def refused(call: Any, status: int, code: str) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.body
    body = caught.value.body
    assert {"type", "title", "status", "detail", "code"} <= set(body)
    assert body["status"] == status
    return caught.value


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
            "POST", "/v1/redemption", {"serials": [token["serial"]], "amount": 1_000_01},
            idempotency_key=idem(),
        ),
        422,
        "amount_mismatch",
    )
    assert token_info(network, token["serial"])["status"] == "live"

    result = bka.request(
        "POST", "/v1/redemption", {"serials": [token["serial"]], "amount": 300_00},
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
        "POST", "/v1/redemption", {"serials": [change["serial"]], "amount": 700_00},
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
            "POST", "/v1/tokens/split", {"serials": serials, "outputs": [1_000_00, 499]},
            idempotency_key=idem(),
        ),
        422,
        "amount_mismatch",
    )
    refused(
        lambda: bka.request(
            "POST", "/v1/tokens/split", {"serials": serials, "outputs": [1_000_00, 500, 0]},
            idempotency_key=idem(),
        ),
        422,
        "validation_error",
    )
    refused(
        lambda: bka.request(
            "POST", "/v1/tokens/split", {"serials": [serials[0], serials[0]], "outputs": [1]},
            idempotency_key=idem(),
        ),
        422,
        "validation_error",
    )
    result = bka.request(
        "POST", "/v1/tokens/split", {"serials": serials, "outputs": [100, 25_000, 75_400]},
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
            "POST", "/v1/settlements",
            {"payee_operator": payee, "amount": amount, "serials": [token["serial"]],
             "reference": "pay:test"},
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
        "POST", "/v1/redemption", {"serials": [payee_token["serial"]], "amount": 400_00},
        idempotency_key=idem(),
    )
    assert back["change"] == []
    assert position(bkb)["reserves"] == RESERVES + 400_00
    cb_audit_ok(network)


def test_double_spend_is_refused(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    token = issue(bka, 1_000)["tokens"][0]
    bka.request(
        "POST", "/v1/tokens/split", {"serials": [token["serial"]], "outputs": [400, 600]},
        idempotency_key=idem(),
    )
    before = position(bka)
    refused(
        lambda: bka.request(
            "POST", "/v1/tokens/split", {"serials": [token["serial"]], "outputs": [1_000]},
            idempotency_key=idem(),
        ),
        409,
        "double_spend",
    )
    refused(
        lambda: bka.request(
            "POST", "/v1/redemption", {"serials": [token["serial"]], "amount": 1_000},
            idempotency_key=idem(),
        ),
        409,
        "double_spend",
    )
    refused(
        lambda: bka.request(
            "POST", "/v1/settlements",
            {"payee_operator": "BKB1", "amount": 1_000, "serials": [token["serial"]],
             "reference": "x"},
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
            "POST", "/v1/redemption", {"serials": [token["serial"]], "amount": 5_00},
            idempotency_key=idem(),
        ),
        403,
        "token_not_owned",
    )
    refused(
        lambda: bkb.request(
            "POST", "/v1/settlements",
            {"payee_operator": "BKA1", "amount": 5_00, "serials": [token["serial"]],
             "reference": "steal"},
            idempotency_key=idem(),
        ),
        403,
        "token_not_owned",
    )
    refused(lambda: bkb.request("GET", f"/v1/tokens/{token['serial']}"), 403, "token_not_owned")
    refused(lambda: bka.request("GET", f"/v1/tokens/{uuid.uuid4()}"), 404, "unknown_token")
    refused(
        lambda: bka.request(
            "POST", "/v1/redemption", {"serials": [str(uuid.uuid4())], "amount": 1},
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
            "POST", "/v1/redemption", {"serials": [first["tokens"][0]["serial"]], "amount": 1},
            idempotency_key=key,
        ),
        409,
        "idempotency_key_reused",
    )
    # keys are per operator: BKB1 may use the same one
    assert issue(operator_client(network, "BKB1"), 1_00, key)["replayed"] is False

    settle_key = idem()
    body = {"payee_operator": "BKB1", "amount": 10_00,
            "serials": [first["tokens"][0]["serial"]], "reference": "pay:idem"}
    s1 = bka.request("POST", "/v1/settlements", body, idempotency_key=settle_key)
    s2 = bka.request("POST", "/v1/settlements", body, idempotency_key=settle_key)
    assert s2["replayed"] is True
    assert s2["settlement_id"] == s1["settlement_id"]
    assert s2["payee_tokens"] == s1["payee_tokens"] and s2["receipt"] == s1["receipt"]
    assert position(bka)["live_token_value"] == 67_00
    assert position(operator_client(network, "BKB1"))["live_token_value"] == 11_00
    report = cb_audit_ok(network)
    assert report["issued"] == 78_00


def test_role_checks(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    refused(
        lambda: bka.request("POST", "/v1/admin/operators", {
            "code": "EVL1", "name": "Evil", "public_key": SigningKey.generate().public_key,
            "quota": 10,
        }),
        403,
        "forbidden",
    )
    refused(lambda: bka.request("GET", "/v1/admin/audit"), 403, "forbidden")
    refused(
        lambda: bka.request("PUT", "/v1/admin/operators/BKA1/quota", {"quota": 10**15}),
        403,
        "forbidden",
    )
    refused(
        lambda: bka.request(
            "POST", "/v1/admin/operators/BKA1/reserves", {"amount": 10**9}, idempotency_key=idem()
        ),
        403,
        "forbidden",
    )
    # the admin is not an operator: it cannot obtain tokens
    refused(lambda: issue(network.admin, 1_00), 403, "forbidden")
    refused(lambda: network.admin.request("GET", "/v1/operators/me"), 403, "forbidden")
    assert position(bka)["reserves"] == RESERVES

    # the certification centre: duplicates refused, certificates verifiable by anyone
    refused(
        lambda: network.admin.request("POST", "/v1/admin/operators", {
            "code": "BKA1", "name": "Again", "public_key": SigningKey.generate().public_key,
            "quota": 10,
        }),
        409,
        "operator_exists",
    )
    refused(
        lambda: network.admin.request("POST", "/v1/admin/operators", {
            "code": "NEW1", "name": "Same key",
            "public_key": network.operator_keys["BKB1"].public_key, "quota": 10,
        }),
        409,
        "operator_exists",
    )
    listing = bka.request("GET", "/v1/operators")
    assert [o["code"] for o in listing] == ["BKA1", "BKB1"]
    for entry in listing:
        assert verify_document(
            network.cb_key.public_key,
            {"document": entry["certificate"], "signature": entry["certificate_signature"]},
        )
        assert entry["certificate"]["public_key"] == network.operator_keys[entry["code"]].public_key


def signed_post(network: Any, path: str, body: bytes, *, key_id: str = "operator:BKA1",
                key: SigningKey | None = None, audience: str = CENTRAL_BANK_AUDIENCE,
                idempotency_key: str | None = None) -> tuple[dict[str, str], Any]:
    key = key or network.operator_keys["BKA1"]
    headers = sign_request(key, key_id, "POST", path, body, audience=audience,
                           idempotency_key=idempotency_key or idem())
    headers |= {"content-type": "application/json"}
    return headers, network.cb.request("POST", path, content=body, headers=headers)


def binding_of(headers: dict[str, str], method: str, target: str, body: bytes) -> RequestBinding:
    return RequestBinding(audience=headers[H_AUDIENCE], method=method, target=target,
                          key_id=headers[H_KEY], nonce=headers[H_NONCE],
                          idempotency_key=headers.get("Idempotency-Key", ""),
                          body_sha256=sha256_hex(body))


def test_responses_carry_a_signature_bound_to_their_request(network: Any) -> None:
    """Finding 2: the response signature covers the request it answers (audience, method,
    path and query, key id, nonce, the request body's digest) besides status and body, so a
    signed answer cannot be transplanted onto another request."""
    public = network.cb_key.public_key
    for body, expected in ((b'{"amount": 100}', 201), (b'{"amount": -1}', 422)):
        headers, response = signed_post(network, "/v1/issuance", body)
        assert response.status_code == expected
        signature = response.headers[H_RESPONSE_SIG]
        request = binding_of(headers, "POST", "/v1/issuance", body)
        assert verify_response(public, request, response.status_code, response.content,
                               signature)
        # bound to the status and the exact body
        assert not verify_response(public, request, 200, response.content, signature)
        tampered = json.dumps({**response.json(), "extra": 1}).encode()
        assert not verify_response(public, request, expected, tampered, signature)
        # and to every part of the request
        for other in (
            {"nonce": "another-nonce"},
            {"target": "/v1/redemption"},
            {"target": "/v1/issuance?x=1"},
            {"method": "PUT"},
            {"key_id": "operator:BKB1"},
            {"audience": operator_audience("BKA1")},
            {"body_sha256": sha256_hex(b'{"amount": 1000000}')},
        ):
            moved = dataclasses.replace(request, **other)
            assert not verify_response(public, moved, response.status_code, response.content,
                                       signature), other

    # a refusal signed for one request does not verify as the answer to another
    first, refused = signed_post(network, "/v1/issuance", b'{"amount": -5}')
    second, _ = signed_post(network, "/v1/issuance", b'{"amount": 5}')
    assert refused.status_code == 422
    assert not verify_response(public, binding_of(second, "POST", "/v1/issuance", b'{"amount": 5}'),
                               422, refused.content, refused.headers[H_RESPONSE_SIG])

    # a client that expects another central bank's key refuses the answer
    impostor = SignedClient(
        network.cb, key=network.operator_keys["BKA1"], key_id="operator:BKA1",
        server_public_key=SigningKey.generate().public_key, audience=CENTRAL_BANK_AUDIENCE,
    )
    with pytest.raises(RemoteUnavailable):
        impostor.request("GET", "/v1/operators/me")


def test_nothing_is_signed_for_requests_that_fail_authentication(network: Any) -> None:
    """Finding 2: unsigned requests, unknown keys, bad signatures, another audience, the old
    envelope, a stale timestamp and a replayed nonce all get an unsigned answer."""
    key, path, body = network.operator_keys["BKA1"], "/v1/issuance", b'{"amount": 7}'

    def post(headers: dict[str, str]) -> Any:
        headers = {"content-type": "application/json", "Idempotency-Key": idem(), **headers}
        return network.cb.request("POST", path, content=body, headers=headers)

    good = sign_request(key, "operator:BKA1", "POST", path, body, audience=CENTRAL_BANK_AUDIENCE,
                        idempotency_key=idem())
    stale_ts = str(int(time.time()) - 3600)
    failures = {
        "unsigned": ({}, "unauthenticated"),
        "unknown key id": (sign_request(key, "operator:ZZZ9", "POST", path, body,
                                        audience=CENTRAL_BANK_AUDIENCE), "bad_signature"),
        "bad signature": ({**good, H_SIG: SigningKey.generate().sign(b"x")}, "bad_signature"),
        "another audience": (sign_request(key, "operator:BKA1", "POST", path, body,
                                          audience=operator_audience("BKB1")), "wrong_audience"),
        "old envelope": ({k: v for k, v in good.items() if k not in (H_VERSION, H_AUDIENCE)},
                         "envelope_version_unsupported"),
        "stale timestamp": ({**good, H_TS: stale_ts}, "unauthenticated"),
    }
    for name, (headers, code) in failures.items():
        response = post(headers)
        assert response.status_code == 401 and response.json()["code"] == code, name
        assert H_RESPONSE_SIG not in response.headers, name

    # the request itself succeeds once, signed; replayed, it is refused without a signature
    first = post(good)
    assert first.status_code == 201 and H_RESPONSE_SIG in first.headers
    replay = post(good)
    assert replay.status_code == 409 and replay.json()["code"] == "replayed_request"
    assert H_RESPONSE_SIG not in replay.headers
    # public endpoints are not signed either
    assert H_RESPONSE_SIG not in network.cb.get("/v1/info").headers


def test_no_signed_refusal_for_a_request_that_succeeded(network: Any) -> None:
    """An operator cannot obtain a central-bank-signed refusal for a settlement the central bank
    carried out: every way to make the same request fail (replay, tampering, another audience,
    the old format) yields an unsigned answer, which the operator's client treats as no answer
    (retryable), never as a refusal that would refund the payer."""
    bka = operator_client(network, "BKA1")
    issued = issue(bka, 500)
    serials = [t["serial"] for t in issued["tokens"]]
    body = json.dumps({"payee_operator": "BKB1", "amount": 500, "serials": serials,
                       "reference": str(uuid.uuid4())}).encode()
    headers, done = signed_post(network, "/v1/settlements", body, idempotency_key="settle-once")
    assert done.status_code == 201, done.text
    request = binding_of(headers, "POST", "/v1/settlements", body)
    public = network.cb_key.public_key
    assert verify_response(public, request, 201, done.content, done.headers[H_RESPONSE_SIG])

    attempts = [
        headers,  # the very same request again
        {**headers, H_TS: str(int(time.time()) - 3600)},
        {**headers, H_AUDIENCE: operator_audience("BKA1")},
        {k: v for k, v in headers.items() if k not in (H_VERSION, H_AUDIENCE)},
        {**headers, H_SIG: SigningKey.generate().sign(b"forged")},
    ]
    for attempt in attempts:
        answer = network.cb.request("POST", "/v1/settlements", content=body, headers=attempt)
        assert 400 <= answer.status_code < 500
        assert H_RESPONSE_SIG not in answer.headers, answer.json()
    # the original answer's signature does not make any of those refusals the bank's word
    refusal = network.cb.request("POST", "/v1/settlements", content=body, headers=headers)
    assert not verify_response(public, request, refusal.status_code, refusal.content,
                               done.headers[H_RESPONSE_SIG])
    # through the operator's client an unsigned refusal is no refusal: retryable, not RemoteError
    with pytest.raises(RemoteUnavailable):
        SignedClient(network.cb, key=SigningKey.generate(), key_id="operator:BKA1",
                     server_public_key=public, audience=CENTRAL_BANK_AUDIENCE,
                     ).request("GET", "/v1/operators/me")


def test_a_verified_request_refused_by_validation_gets_a_signed_answer_once(
    network: Any,
) -> None:
    """A fresh, correctly signed request that FastAPI refuses before the handler runs (here a
    body that is not a valid issuance) consumes its nonce and gets a SIGNED 422 bound to it: the
    bank's word that it refused that request, which can then never be carried out. Sent again,
    the same request is a replay: 409 `replayed_request`, unsigned."""
    path, body = "/v1/issuance", b'{"amount": "seven"}'
    headers, first = signed_post(network, path, body)
    assert first.status_code == 422 and first.json()["code"] == "validation_error"
    request = binding_of(headers, "POST", path, body)
    assert verify_response(network.cb_key.public_key, request, 422, first.content,
                           first.headers[H_RESPONSE_SIG])
    again = network.cb.request("POST", path, content=body, headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "replayed_request"
    assert H_RESPONSE_SIG not in again.headers
    # a missing Idempotency-Key (signed as absent) is refused by validation the same way
    fresh = sign_request(network.operator_keys["BKA1"], "operator:BKA1", "POST", path,
                         b'{"amount": 7}', audience=CENTRAL_BANK_AUDIENCE)
    unkeyed = network.cb.request("POST", path, content=b'{"amount": 7}',
                                 headers={**fresh, "content-type": "application/json"})
    assert unkeyed.status_code == 422 and H_RESPONSE_SIG in unkeyed.headers
    assert cb_audit_ok(network)["issued"] == 0  # nothing was issued


class CarryOutThenResend(httpx.BaseTransport):
    """An on-path attacker with no keys: forwards the request (the bank carries it out), then
    resends the same bytes with a header altered and returns that answer instead."""

    def __init__(self, inner: httpx.BaseTransport, alter: Any) -> None:
        self.inner, self.alter = inner, alter
        self.carried_out: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        real = self.inner.handle_request(request)
        real.read()
        self.carried_out.append(real.status_code)
        headers = self.alter({k.lower(): v for k, v in request.headers.items()})
        answer = self.inner.handle_request(
            httpx.Request(request.method, request.url, headers=headers, content=body))
        content = answer.read()
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)


def _text_plain(h: dict[str, str]) -> dict[str, str]:
    return {**h, "content-type": "text/plain"}


def _no_idempotency_key(h: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in h.items() if k != "idempotency-key"}


@pytest.mark.parametrize(
    ("what", "alter"),
    [("redemption", _text_plain), ("redemption", _no_idempotency_key),
     ("clearing", _text_plain)],
    ids=["redemption-text-plain", "redemption-key-stripped", "clearing-text-plain"],
)
def test_operator_sees_a_refusal_only_for_a_request_the_bank_refused(
    network: Any, what: str, alter: Any
) -> None:
    """The operator acts on the central bank's 4xx: a refused clearing submission is refunded
    to the payers (`netting.refund_submission`, unless the code is in `SUBMISSION_KEPT`), a
    refused redemption is cancelled (`vault.cancel_redemption`). A resend of a request the bank
    carried out, altered in transit so that it fails validation, must not reach those as a
    refusal: its answer is unsigned, so the operator's client raises `RemoteUnavailable`
    (retry, and the retry gets the bank's stored answer). A request the bank really refuses
    still comes back as a signed `RemoteError`."""
    bka = operator_client(network, "BKA1")
    key: str | None
    if what == "redemption":
        tokens = issue(bka, 300)["tokens"]
        path, key = "/v1/redemption", idem()
        body: dict[str, Any] = {"serials": [t["serial"] for t in tokens], "amount": 300}
        bad = {"serials": ["no-such-serial"], "amount": 300}
    else:
        path, key = "/v1/clearing/submissions", None
        item = {"reference": str(uuid.uuid4()), "payee_wallet": "BKB1" + "0" * 16,
                "payer_alias": "alias-1", "amount": 500}
        body = {"submission_id": str(uuid.uuid4()), "payee_operator": "BKB1", "gross": 500,
                "items": [item]}
        bad = {**body, "submission_id": str(uuid.uuid4()), "payee_operator": "ZZZ9"}
    attacker = CarryOutThenResend(network.cb._transport, alter)
    victim = SignedClient(httpx.Client(base_url="http://testserver", transport=attacker),
                          key=network.operator_keys["BKA1"], key_id="operator:BKA1",
                          server_public_key=network.cb_key.public_key,
                          audience=CENTRAL_BANK_AUDIENCE)
    with pytest.raises(RemoteUnavailable):
        victim.request("POST", path, body, idempotency_key=key)
    assert attacker.carried_out in ([200], [201])
    # the operator's retry (same idempotency key / submission id) gets the bank's stored answer
    bka.request("POST", path, body, idempotency_key=key)
    with pytest.raises(RemoteError) as really:
        bka.request("POST", path, bad, idempotency_key=idem() if key else None)
    assert 400 <= really.value.status < 500
    cb_audit_ok(network)
