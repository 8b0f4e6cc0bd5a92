"""The payments fast path (`operators.payments.fast_path`) answers exactly as the FastAPI routes do.

Each request is sent twice: through the app as it is served (the fast path in front) and
through the app's framework stack alone (the FastAPI routes, as before the fast path). Bad
bodies of every kind get the same status, headers and problem+json; well-formed payments are
answered by the fast path itself, refusals with the same problem; OpenAPI still documents both
routes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from starlette.types import Receive, Scope, Send

from cbdc.web.app import DEFAULT_MAX_BODY_BYTES
from operators.payments.fast_path import PaymentsFastPath
from tests.conftest import InProcessNetwork
from wallets.orders import payment_order, sign_order

JSON = {"content-type": "application/json"}


class Doors:
    """One operator app, reached through the fast path and through the framework alone."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.served = TestClient(app, raise_server_exceptions=False)
        self.served.get("/health")  # builds the middleware stack, with the fast path in front
        door = app.middleware_stack
        assert isinstance(door, PaymentsFastPath)
        self.door = door
        self.passed_on = 0
        stack = door.app

        async def counting(scope: Scope, receive: Receive, send: Send) -> None:
            self.passed_on += 1
            await stack(scope, receive, send)

        door.app = counting

        async def framework(scope: Scope, receive: Receive, send: Send) -> None:
            scope["app"] = app  # what Starlette sets before its middleware stack
            await stack(scope, receive, send)

        self.framework = TestClient(framework, raise_server_exceptions=False)

    def both(self, path: str, content: bytes, headers: dict[str, str] | None = None) -> Any:
        """The fast path's answer, after checking the framework gives the same."""
        headers = JSON if headers is None else headers
        served = self.served.post(path, content=content, headers=headers)
        plain = self.framework.post(path, content=content, headers=headers)
        assert served.status_code == plain.status_code, (path, content[:200], served.text)
        for name in ("content-type", "retry-after"):
            assert served.headers.get(name) == plain.headers.get(name), (name, served.headers)
        assert served.json() == plain.json(), (served.text, plain.text)
        return served


@pytest.fixture
def setup(network: InProcessNetwork) -> Iterator[tuple[InProcessNetwork, Doors, Any, Any]]:
    payer = network.open_wallet("BKA1", wallet_class="I", deposit=1_000_000_00, load=500_000_00)
    payee = network.open_wallet("BKA1")
    yield network, Doors(network.operator_apps["BKA1"]), payer, payee


def _order(payer: Any, payee: Any, /, **changes: Any) -> dict[str, Any]:
    order = payment_order(
        payer=payer.wallet_id, payee=payee.wallet_id, amount=100, currency="CNY", memo="tea"
    )
    order.update(changes)
    return order


def _dup(text: str, key: str, value: Any) -> str:
    """`text` (a JSON object) with `key` repeated at its front."""
    return "{" + json.dumps(key) + ": " + json.dumps(value) + ", " + text[1:]


