"""The batch payment path: many signed orders in one transaction, each checked as a single
payment, refused alone, with locks taken once in ascending order."""

from __future__ import annotations

import threading
from typing import Any

from cbdc.crypto import SigningKey
from tests.helpers import signed_payment


def _audits_ok(net: Any) -> None:
    cb = net.admin.request("GET", "/v1/admin/audit")
    assert cb["ok"], cb
    for code in ("BKA1", "BKB1"):
        report = net.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], report
        assert cb["operators"][code]["live_token_value"] == report["vault_token_value"]


def test_a_batch_posts_what_it_can_and_refuses_the_rest_alone(network: Any) -> None:
    alice = network.open_wallet("BKA1", load=3_000_00)
    bob = network.open_wallet("BKA1", load=100_00)
    carol = network.open_wallet("BKA1")
    dave = network.open_wallet("BKB1")
    first = signed_payment(alice, carol.wallet_id, 10_00)
    forged = signed_payment(alice, carol.wallet_id, 1_00)
    forged["signature"] = SigningKey.generate().sign_json(forged["order"])
    orders = [
        first,
        signed_payment(bob, carol.wallet_id, 50_00),
        signed_payment(alice, carol.wallet_id, 2_500_00),  # over class IV's single-payment limit
        signed_payment(bob, carol.wallet_id, 60_00),  # bob has only 50 left
        forged,
        signed_payment(alice, dave.wallet_id, 20_00),  # across operators
        first,  # the same signed order again: a replay, not a second payment
    ]
    answer = network.operator("BKA1").pay_batch(orders)

    results = answer["results"]
    assert [r["ok"] for r in results] == [True, True, False, False, False, True, True]
    assert [r["problem"]["code"] for r in results if not r["ok"]] == [
        "single_payment_limit_exceeded",
        "insufficient_funds",
        "bad_signature",
    ]
    assert results[6]["receipt"]["replayed"] is True
    assert results[6]["receipt"]["payment_id"] == results[0]["receipt"]["payment_id"]
    assert results[5]["receipt"]["status"] == "pending_settlement"
    assert (answer["accepted"], answer["refused"]) == (4, 3)
    assert alice.balance().balance == 3_000_00 - 10_00 - 20_00
    assert bob.balance().balance == 50_00
    assert carol.balance().balance == 60_00

    # A refused order keeps its nonce: sent again once bob has money, it still cannot succeed.
    network.open_wallet("BKA1")  # unrelated activity
    again = network.operator("BKA1").pay_batch([orders[3]])["results"][0]
    assert again["problem"]["code"] == "order_already_refused"

    network.run_jobs()
    assert dave.balance().balance == 20_00
    _audits_ok(network)


def test_concurrent_batches_over_the_same_wallets_do_not_deadlock(network: Any) -> None:
    wallets = [network.open_wallet("BKA1", load=1_000_00) for _ in range(6)]
    forward = [
        signed_payment(wallets[i], wallets[(i + 1) % 6].wallet_id, 1_00 + i) for i in range(6)
    ]
    backward = [
        signed_payment(wallets[(i + 1) % 6], wallets[i].wallet_id, 2_00 + i)
        for i in reversed(range(6))
    ]
    answers: list[dict[str, Any]] = []
    errors: list[BaseException] = []
    by_id = {w.wallet_id: w for w in wallets}

    def submit(batch: list[dict[str, Any]]) -> None:
        """Five rounds of the same transfers, each round freshly signed (new nonces)."""
        try:
            for _ in range(5):
                answers.append(network.operator("BKA1").pay_batch(batch))
                batch = [
                    signed_payment(
                        by_id[o["order"]["payer"]], o["order"]["payee"], o["order"]["amount"]
                    )
                    for o in batch
                ]
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=submit, args=(b,)) for b in (forward, backward)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(answers) == 10 and all(a["refused"] == 0 for a in answers)
    assert sum(w.balance().balance for w in wallets) == 6 * 1_000_00
    sent = {w.wallet_id: 0 for w in wallets}
    for a in answers:
        for r in a["results"]:
            sent[r["receipt"]["payer"]] -= r["receipt"]["amount"]
            sent[r["receipt"]["payee"]] += r["receipt"]["amount"]
    for w in wallets:
        assert w.balance().balance == 1_000_00 + sent[w.wallet_id]
    _audits_ok(network)
