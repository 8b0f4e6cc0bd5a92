"""The services' public surface over real HTTP: docs, OpenAPI, and refusals of requests that are
unsigned, signed by the wrong party or for another service, or tampered with."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from cbdc.crypto import SigningKey
from cbdc.envelope import (
    CENTRAL_BANK_AUDIENCE,
    H_RESPONSE_SIG,
    operator_audience,
    sign_request,
)
from cbdc.http import RemoteError, SignedClient
from regulator.client import RegulatorKeys
from tests.e2e.conftest import LiveNetwork
from wallets.client import OperatorClient
from wallets.orders import payment_order, sign_order

CENTRAL_BANK_PATHS = {
    "/v1/issuance",
    "/v1/redemption",
    "/v1/settlements",
    "/v1/admin/operators",
    "/v1/certification/offline-revocations",
}
OPERATOR_PATHS = {
    "/v1/wallets",
    "/v1/payments",
    "/v1/wallets/{wallet_id}/load",
    "/v1/interop/settlements",
    "/v1/wallets/{wallet_id}/devices",
    "/v1/offline/devices/{device_id}/fund",
    "/v1/offline/devices/{device_id}/defund",
    "/v1/offline/devices/{device_id}/sync",
    "/v1/offline/devices/{device_id}",
    "/v1/offline/revocations",
    "/v1/interop/offline/claims",
    "/v1/admin/offline",
}


def _assert_problem(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body), body
    assert body["status"] == status
    if code is not None:
        assert body["code"] == code, body
    return body  # type: ignore[no-any-return]


def test_docs_list_endpoints(live_network: LiveNetwork) -> None:
    services = [(live_network.config.central_bank.url, CENTRAL_BANK_PATHS)] + [
        (node.url, OPERATOR_PATHS) for node in live_network.config.operators
    ]
    for url, wanted in services:
        docs = httpx.get(f"{url}/docs", timeout=10)
        assert docs.status_code == 200, url
        assert docs.headers["content-type"].startswith("text/html")
        assert "swagger" in docs.text.lower()
        spec = httpx.get(f"{url}/openapi.json", timeout=10)
        assert spec.status_code == 200, url
        paths = set(spec.json()["paths"])
        assert wanted <= paths, (url, wanted - paths)
        assert httpx.get(f"{url}/health", timeout=10).json() == {"status": "ok"}


def test_unsigned_and_foreign_requests_refused(live_network: LiveNetwork) -> None:
    config = live_network.config
    a, b = config.operators[0], config.operators[1]
    op_a = OperatorClient.connect(a.url)
    alice = op_a.open_wallet(display_name="E2E Alice", phone="+8613900001111")
    mallory = op_a.open_wallet(display_name="E2E Mallory", phone="+8613900002222")
    info = alice.balance()
    live_network.credit_deposit(a.code, info.customer_id, 1_000_00)
    alice.load(500_00)

    with httpx.Client(base_url=a.url, timeout=10) as raw:
        # No signature at all.
        _assert_problem(raw.get("/v1/admin/audit"), 401, "unauthenticated")
        _assert_problem(raw.get(f"/v1/wallets/{alice.wallet_id}"), 401, "unauthenticated")
        _assert_problem(
            raw.post(
                f"/v1/admin/customers/{info.customer_id}/deposit",
                json={"amount": 1},
                headers={"Idempotency-Key": str(uuid.uuid4())},
            ),
            401,
            "unauthenticated",
        )
        # A key nobody knows.
        stranger = SigningKey.generate()
        at_a = operator_audience(a.code)
        headers = sign_request(
            stranger,
            f"wallet:{alice.wallet_id}",
            "GET",
            f"/v1/wallets/{alice.wallet_id}",
            b"",
            audience=at_a,
        )
        _assert_problem(raw.get(f"/v1/wallets/{alice.wallet_id}", headers=headers), 401)
        # A valid signature over a different request than the one sent.
        headers = sign_request(
            mallory.key,
            f"wallet:{mallory.wallet_id}",
            "GET",
            f"/v1/wallets/{mallory.wallet_id}",
            b"",
            audience=at_a,
        )
        _assert_problem(raw.get(f"/v1/wallets/{alice.wallet_id}", headers=headers), 401)

    # A wallet key reading another wallet, or its history: 403.
    as_mallory = SignedClient(
        op_a.http,
        key=mallory.key,
        key_id=f"wallet:{mallory.wallet_id}",
        audience=operator_audience(a.code),
    )
    for path in (f"/v1/wallets/{alice.wallet_id}", f"/v1/wallets/{alice.wallet_id}/history"):
        with pytest.raises(RemoteError) as refused:
            as_mallory.request("GET", path)
        assert (refused.value.status, refused.value.code) == (403, "forbidden"), path
    # A wallet key on a staff endpoint: 403.
    with pytest.raises(RemoteError) as refused:
        as_mallory.request("GET", "/v1/admin/audit")
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    # Another wallet's payment is not even acknowledged to exist.
    receipt = alice.pay(mallory.wallet_id, 1_00)
    with pytest.raises(RemoteError) as refused:
        as_mallory.request("GET", f"/v1/payments/{receipt.payment_id}")
    assert (refused.value.status, refused.value.code) == (404, "unknown_payment")

    # Mallory cannot spend Alice's money: an order for Alice's wallet signed with Mallory's key.
    order = payment_order(
        payer=alice.wallet_id, payee=mallory.wallet_id, amount=10_00, currency=config.currency
    )
    with pytest.raises(RemoteError) as refused:
        alice.submit(sign_order(mallory.key, order))
    assert refused.value.status == 401, refused.value
    # Nor alter the amount of an order Alice signed.
    signed = sign_order(alice.key, order)
    signed["order"] = {**order, "amount": 400_00}
    with pytest.raises(RemoteError) as refused:
        alice.submit(signed)
    assert refused.value.status == 401, refused.value
    assert alice.balance().balance == 500_00 - 1_00

    # Operator B's staff key is not operator A's staff.
    b_staff_on_a = SignedClient(
        httpx.Client(base_url=a.url, timeout=10),
        key=live_network.staff_key(b.code),
        key_id=f"operator:{a.code}",
        audience=operator_audience(a.code),
    )
    with pytest.raises(RemoteError) as refused:
        b_staff_on_a.request("GET", "/v1/admin/audit")
    assert refused.value.status == 401

    # The central bank: unsigned admin call 401; an operator calling an admin endpoint 403.
    with httpx.Client(base_url=config.central_bank.url, timeout=10) as raw:
        _assert_problem(raw.get("/v1/admin/audit"), 401, "unauthenticated")
        _assert_problem(
            raw.post("/v1/admin/operators", json={"code": "EVIL1"}), 401, "unauthenticated"
        )
    operator_at_cb = SignedClient(
        httpx.Client(base_url=config.central_bank.url, timeout=10),
        key=live_network.staff_key(a.code),
        key_id=f"operator:{a.code}",
        audience=CENTRAL_BANK_AUDIENCE,
    )
    with pytest.raises(RemoteError) as refused:
        operator_at_cb.request("GET", "/v1/admin/audit")
    assert (refused.value.status, refused.value.code) == (403, "forbidden")
    # An operator claiming another operator's identity at the central bank.
    with pytest.raises(RemoteError) as refused:
        SignedClient(
            httpx.Client(base_url=config.central_bank.url, timeout=10),
            key=live_network.staff_key(a.code),
            key_id=f"operator:{b.code}",
            audience=CENTRAL_BANK_AUDIENCE,
        ).request("GET", "/v1/operators/me")
    assert refused.value.status == 401

    # A signed request replayed verbatim is refused.
    staff = live_network.staff(a.code)
    raw_headers = sign_request(
        live_network.staff_key(a.code),
        f"operator:{a.code}",
        "GET",
        "/v1/admin/vault",
        b"",
        audience=operator_audience(a.code),
    )
    with httpx.Client(base_url=a.url, timeout=10) as raw:
        assert raw.get("/v1/admin/vault", headers=raw_headers).status_code == 200
        _assert_problem(raw.get("/v1/admin/vault", headers=raw_headers), 409, "replayed_request")

    # The regulator's signed read of A's disclosure log is refused at B (its audience is A).
    regulator = RegulatorKeys.load(Path(config.regulator.key_dir)).signing
    log_headers = sign_request(
        regulator,
        "regulator",
        "GET",
        "/v1/regulator/disclosure-log",
        b"",
        audience=operator_audience(a.code),
    )
    with httpx.Client(base_url=b.url, timeout=10) as raw:
        _assert_problem(
            raw.get("/v1/regulator/disclosure-log", headers=log_headers), 401, "wrong_audience"
        )
    # The central bank signs no answer to a request that failed authentication.
    with httpx.Client(base_url=config.central_bank.url, timeout=10) as raw:
        forged = sign_request(
            SigningKey.generate(),
            f"operator:{a.code}",
            "GET",
            "/v1/operators/me",
            b"",
            audience=CENTRAL_BANK_AUDIENCE,
        )
        refused_answer = raw.get("/v1/operators/me", headers=forged)
        _assert_problem(refused_answer, 401, "bad_signature")
        assert H_RESPONSE_SIG not in refused_answer.headers
    assert staff.request("GET", "/v1/admin/audit")["checks"]
