"""Payments across operators (RTGS inline, outbox for everything else): delivery with payer
aliases, returns by the payee's operator, refunds when the central bank refuses, outages that
delay but never lose or duplicate money, duplicate and forged deliveries. Every scenario ends
with the cross-tier audit."""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from cbdc.addresses import is_valid_wallet_id, make_wallet_id
from cbdc.crypto import SigningKey
from cbdc.http import RemoteError
from cbdc.tokens import sign_document
from tests.helpers import drain

CODES = ("BKA1", "BKB1")


def audit_all(network: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    drain(network)
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    reports = {}
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        assert report["failed_jobs"] == [] or all(
            j["kind"] == "settle" for j in report["failed_jobs"]
        )
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]
        held = report["vault_float"] + report["wallets"] + report["in_transit_total"]
        assert held == report["vault_token_value"]
        reports[code] = report
    assert central["live_token_value"] == central["issued"] - central["redeemed"]
    assert sum(r["vault_token_value"] for r in reports.values()) == central["live_token_value"]
    return central, reports


def test_cross_payment_is_delivered_and_payee_sees_an_alias(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=10_000_00, load=10_000_00)
    bob = network.open_wallet("BKB1")
    carol = network.open_wallet("BKB1")

    receipt = payer.pay(bob.wallet_id, 1_234_56, memo="rent")
    assert (receipt.status, receipt.route, receipt.replayed) == ("delivered", "cross", False)
    assert receipt.payee == bob.wallet_id and receipt.amount == 1_234_56
    assert bob.balance().balance == 1_234_56
    assert payer.balance().balance == 10_000_00 - 1_234_56
    assert payer.payment(receipt.payment_id).status == "delivered"
    payer.pay(bob.wallet_id, 100)
    payer.pay(carol.wallet_id, 200)

    bob_items = bob.history().items
    carol_items = carol.history().items
    assert [i.amount for i in bob_items] == [100, 1_234_56]
    assert [i.amount for i in carol_items] == [200]
    bob_aliases = {i.counterparty for i in bob_items}
    assert len(bob_aliases) == 1  # stable for one payer and one payee
    (bob_alias,) = bob_aliases
    carol_alias = carol_items[0].counterparty
    for alias in (bob_alias, carol_alias):
        assert alias.startswith("anon-")
        assert payer.wallet_id not in alias and payer.wallet_id[4:18] not in alias
    assert bob_alias != carol_alias  # unlinkable across payees
    # the payer sees whom it paid
    assert {i.counterparty for i in payer.history().items if i.kind == "payment_out"} == {
        bob.wallet_id,
        carol.wallet_id,
    }

    central, reports = audit_all(network)
    assert reports["BKB1"]["wallets"] == 1_234_56 + 300
    assert reports["BKA1"]["in_transit_total"] == 0 and reports["BKB1"]["in_transit_total"] == 0
    assert central["operators"]["BKB1"]["live_token_value"] == 1_234_56 + 300
    assert central["issued"] == network.state("BKA1").ctx.water_marks.target

    # and back the other way, paid out of what BKB1 received
    back = bob.pay(payer.wallet_id, 34_56)
    assert back.status == "delivered"
    assert payer.balance().balance == 10_000_00 - 1_234_56 - 300 + 34_56
    audit_all(network)


@pytest.mark.parametrize("reason", ["payee_balance_cap_exceeded", "unknown_wallet"])
def test_cross_payment_the_payee_cannot_take_is_returned(network: Any, reason: str) -> None:
    payer = network.open_wallet("BKA1", wallet_class="II", deposit=20_000_00, load=20_000_00)
    if reason == "payee_balance_cap_exceeded":
        payee = network.open_wallet("BKB1", deposit=10_000_00, load=9_999_00)
        payee_id = payee.wallet_id
    else:
        payee = None
        payee_id = make_wallet_id("BKB1", 424_242)  # valid check digits, no such wallet
        assert is_valid_wallet_id(payee_id)

    receipt = payer.pay(payee_id, 5_000_00)
    assert receipt.route == "cross"
    assert receipt.status not in ("delivered", "completed")
    if payee is not None:
        assert payee.balance().balance == 9_999_00

    network.run_jobs()
    drain(network)
    status = payer.payment(receipt.payment_id)
    assert status.status == "returned"
    assert status.failure == reason
    info = payer.balance()
    assert info.balance == 20_000_00
    assert info.spent_today == 0  # money that came back does not count against the day
    if payee is not None:
        assert payee.balance().balance == 9_999_00
    _, reports = audit_all(network)
    assert reports["BKB1"]["returns_pending"] == 0
    assert reports["BKA1"]["in_transit_out"] == 0
    assert reports["BKA1"]["wallets"] == 20_000_00
    # the payer can pay a payee that can take it
    ok = network.open_wallet("BKB1")
    assert payer.pay(ok.wallet_id, 5_000_00).status == "delivered"
    audit_all(network)


