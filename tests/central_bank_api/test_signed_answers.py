"""Roles, and the central bank's signed answers: bound to their request, none for failed
authentication, a signed refusal only for a request the bank refused."""

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
from cbdc.tokens import verify_document
from tests.central_bank_api.helpers import (
    RESERVES,
    cb_audit_ok,
    idem,
    issue,
    operator_client,
    position,
    refused,
)


def test_role_checks(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    refused(
        lambda: bka.request(
            "POST",
            "/v1/admin/operators",
            {
                "code": "EVL1",
                "name": "Evil",
                "public_key": SigningKey.generate().public_key,
                "quota": 10,
            },
        ),
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
        lambda: network.admin.request(
            "POST",
            "/v1/admin/operators",
            {
                "code": "BKA1",
                "name": "Again",
                "public_key": SigningKey.generate().public_key,
                "quota": 10,
            },
        ),
        409,
        "operator_exists",
    )
    refused(
        lambda: network.admin.request(
            "POST",
            "/v1/admin/operators",
            {
                "code": "NEW1",
                "name": "Same key",
                "public_key": network.operator_keys["BKB1"].public_key,
                "quota": 10,
            },
        ),
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


def signed_post(
    network: Any,
    path: str,
    body: bytes,
    *,
    key_id: str = "operator:BKA1",
    key: SigningKey | None = None,
    audience: str = CENTRAL_BANK_AUDIENCE,
    idempotency_key: str | None = None,
) -> tuple[dict[str, str], Any]:
    key = key or network.operator_keys["BKA1"]
    headers = sign_request(
        key,
        key_id,
        "POST",
        path,
        body,
        audience=audience,
        idempotency_key=idempotency_key or idem(),
    )
    headers |= {"content-type": "application/json"}
    return headers, network.cb.request("POST", path, content=body, headers=headers)


def binding_of(headers: dict[str, str], method: str, target: str, body: bytes) -> RequestBinding:
    return RequestBinding(
        audience=headers[H_AUDIENCE],
        method=method,
        target=target,
        key_id=headers[H_KEY],
        nonce=headers[H_NONCE],
        idempotency_key=headers.get("Idempotency-Key", ""),
        body_sha256=sha256_hex(body),
    )


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
        assert verify_response(public, request, response.status_code, response.content, signature)
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
            assert not verify_response(
                public, moved, response.status_code, response.content, signature
            ), other

    # a refusal signed for one request does not verify as the answer to another
    first, refused = signed_post(network, "/v1/issuance", b'{"amount": -5}')
    second, _ = signed_post(network, "/v1/issuance", b'{"amount": 5}')
    assert refused.status_code == 422
    assert not verify_response(
        public,
        binding_of(second, "POST", "/v1/issuance", b'{"amount": 5}'),
        422,
        refused.content,
        refused.headers[H_RESPONSE_SIG],
    )

    # a client that expects another central bank's key refuses the answer
    impostor = SignedClient(
        network.cb,
        key=network.operator_keys["BKA1"],
        key_id="operator:BKA1",
        server_public_key=SigningKey.generate().public_key,
        audience=CENTRAL_BANK_AUDIENCE,
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

    good = sign_request(
        key,
        "operator:BKA1",
        "POST",
        path,
        body,
        audience=CENTRAL_BANK_AUDIENCE,
        idempotency_key=idem(),
    )
    stale_ts = str(int(time.time()) - 3600)
    failures = {
        "unsigned": ({}, "unauthenticated"),
        "unknown key id": (
            sign_request(key, "operator:ZZZ9", "POST", path, body, audience=CENTRAL_BANK_AUDIENCE),
            "bad_signature",
        ),
        "bad signature": ({**good, H_SIG: SigningKey.generate().sign(b"x")}, "bad_signature"),
        "another audience": (
            sign_request(
                key, "operator:BKA1", "POST", path, body, audience=operator_audience("BKB1")
            ),
            "wrong_audience",
        ),
        "old envelope": (
            {k: v for k, v in good.items() if k not in (H_VERSION, H_AUDIENCE)},
            "envelope_version_unsupported",
        ),
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
    body = json.dumps(
        {
            "payee_operator": "BKB1",
            "amount": 500,
            "serials": serials,
            "reference": str(uuid.uuid4()),
        }
    ).encode()
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
    assert not verify_response(
        public, request, refusal.status_code, refusal.content, done.headers[H_RESPONSE_SIG]
    )
    # through the operator's client an unsigned refusal is no refusal: retryable, not RemoteError
    with pytest.raises(RemoteUnavailable):
        SignedClient(
            network.cb,
            key=SigningKey.generate(),
            key_id="operator:BKA1",
            server_public_key=public,
            audience=CENTRAL_BANK_AUDIENCE,
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
    assert verify_response(
        network.cb_key.public_key, request, 422, first.content, first.headers[H_RESPONSE_SIG]
    )
    again = network.cb.request("POST", path, content=body, headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "replayed_request"
    assert H_RESPONSE_SIG not in again.headers
    # a missing Idempotency-Key (signed as absent) is refused by validation the same way
    fresh = sign_request(
        network.operator_keys["BKA1"],
        "operator:BKA1",
        "POST",
        path,
        b'{"amount": 7}',
        audience=CENTRAL_BANK_AUDIENCE,
    )
    unkeyed = network.cb.request(
        "POST",
        path,
        content=b'{"amount": 7}',
        headers={**fresh, "content-type": "application/json"},
    )
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
            httpx.Request(request.method, request.url, headers=headers, content=body)
        )
        content = answer.read()
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)


def _text_plain(h: dict[str, str]) -> dict[str, str]:
    return {**h, "content-type": "text/plain"}


def _no_idempotency_key(h: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in h.items() if k != "idempotency-key"}


@pytest.mark.parametrize(
    ("what", "alter"),
    [("redemption", _text_plain), ("redemption", _no_idempotency_key), ("clearing", _text_plain)],
    ids=["redemption-text-plain", "redemption-key-stripped", "clearing-text-plain"],
)
def test_operator_sees_a_refusal_only_for_a_request_the_bank_refused(
    network: Any, what: str, alter: Any
) -> None:
    """The operator acts on the central bank's 4xx: a refused clearing submission is refunded
    to the payers (`net_submission.refund_submission`, unless the code is in `SUBMISSION_KEPT`), a
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
        item = {
            "reference": str(uuid.uuid4()),
            "payee_wallet": "BKB1" + "0" * 16,
            "payer_alias": "alias-1",
            "amount": 500,
        }
        body = {
            "submission_id": str(uuid.uuid4()),
            "payee_operator": "BKB1",
            "gross": 500,
            "items": [item],
        }
        bad = {**body, "submission_id": str(uuid.uuid4()), "payee_operator": "ZZZ9"}
    attacker = CarryOutThenResend(network.cb._transport, alter)
    victim = SignedClient(
        httpx.Client(base_url="http://testserver", transport=attacker),
        key=network.operator_keys["BKA1"],
        key_id="operator:BKA1",
        server_public_key=network.cb_key.public_key,
        audience=CENTRAL_BANK_AUDIENCE,
    )
    with pytest.raises(RemoteUnavailable):
        victim.request("POST", path, body, idempotency_key=key)
    assert attacker.carried_out in ([200], [201])
    # the operator's retry (same idempotency key / submission id) gets the bank's stored answer
    bka.request("POST", path, body, idempotency_key=key)
    with pytest.raises(RemoteError) as really:
        bka.request("POST", path, bad, idempotency_key=idem() if key else None)
    assert 400 <= really.value.status < 500
    cb_audit_ok(network)
