"""Adversarial: signed refusals (envelope v2, issue #12) forged or sent for another request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.adversarial.helpers import CODES, assert_tiers_agree, drain

# ------------------------------------------------------------------ envelope v2 (issue #12)


class ForgedRefusal(httpx.BaseTransport):
    """Between an operator and the central bank: for the first `times` settlements, the caller
    gets a refusal instead of the central bank's answer. `replay`: the settlement is carried out,
    then the same signed request is sent again and the central bank's answer to that replay
    (409 replayed_request) is what the caller gets. Otherwise: a hand-made unsigned 401."""

    def __init__(self, inner: httpx.BaseTransport, *, times: int, replay: bool) -> None:
        self.inner, self.times, self.replay, self.forged = inner, times, replay, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/settlements/batch" or self.forged >= self.times:
            return self.inner.handle_request(request)
        self.forged += 1
        if self.replay:
            request.read()
            self.inner.handle_request(request).read()  # carried out
            refusal = self.inner.handle_request(request)
            refusal.read()
            assert refusal.status_code == 409, refusal.text
            return refusal
        problem = {
            "type": "about:blank",
            "title": "Signature does not verify",
            "status": 401,
            "detail": "request signature does not verify",
            "code": "bad_signature",
        }
        return httpx.Response(
            401, json=problem, headers={"content-type": "application/problem+json"}
        )


@pytest.mark.parametrize("replay", [True, False], ids=["replayed-after-success", "forged-401"])
def test_a_refusal_the_central_bank_did_not_sign_for_the_request_refunds_nobody(
    network: Any, replay: bool
) -> None:
    """Finding 2: the central bank signed its answer to any request carrying a nonce, over
    status, nonce and body only. Replaying an operator's settlement request once it was carried
    out got a central-bank-signed 409 for that nonce, which the operator's client took for the
    bank's refusal of the settlement: the outbox refunded the payer while the payee's operator
    owned the tokens. Now the answer to a replay (a failed authentication) is unsigned, and an
    unsigned answer, like a forged 401, is no answer: the job is retried (same idempotency key)
    and the payment delivered once, never refunded."""
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    client = network.state("BKA1").ctx.central_bank.client
    real_http = client.http
    forger = ForgedRefusal(network.cb._transport, times=2, replay=replay)
    client.http = httpx.Client(base_url="http://testserver", transport=forger)
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
        assert receipt.status == "pending_settlement", receipt
        assert payer.balance().balance == 4_000_00  # not refunded
        drain(network)
    finally:
        client.http = real_http
    assert forger.forged == 2
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payer.balance().balance == 4_000_00
    assert payee.balance().balance == 1_000_00
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"] and central["operators"]["BKB1"]["live_token_value"] == 1_000_00
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]


# ------------------------------------- a signed refusal for a settlement that was carried out


class ResendWithHeaderChanged(httpx.BaseTransport):
    """An on-path attacker with no keys, between an operator and the central bank: it forwards
    the operator's first settlement request (the central bank carries it out), then resends the
    very same bytes with one header changed or stripped and hands THAT answer to the operator."""

    def __init__(self, inner: httpx.BaseTransport, alter: Any) -> None:
        self.inner, self.alter = inner, alter
        self.forged: list[tuple[httpx.Request, httpx.Response]] = []
        self.carried_out: list[int] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/settlements/batch" or self.forged:
            return self.inner.handle_request(request)
        body = request.read()
        real = self.inner.handle_request(request)
        real.read()
        self.carried_out.append(real.status_code)
        headers = self.alter({k.lower(): v for k, v in request.headers.items()})
        resent = httpx.Request("POST", request.url, headers=headers, content=body)
        answer = self.inner.handle_request(resent)
        content = answer.read()
        self.forged.append((request, answer))
        return httpx.Response(answer.status_code, headers=answer.headers, content=content)


@pytest.mark.parametrize(
    "alter",
    [
        lambda h: {k: v for k, v in h.items() if k != "idempotency-key"},
        lambda h: {**h, "idempotency-key": "x"},
        lambda h: {**h, "content-type": "text/plain"},
    ],
    ids=["idempotency-key-stripped", "idempotency-key-too-short", "content-type-text-plain"],
)
def test_resent_settlement_with_a_header_changed_gets_no_signed_refusal(
    network: Any, alter: Any
) -> None:
    """Review finding 2 (still open after envelope v2): the Idempotency-Key and Content-Type
    headers were not signed, and FastAPI refuses a missing/short key or another content type
    (422) after the signature was verified but before the nonce is recorded. Whoever sees a
    settlement on the wire could resend its bytes so altered and get a 422 the central bank
    SIGNED, which verified as the answer to the original settlement: the payer's operator
    refunded the payer although the central bank had moved the money (money created, the
    audit fails). Correct: the key is signed (stripping or changing it breaks the signature)
    and an answer is signed only when this request consumed its nonce, so every such answer is
    unsigned; the operator retries, the payment is delivered once and the tiers agree."""
    from cbdc.crypto import sha256_hex
    from cbdc.envelope import H_RESPONSE_SIG, RequestBinding, verify_response

    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    client = network.state("BKA1").ctx.central_bank.client
    real_http = client.http
    attacker = ResendWithHeaderChanged(network.cb._transport, alter)
    client.http = httpx.Client(base_url="http://testserver", transport=attacker)
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
        assert attacker.carried_out == [201] and len(attacker.forged) == 1
        sent, answer = attacker.forged[0]
        bound = RequestBinding(
            audience=sent.headers["CBDC-Audience"],
            method="POST",
            target="/v1/settlements/batch",
            key_id=sent.headers["CBDC-Key-Id"],
            nonce=sent.headers["CBDC-Nonce"],
            idempotency_key=sent.headers.get("Idempotency-Key", ""),
            body_sha256=sha256_hex(sent.content),
        )
        assert 400 <= answer.status_code < 500
        assert H_RESPONSE_SIG not in answer.headers, answer.json()
        assert not verify_response(
            network.cb_key.public_key,
            bound,
            answer.status_code,
            answer.content,
            answer.headers.get(H_RESPONSE_SIG, ""),
        )
        # no refusal for the operator: the payment waits and is retried, never refunded
        assert receipt.status == "pending_settlement", receipt
        drain(network)
    finally:
        client.http = real_http
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payer.balance().balance == 4_000_00
    assert payee.balance().balance == 1_000_00
    assert_tiers_agree(network)
    supply = network.admin.request("GET", "/v1/stats/money-supply")
    assert supply["operations"]["settlement"]["count"] == 1