def test_refused_settlement_refunds_the_payer(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    engine = network.cb_app.state.cb.engine
    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'suspended' WHERE code = 'BKB1'"))

    receipt = payer.pay(payee.wallet_id, 1_000_00)
    assert receipt.status == "failed"
    assert receipt.failure == "operator_suspended"
    info = payer.balance()
    assert (info.balance, info.spent_today) == (5_000_00, 0)
    assert payee.balance().balance == 0
    assert payer.payment(receipt.payment_id).status == "failed"
    central, reports = audit_all(network)
    assert central["operators"]["BKB1"]["live_token_value"] == 0
    assert reports["BKA1"]["in_transit_out"] == 0

    with engine.begin() as conn:
        conn.execute(text("UPDATE operators SET status = 'active' WHERE code = 'BKB1'"))
    assert payer.pay(payee.wallet_id, 1_000_00).status == "delivered"
    assert payee.balance().balance == 1_000_00
    audit_all(network)


class LossyTransport(httpx.BaseTransport):
    """Forwards to the real service but, for the first `lose` matching requests, loses the
    answer (the request was processed, the caller sees a network error) or never sends."""

    def __init__(
        self, inner: httpx.BaseTransport, path: str, *, lose: int, processed: bool
    ) -> None:
        self.inner, self.path, self.lose, self.processed = inner, path, lose, processed
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path and self.lost < self.lose:
            self.lost += 1
            if self.processed:
                response = self.inner.handle_request(request)
                response.read()
                raise httpx.ReadTimeout("answer lost", request=request)
            raise httpx.ConnectError("unreachable", request=request)
        return self.inner.handle_request(request)


@pytest.mark.parametrize("processed", [True, False], ids=["answer-lost", "unreachable"])
def test_central_bank_outage_delays_but_never_loses_or_duplicates(
    network: Any, processed: bool
) -> None:
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    client = network.state("BKA1").ctx.central_bank.client
    real_http = client.http
    lossy = LossyTransport(
        network.cb._transport, "/v1/settlements/batch", lose=2, processed=processed
    )
    client.http = httpx.Client(base_url="http://testserver", transport=lossy)
    try:
        receipt = payer.pay(payee.wallet_id, 1_000_00)
        assert receipt.status == "pending_settlement"
        assert payer.balance().balance == 4_000_00
        assert payee.balance().balance == 0
        in_flight = network.staff("BKA1").request("GET", "/v1/admin/audit")
        assert in_flight["in_transit_out"] == 1_000_00 and in_flight["ok"]
        drain(network)
    finally:
        client.http = real_http
    assert lossy.lost == 2
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payee.balance().balance == 1_000_00
    assert payer.balance().balance == 4_000_00
    central, _ = audit_all(network)
    assert central["operators"]["BKB1"]["live_token_value"] == 1_000_00
    supply = network.admin.request("GET", "/v1/stats/money-supply")
    assert supply["operations"]["settlement"]["count"] == 1


def test_peer_outage_delays_delivery(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    peer = network.state("BKA1").ctx.peers.client("BKB1")
    assert peer is not None
    real_http = peer.http
    lossy = LossyTransport(
        network.operator_http["BKB1"]._transport,
        "/v1/interop/settlements/batch",
        lose=1,
        processed=True,
    )
    peer.http = httpx.Client(base_url="http://BKB1", transport=lossy)
    try:
        receipt = payer.pay(payee.wallet_id, 2_000_00)
        assert receipt.status == "settled"  # the central bank moved the tokens already
        assert payee.balance().balance == 2_000_00  # BKB1 processed the lost delivery
        drain(network)
    finally:
        peer.http = real_http
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payee.balance().balance == 2_000_00  # credited once, although delivered twice
    audit_all(network)


def _delivery_body(network: Any) -> dict[str, Any]:
    with network.state("BKA1").factory() as session:
        payload = session.execute(
            text("SELECT payload FROM outbox WHERE kind = 'rtgs_deliver' ORDER BY id DESC LIMIT 1")
        ).scalar_one()
    return payload["items"][0]["body"]  # batched gross settlement: one body per payment


def test_duplicate_and_forged_deliveries(network: Any) -> None:
    payer = network.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    payee = network.open_wallet("BKB1")
    assert payer.pay(payee.wallet_id, 700_00).status == "delivered"
    body = _delivery_body(network)
    as_bka = network.staff("BKB1")  # a client on BKB1's transport ...
    key, key_id = network.operator_keys["BKA1"], "operator:BKA1"  # ... signing as BKA1

    def deliver(b: dict[str, Any], **kw: Any) -> dict[str, Any]:
        return as_bka.request(
            "POST",
            "/v1/interop/settlements",
            b,
            key=kw.get("key", key),
            key_id=kw.get("key_id", key_id),
        )

    again = deliver(body)
    assert again["replayed"] is True and again["outcome"] == "credited"
    assert payee.balance().balance == 700_00

    def rejected(b: dict[str, Any]) -> None:
        with pytest.raises(RemoteError) as caught:
            deliver(b)
        assert (caught.value.status, caught.value.code) == (409, "settlement_rejected")

    # a receipt not signed by the central bank
    forged = copy.deepcopy(body)
    forged["receipt"] = sign_document(SigningKey.generate(), body["receipt"]["document"])
    rejected(forged)
    # a genuine receipt with a bigger amount written in
    inflated = copy.deepcopy(body)
    inflated["receipt"]["document"]["amount"] = 7_000_00
    rejected(inflated)
    # genuine receipt, tokens tampered
    tampered = copy.deepcopy(body)
    tampered["payee_tokens"][0]["amount"] = 7_000_00
    rejected(tampered)
    # a genuine receipt delivered by an operator that did not settle it
    with pytest.raises(RemoteError) as caught:
        deliver(body, key=network.operator_keys["BKB1"], key_id="operator:BKB1")
    assert caught.value.status == 403  # BKB1's own key is staff, not a peer operator
    assert payee.balance().balance == 700_00
    audit_all(network)
