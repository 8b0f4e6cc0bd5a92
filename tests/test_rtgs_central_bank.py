"""The central bank's batched gross settlement (`POST /v1/settlements/batch`): every item
settles gross with its own receipt and token, refusals are per item, the inputs are spent once
and the change minted once, a replay gives the same signed answer, and no item ever settles
twice (not even in another batch)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

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


def batch(client: Any, serials: list[str], items: list[tuple[str, str, int]], key: str) -> Any:
    return client.request(
        "POST",
        "/v1/settlements/batch",
        {
            "reference": key,
            "serials": serials,
            "items": [{"reference": r, "payee_operator": p, "amount": a} for r, p, a in items],
        },
        idempotency_key=key,
    )


def settlements(network: Any, reference: str) -> int:
    with network.cb_app.state.cb.factory() as s:
        return int(
            s.execute(
                text(
                    "SELECT count(*) FROM operations WHERE kind = 'settlement' AND reference = :r"
                ),
                {"r": reference},
            ).scalar_one()
        )


def test_batch_settles_each_item_with_its_own_receipt(network: Any) -> None:
    bka, bkb = operator_client(network, "BKA1"), operator_client(network, "BKB1")
    cb_public = network.cb_key.public_key
    token = issue(bka, 1_000_00)["tokens"][0]
    key = idem()
    items = [
        ("pay:1", "BKB1", 100_00),
        ("pay:2", "BKB1", 250_00),
        ("pay:3", "ZZZ9", 5_00),
        ("pay:4", "BKA1", 5_00),
        ("pay:5", "BKB1", 700_00),
        ("pay:6", "BKB1", 50_00),
    ]
    answer = batch(bka, [token["serial"]], items, key)
    assert answer["replayed"] is False
    statuses = [(i["reference"], i["status"], i.get("code")) for i in answer["items"]]
    assert statuses == [
        ("pay:1", "settled", None),
        ("pay:2", "settled", None),
        ("pay:3", "refused", "unknown_operator"),
        ("pay:4", "refused", "validation_error"),
        ("pay:5", "refused", "amount_mismatch"),  # only 650_00 left of the inputs
        ("pay:6", "settled", None),
    ]
    (change,) = answer["change"]
    assert change["amount"] == 1_000_00 - 400_00 and verify_token(cb_public, change)
    assert verify_document(cb_public, answer["receipt"])
    assert answer["receipt"]["document"]["inputs"] == [token["serial"]]
    assert answer["receipt"]["document"]["change_tokens"] == [change["serial"]]
    ids = set()
    for item, amount in zip(
        [i for i in answer["items"] if i["status"] == "settled"],
        (100_00, 250_00, 50_00),
        strict=True,
    ):
        doc = item["receipt"]["document"]
        assert verify_document(cb_public, item["receipt"])
        assert (doc["kind"], doc["mode"], doc["amount"]) == ("settlement", "rtgs", amount)
        assert (doc["payer_operator"], doc["payee_operator"]) == ("BKA1", "BKB1")
        assert doc["reference"] == item["reference"] and doc["batch"] == key
        assert doc["settlement_id"] == item["settlement_id"]
        (minted,) = item["payee_tokens"]
        assert minted["amount"] == amount and verify_token(cb_public, minted)
        assert doc["payee_tokens"] == [minted["serial"]]
        assert token_info(network, minted["serial"])["owner"] == "BKB1"
        ids.add(item["settlement_id"])
    assert len(ids) == 3
    assert token_info(network, token["serial"])["status"] == "spent"
    a, b = position(bka), position(bkb)
    assert a["circulation"] == a["live_token_value"] == 600_00
    assert b["circulation"] == b["live_token_value"] == 400_00
    assert a["reserves"] == RESERVES - 1_000_00
    for ref in ("pay:1", "pay:2", "pay:6"):
        assert settlements(network, ref) == 1
    assert settlements(network, "pay:5") == 0

    # The same request again: the same signed answer, nothing settled again.
    again = batch(bka, [token["serial"]], items, key)
    assert again["replayed"] is True
    assert {k: v for k, v in again.items() if k != "replayed"} == {
        k: v for k, v in answer.items() if k != "replayed"
    }
    # The same key with another body is refused.
    refused(lambda: batch(bka, [change["serial"]], items[:1], key), 409, "idempotency_key_reused")
    assert position(bka)["circulation"] == 600_00
    cb_audit_ok(network)


def test_an_item_settled_before_is_answered_not_settled_again(network: Any) -> None:
    bka = operator_client(network, "BKA1")
    first, second = issue(bka, 300_00)["tokens"][0], issue(bka, 300_00)["tokens"][0]
    one = batch(bka, [first["serial"]], [("pay:a", "BKB1", 100_00)], idem())
    settled = one["items"][0]
    # A later batch (another key, other inputs) naming pay:a again, and a new item.
    two = batch(
        bka, [second["serial"]], [("pay:a", "BKB1", 100_00), ("pay:b", "BKB1", 50_00)], idem()
    )
    replay, new = two["items"]
    assert replay["status"] == "settled" and replay["replayed"] is True
    assert replay["settlement_id"] == settled["settlement_id"]
    assert replay["receipt"] == settled["receipt"]
    assert new["status"] == "settled"
    # pay:a's amount was not taken from the second batch's inputs
    assert two["change"][0]["amount"] == 300_00 - 50_00
    assert settlements(network, "pay:a") == 1
    # A different amount under a settled reference is refused for that item only.
    three = batch(bka, [two["change"][0]["serial"]], [("pay:a", "BKB1", 1)], idem())
    assert three["items"][0]["code"] == "idempotency_key_reused"
    assert position(bka)["circulation"] == 600_00 - 150_00
    cb_audit_ok(network)


def test_a_batch_with_bad_inputs_is_refused_as_a_whole(network: Any) -> None:
    bka, bkb = operator_client(network, "BKA1"), operator_client(network, "BKB1")
    mine = issue(bka, 100_00)["tokens"][0]
    theirs = issue(bkb, 100_00)["tokens"][0]
    error = refused(
        lambda: batch(bka, [theirs["serial"]], [("pay:x", "BKB1", 1_00)], idem()),
        403,
        "token_not_owned",
    )
    assert error.code == "token_not_owned"
    refused(
        lambda: batch(bka, [mine["serial"]], [("pay:y", "BKB1", 1), ("pay:y", "BKB1", 2)], idem()),
        422,
        "validation_error",
    )
    assert token_info(network, mine["serial"])["status"] == "live"
    assert settlements(network, "pay:x") == settlements(network, "pay:y") == 0
    cb_audit_ok(network)