def test_bad_bodies_get_the_same_answers_as_the_framework(setup: Any) -> None:
    _, doors, payer, payee = setup
    order = _order(payer, payee)
    signed = sign_order(payer.key, order)
    good = json.dumps(signed)
    bodies: list[tuple[str, bytes, dict[str, str] | None]] = []
    single = "/v1/payments"
    # not JSON, not an object, not UTF-8, another content type or none
    for raw in (
        b"{",
        b"not json",
        b"",
        b"[]",
        b"null",
        b'"order"',
        b"123",
        b'{"order": NaN}',
        b"\xff\xfe\x00",
        b"{}" * 1000,
    ):
        bodies.append((single, raw, None))
    bodies.append((single, good.encode(), {"content-type": "text/plain"}))
    bodies.append((single, good.encode(), {}))
    bodies.append((single, good.encode(), {"content-type": "application/x-json"}))
    # a repeated key: at the top, inside the order, inside a batch's order
    bodies.append((single, _dup(good, "signature", "x" * 86).encode(), None))
    inner = '{"order": ' + _dup(json.dumps(order), "amount", 999_999) + ', "signature": "'
    bodies.append((single, (inner + signed["signature"] + '"}').encode(), None))
    bodies.append(
        ("/v1/payments/batch", ('{"orders": [' + _dup(good, "order", {}) + "]}").encode(), None)
    )
    # missing fields, extra fields, wrong types, too long, too short
    for field in order:
        bad = {k: v for k, v in order.items() if k != field}
        bodies.append((single, json.dumps({**signed, "order": bad}).encode(), None))
    bodies += [
        (single, json.dumps({"order": order}).encode(), None),
        (single, json.dumps({"signature": signed["signature"]}).encode(), None),
        (single, json.dumps({**signed, "extra": 1}).encode(), None),
        (single, json.dumps({**signed, "order": {**order, "extra": 1}}).encode(), None),
    ]
    for field, value in (
        ("amount", "100"),
        ("amount", 1.5),
        ("amount", True),
        ("amount", 0),
        ("amount", 10**16),
        ("type", "load"),
        ("payer", 12345),
        ("memo", "m" * 141),
        ("nonce", "n" * 65),
        ("nonce", "short"),
        ("currency", "CNYY"),
        ("created_at", None),
        ("payee", "x" * 21),
    ):
        bad_order = {**order, field: value}
        bodies.append((single, json.dumps({**signed, "order": bad_order}).encode(), None))
    bodies += [
        (single, json.dumps({**signed, "signature": "A" * 101}).encode(), None),
        (single, json.dumps({**signed, "signature": 7}).encode(), None),
        (single, json.dumps({**signed, "order": [order]}).encode(), None),
        # too deep
        (single, b"[" * 100_000 + b"]" * 100_000, None),
        (single, b'{"a":' * 100_000 + b"1" + b"}" * 100_000, None),
        # batches: empty, too many, not a list, a bad order among good ones
        ("/v1/payments/batch", b'{"orders": []}', None),
        ("/v1/payments/batch", json.dumps({"orders": [signed] * 1001}).encode(), None),
        ("/v1/payments/batch", json.dumps({"orders": signed}).encode(), None),
        ("/v1/payments/batch", json.dumps({"orders": [signed, {"order": order}]}).encode(), None),
        ("/v1/payments/batch", good.encode(), None),
    ]
    balance = payer.balance().balance
    for path, raw, headers in bodies:
        answer = doors.both(path, raw, headers)
        assert 400 <= answer.status_code < 500, (path, raw[:100], answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert doors.passed_on == len(bodies)  # every one of them answered by the route
    assert payer.balance().balance == balance


def test_bodies_over_the_limit_get_413_on_both_doors(setup: Any) -> None:
    _, doors, _, _ = setup
    huge = b'{"a": "' + b"x" * (DEFAULT_MAX_BODY_BYTES + 10) + b'"}'
    for path in ("/v1/payments", "/v1/payments/batch"):
        assert doors.both(path, huge).json()["code"] == "body_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(DEFAULT_MAX_BODY_BYTES // 65536 + 2):
            yield b"x" * 65536

    for client in (doors.served, doors.framework):
        response = client.post("/v1/payments", content=chunks(), headers=JSON)
        assert "content-length" not in response.request.headers
        assert response.status_code == 413
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "body_too_large"


def test_payments_and_refusals_are_answered_by_the_fast_path(setup: Any) -> None:
    network, doors, payer, payee = setup
    before = doors.passed_on
    signed = sign_order(payer.key, _order(payer, payee))
    first = doors.served.post("/v1/payments", json=signed)
    assert first.status_code == 201, first.text
    assert first.headers["content-type"] == "application/json"
    receipt = first.json()
    assert receipt["status"] == "completed" and receipt["replayed"] is False
    # the same signed order again, through either door: the same payment, replayed
    for client in (doors.served, doors.framework):
        again = client.post("/v1/payments", json=signed)
        assert again.status_code == 201
        assert {**again.json(), "replayed": False} == receipt and again.json()["replayed"]

    # refusals: the same problem whichever door (each door its own order: a refusal is
    # recorded against the order's nonce)
    def problem_of(client: TestClient, forged: bool = False, **changes: Any) -> Any:
        body = sign_order(payer.key, _order(payer, payee, **changes))
        if forged:
            body["signature"] = sign_order(payee.key, body["order"])["signature"]
        response = client.post("/v1/payments", json=body)
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"] == "application/problem+json"
        return response.status_code, {k: response.json()[k] for k in ("code", "title", "type")}

    for forged, changes in (
        (True, {}),
        (False, {"currency": "USD"}),
        (False, {"amount": 10**14}),
        (False, {"payer": payee.wallet_id}),
    ):
        served = problem_of(doors.served, forged, **changes)
        assert served == problem_of(doors.framework, forged, **changes), changes

    # a batch: one result per order, ok or refused alone
    good = sign_order(payer.key, _order(payer, payee))
    poor = sign_order(payer.key, _order(payer, payee, amount=10**14))
    batch = doors.served.post("/v1/payments/batch", json={"orders": [good, poor]})
    assert batch.status_code == 200, batch.text
    answer = batch.json()
    assert (answer["accepted"], answer["refused"]) == (1, 1)
    assert answer["results"][0]["receipt"]["status"] == "completed"
    assert answer["results"][1]["ok"] is False
    plain_batch = doors.framework.post("/v1/payments/batch", json={"orders": [good, poor]})
    assert [r["ok"] for r in plain_batch.json()["results"]] == [True, False]
    assert plain_batch.json()["results"][0]["receipt"]["replayed"] is True
    # all of the fast path's answers above came from it: only the framework's own calls passed
    assert doors.passed_on == before


def test_openapi_still_documents_both_payment_routes(setup: Any) -> None:
    _, doors, _, _ = setup
    spec = doors.served.get("/openapi.json").json()
    single = spec["paths"]["/v1/payments"]["post"]
    batch = spec["paths"]["/v1/payments/batch"]["post"]
    schema = single["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SignedPayment")
    assert "201" in single["responses"] and "422" in single["responses"]
    schema = batch["requestBody"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/SignedPaymentBatch")
    assert "200" in batch["responses"]
    assert {"SignedPayment", "SignedPaymentBatch", "PaymentOrder"} <= set(
        spec["components"]["schemas"]
    )
    assert doors.served.get("/docs").status_code == 200
