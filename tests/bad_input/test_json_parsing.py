"""Strict JSON: duplicate keys, deep nesting, oversized bodies and the body limit."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient

from cbdc.addresses import make_wallet_id
from cbdc.crypto import SigningKey
from tests.bad_input.helpers import JSON, assert_problem, balances, valid_order
from wallets.orders import load_order, payment_order, sign_order

# ------------------------------------------------------------------ duplicate JSON keys


def with_duplicate(value: dict[str, Any], key: str, first: Any) -> str:
    """`value` as JSON with `key` written twice: `first`, then its real value (which json.loads
    would keep, and another parser might not)."""
    return "{" + json.dumps(key) + ": " + json.dumps(first) + ", " + json.dumps(value)[1:]


def test_duplicate_json_keys_are_refused(parties: dict[str, Any]) -> None:
    """Finding 7: a body with a repeated key means different things to different parsers, so it
    is refused (422 `duplicate_json_key`) everywhere: in signed orders (whose signature covers
    the last value only), in signed envelopes, and in unsigned bodies."""
    net, op, cb = parties["network"], parties["op"], parties["cb"]
    payer = parties["payer"]
    before = balances(parties)

    # a payment order whose signed amount is 100, carrying another amount first
    order = valid_order(parties)
    signature = payer.key.sign_json(order)
    raw = (
        '{"order": ' + with_duplicate(order, "amount", 999_999) + f', "signature": "{signature}"}}'
    )
    body = assert_problem(op.send("POST", "/v1/payments", raw.encode()), 422)
    assert body["code"] == "duplicate_json_key" and "amount" in body["detail"]
    # the same at the top level of the body, and in the batch path
    signed = {"order": order, "signature": signature}
    raw = with_duplicate(signed, "order", valid_order(parties, amount=5))
    assert (
        assert_problem(op.send("POST", "/v1/payments", raw.encode()), 422)["code"]
        == "duplicate_json_key"
    )
    raw = '{"orders": [' + with_duplicate(signed, "signature", "x") + "]}"
    assert (
        assert_problem(op.send("POST", "/v1/payments/batch", raw.encode()), 422)["code"]
        == "duplicate_json_key"
    )
    # a load order
    load = load_order(wallet=payer.wallet_id, amount=100, currency="CNY")
    raw = (
        '{"order": '
        + with_duplicate(load, "wallet", parties["payee"].wallet_id)
        + f', "signature": "{payer.key.sign_json(load)}"}}'
    )
    assert (
        assert_problem(op.send("POST", f"/v1/wallets/{payer.wallet_id}/load", raw.encode()), 422)[
            "code"
        ]
        == "duplicate_json_key"
    )
    assert balances(parties) == before

    # wallet opening signed with the new wallet's key (the key id resolver reads the body)
    count = net.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"]
    key = SigningKey.generate()
    opening = {
        "public_key": key.public_key,
        "customer": {"display_name": "A", "phone": "+8613800000099"},
    }
    raw = with_duplicate(opening, "public_key", SigningKey.generate().public_key)
    response = op.send("POST", "/v1/wallets", raw.encode(), key=key, key_id="new-wallet")
    assert assert_problem(response, 422)["code"] == "duplicate_json_key"
    assert net.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"] == count

    # a signed request to the central bank
    issued = net.admin.request("GET", "/v1/admin/audit")["issued"]
    raw = with_duplicate({"amount": 100}, "amount", 10**9)
    response = cb.send(
        "POST",
        "/v1/issuance",
        raw.encode(),
        key=net.operator_keys["BKA1"],
        key_id="operator:BKA1",
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert assert_problem(response, 422)["code"] == "duplicate_json_key"
    assert net.admin.request("GET", "/v1/admin/audit")["issued"] == issued

    # the same keys in different objects are no duplicates
    receipt = payer.submit(sign_order(payer.key, valid_order(parties)))
    assert receipt.status == "completed"


def test_every_route_parses_bodies_strictly(network: Any) -> None:
    """Every route of both services that takes a body parses it through `StrictJSONRoute`."""
    from fastapi.routing import APIRoute

    from cbdc.web.auth import StrictJSONRoute

    def api_routes(routes: list[Any]) -> list[APIRoute]:
        found: list[APIRoute] = []
        for route in routes:
            if isinstance(route, APIRoute):
                found.append(route)
            elif hasattr(route, "original_router"):  # an included router (FastAPI >= 0.13x)
                found += api_routes(route.original_router.routes)
        return found

    for app in (network.cb_app, *network.operator_apps.values()):
        routes = [r for r in api_routes(app.routes) if r.body_field is not None]
        assert routes and all(isinstance(r, StrictJSONRoute) for r in routes), [
            r.path for r in routes if not isinstance(r, StrictJSONRoute)
        ]


DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000


DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


def test_deeply_nested_json_is_refused_not_500(parties: dict[str, Any]) -> None:
    """Review: JSON nested a hundred thousand deep made the parser raise RecursionError (500)
    on /v1/payments, /v1/regulator/disclosures, wallet opening and the central bank's routes.
    It gets what malformed JSON gets: 422 `validation_error`."""
    net, op, cb = parties["network"], parties["op"], parties["cb"]
    before = balances(parties)
    for deep in (DEEP_ARRAY, DEEP_OBJECT):
        for path in (
            "/v1/payments",
            "/v1/payments/batch",
            "/v1/regulator/disclosures",
            "/v1/wallets",
            f"/v1/wallets/{parties['payer'].wallet_id}/load",
        ):
            body = assert_problem(op.send("POST", path, deep), 422)
            assert body["code"] == "validation_error", (path, body)
        # the `new-wallet` key id makes the resolver parse the body, whatever its content type
        for content_type in ("application/json", "text/plain"):
            response = op.send(
                "POST",
                "/v1/wallets",
                deep,
                key=SigningKey.generate(),
                key_id="new-wallet",
                headers={"content-type": content_type},
            )
            assert assert_problem(response, 422)["code"] == "validation_error"
        for path in ("/v1/issuance", "/v1/clearing/submissions", "/v1/settlements"):
            response = cb.send(
                "POST",
                path,
                deep,
                key=net.operator_keys["BKA1"],
                key_id="operator:BKA1",
                headers={"Idempotency-Key": str(uuid.uuid4())},
            )
            assert assert_problem(response, 422)["code"] == "validation_error", path
    assert balances(parties) == before


def test_oversized_bodies_are_refused_413(parties: dict[str, Any]) -> None:
    """Review: there was no body size limit (a 20 MB body was read and parsed). Over the limit
    is 413 `body_too_large`, from the Content-Length before reading, or from the bytes read
    when the body comes chunked without one."""
    from cbdc.web.app import DEFAULT_MAX_BODY_BYTES

    op, cb = parties["op"], parties["cb"]
    huge = b'{"a": "' + b"x" * 20_000_000 + b'"}'
    for raw, path in ((op, "/v1/payments"), (op, "/v1/wallets"), (cb, "/v1/issuance")):
        body = assert_problem(raw.send("POST", path, huge), 413)
        assert body["code"] == "body_too_large"

    def chunks() -> Any:
        for _ in range(DEFAULT_MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    response = op.http.post("/v1/payments", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert assert_problem(response, 413)["code"] == "body_too_large"


def test_body_limit_is_a_setting_with_room_for_the_largest_legitimate_bodies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cbdc.web.app import DEFAULT_MAX_BODY_BYTES, base_app
    from central_bank.clearing.schemas import ClearingSubmission
    from operators.payments.schemas import SignedPaymentBatch

    monkeypatch.setenv("CBDC_MAX_BODY_BYTES", "100")
    app = base_app("limit", "test")

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"n": len(await request.body())}

    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/echo", content=b"x" * 100).json() == {"n": 100}
    assert assert_problem(client.post("/echo", content=b"x" * 101), 413)["code"] == "body_too_large"

    # the largest bodies the schemas allow, at their longest fields, fit four times over
    item = {
        "reference": "r" * 100,
        "payee_wallet": "w" * 40,
        "payer_alias": "a" * 64,
        "amount": 10**15,
    }
    submission = {
        "submission_id": str(uuid.uuid4()),
        "payee_operator": "BKB1",
        "gross": 10**18,
        "items": [item] * 10_000,
    }
    ClearingSubmission.model_validate(submission)
    assert len(json.dumps(submission)) * 4 < DEFAULT_MAX_BODY_BYTES
    key = SigningKey.generate()
    order = payment_order(
        payer=make_wallet_id("BKA1", 1),
        payee=make_wallet_id("BKB1", 2),
        amount=10**15,
        currency="CNY",
        memo="\u4e2d" * 140,
    )
    batch = {"orders": [{"order": order, "signature": key.sign_json(order)}] * 1000}
    SignedPaymentBatch.model_validate(batch)
    assert len(json.dumps(batch)) * 4 < DEFAULT_MAX_BODY_BYTES


def test_signed_client_survives_deeply_nested_answers() -> None:
    """JSON from the wire is parsed safely on the client side too: an answer nested too deep
    to parse is a `RemoteError` / `RemoteUnavailable` like any unparsable answer, never a
    RecursionError escaping into an operator's outbox."""
    import httpx

    from cbdc.http import RemoteError, RemoteUnavailable, SignedClient

    for status, expected in ((400, RemoteError), (503, RemoteUnavailable)):
        transport = httpx.MockTransport(lambda _, s=status: httpx.Response(s, content=DEEP_ARRAY))
        client = SignedClient(httpx.Client(base_url="http://x", transport=transport))
        with pytest.raises(expected):
            client.request("GET", "/v1/info", signed=False)
