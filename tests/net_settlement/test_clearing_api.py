"""The clearing endpoints: authorisation, bad input, closing a cycle over HTTP."""

from __future__ import annotations

import uuid
from typing import Any

from cbdc.http import SignedClient
from tests.net_settlement.helpers import (
    as_operator,
    close,
    conserved,
    problem,
    settle_all,
    submit_all,
)

# ------------------------------------------------------------------ authorisation and input


def test_clearing_endpoints_are_authorised_and_refuse_bad_input(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    alice.pay(bob.wallet_id, 500_00)
    submit_all(net)
    close(net)
    (obligation,) = net.admin.request("GET", "/v1/clearing/obligations")["obligations"]
    oid = obligation["obligation_id"]
    bka, bkb = as_operator(net, "BKA1"), as_operator(net, "BKB1")

    # operators see their own obligations only; a third operator sees nothing
    from cbdc.crypto import SigningKey

    third = SigningKey.generate()
    net.admin.request(
        "POST",
        "/v1/admin/operators",
        {"code": "BKC1", "name": "Bank C", "public_key": third.public_key, "quota": 10**9},
    )
    bkc = SignedClient(net.cb, key=third, key_id="operator:BKC1")
    assert bkc.request("GET", "/v1/clearing/obligations")["obligations"] == []
    assert problem(lambda: bkc.request("GET", f"/v1/clearing/obligations/{oid}")) == (
        404,
        "unknown_obligation",
    )
    assert [o["role"] for o in bka.request("GET", "/v1/clearing/obligations")["obligations"]] == [
        "debtor"
    ]
    # only the debtor pays; only admin closes; stats for admin and regulator
    assert problem(
        lambda: bkb.request(
            "POST",
            f"/v1/clearing/obligations/{oid}/pay",
            {"serials": [str(uuid.uuid4())]},
            idempotency_key=f"net:{oid}",
        )
    ) == (403, "not_debtor")
    assert problem(lambda: bka.request("POST", "/v1/admin/clearing/close")) == (403, "forbidden")
    assert problem(lambda: bka.request("GET", "/v1/stats/clearing")) == (403, "forbidden")
    # acknowledging before it is settled
    assert problem(
        lambda: bkb.request("POST", f"/v1/clearing/obligations/{oid}/ack", {"returned": []})
    ) == (409, "obligation_not_settled")
    # bad input: problem+json with a stable code, never a 500
    assert problem(lambda: bka.request("GET", "/v1/clearing/obligations/not-a-uuid")) == (
        422,
        "validation_error",
    )
    assert problem(lambda: bka.request("GET", "/v1/clearing/obligations", params={"limit": 0})) == (
        422,
        "validation_error",
    )
    good_item = {
        "reference": str(uuid.uuid4()),
        "payee_wallet": bob.wallet_id,
        "payer_alias": "anon-x",
        "amount": 100,
    }

    def submission(**kw: Any) -> dict[str, Any]:
        body = {
            "submission_id": str(uuid.uuid4()),
            "payee_operator": "BKB1",
            "gross": 100,
            "items": [good_item],
        }
        return {**body, **kw}

    def refused(body: dict[str, Any]) -> tuple[int, str]:
        return problem(lambda: bka.request("POST", "/v1/clearing/submissions", body))

    assert refused(submission(gross=101)) == (422, "validation_error")
    assert refused(submission(submission_id="nope")) == (422, "validation_error")
    assert refused(submission(submission_id=str(uuid.uuid4()).upper())) == (
        422,
        "validation_error",
    )
    assert refused(submission(payee_operator="BKA1")) == (422, "validation_error")
    assert refused(submission(payee_operator="ZZZ9")) == (404, "unknown_operator")
    assert refused(submission(items=[{**good_item, "payee_wallet": alice.wallet_id}])) == (
        422,
        "validation_error",
    )
    assert refused(submission(items=[good_item, good_item], gross=200)) == (
        422,
        "validation_error",
    )
    assert refused(submission(items=[{**good_item, "amount": "100"}])) == (
        422,
        "validation_error",
    )
    assert refused(submission(items=[{**good_item, "payer_alias": "a\u0000b"}])) == (
        422,
        "invalid_data",
    )
    assert refused(submission(items=[])) == (422, "validation_error")
    assert problem(
        lambda: bka.request(
            "POST",
            f"/v1/clearing/obligations/{oid}/pay",
            {"serials": ["x"]},
            idempotency_key=f"net:{oid}",
        )
    ) == (422, "validation_error")
    # the regulator may read the statistics
    regulator = SignedClient(net.cb, key=net.regulator.signing, key_id="regulator")
    assert regulator.request("GET", "/v1/stats/clearing")["position"]["obligations_pending"] == 1
    settle_all(net)
    assert bob.balance().balance == 500_00
    conserved(net)


def test_admin_closes_a_cycle_over_http(net: Any) -> None:
    alice = net.open_wallet("BKA1", deposit=5_000_00, load=5_000_00)
    bob = net.open_wallet("BKB1")
    alice.pay(bob.wallet_id, 250_00)
    assert net.admin.request("POST", "/v1/admin/clearing/close")["cycle"] is None
    submit_all(net)
    answer = net.admin.request("POST", "/v1/admin/clearing/close")["cycle"]
    assert answer["trigger"] == "admin" and answer["net"] == 250_00
    settle_all(net)
    assert bob.balance().balance == 250_00
    conserved(net)
