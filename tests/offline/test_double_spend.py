"""Double spends: a cloned secure element (counter reuse) detected whichever device syncs first,
with the same final balances, loss and revocation; a device that signs beyond its purse
(overspend); re-syncs that move nothing."""

from __future__ import annotations

from typing import Any

import pytest

from cbdc import offline as kernel
from operators.offline import revocations
from tests.helpers import audits_ok, drain
from tests.offline.helpers import balance, device_row, fund, purse, register, scalar, sync
from wallets.offline.secure_element import SecureElement

# Three syncs (the payer, bob's device at the other operator, carol's at the same operator),
# in every order that matters.
ORDERS = [("pa", "pb", "pc"), ("pb", "pc", "pa"), ("pc", "pb", "pa"), ("pb", "pa", "pc")]


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_clone_is_detected_whichever_syncs_first(network: Any, order: tuple[str, ...]) -> None:
    alice = network.open_wallet("BKA1", deposit=120_00, load=120_00)
    bob = network.open_wallet("BKB1")
    carol = network.open_wallet("BKA1")
    pa = register(network, "BKA1", alice)
    pb, pc = register(network, "BKB1", bob), register(network, "BKA1", carol)
    fund(network, "BKA1", pa, 100_00)  # alice keeps 20.00 online
    clone = pa.clone()
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 80_00, now), now)
    pc.receive(clone.pay(pc.device_id, carol.wallet_id, 80_00, now), now)  # counter 1 again
    devices = {"pa": ("BKA1", pa), "pb": ("BKB1", pb), "pc": ("BKA1", pc)}
    for name in order:
        code, se = devices[name]
        sync(network, code, se)
        drain(network)

    # Both payees are credited in full; the purse paid 100.00, alice's online 20.00 was
    # recovered, the operator carries the other 40.00.
    assert balance(network, "BKB1", bob.wallet_id) == 80_00
    assert balance(network, "BKA1", carol.wallet_id) == 80_00
    assert balance(network, "BKA1", alice.wallet_id) == 0
    assert purse(network, "BKA1", pa.device_id) == 0
    row = device_row(network, "BKA1", pa.device_id)
    assert (row.status, row.revoke_reason) == ("revoked", "counter_reuse")
    spends = scalar(
        network,
        "BKA1",
        "SELECT json_agg(json_build_object('kind', kind, 'loss', loss, 'recovered', recovered))"
        " FROM offline_double_spends",
    )
    assert spends == [{"kind": "counter_reuse", "loss": 40_00, "recovered": 20_00}]
    alerts = scalar(
        network, "BKA1", "SELECT count(*) FROM aml_alerts WHERE rule = 'offline_double_spend'"
    )
    assert alerts == 1
    # reported to the central bank: every payee now refuses the device
    state = network.state("BKA1")
    listed = revocations.latest_list(state.ctx)
    assert pa.device_id in revocations.revoked_devices(listed, state.ctx.central_bank_public_key)
    _, reports = audits_ok(network)
    assert reports["BKA1"]["failed_jobs"] == [] and reports["BKB1"]["failed_jobs"] == []
    # the alert reached the analysis centre, pseudonymous like every report
    reported = network.admin.request(
        "GET", "/v1/analysis/alerts", params={"rule": "offline_double_spend"}
    )["alerts"]
    assert [(a["wallet"], a["details"]["kind"]) for a in reported] == [
        (alice.wallet_id, "counter_reuse")
    ]
    assert reports["BKA1"]["offline"]["fraud_losses"] == 40_00
    assert reports["BKA1"]["offline"]["double_spends"] == 1
    assert reports["BKB1"]["offline"]["fraud_losses"] == 0


def test_overspend_is_detected_and_the_loss_booked(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=130_00, load=130_00)
    bob = network.open_wallet("BKA1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKA1", bob)
    fund(network, "BKA1", pa, 100_00)  # alice keeps 30.00 online
    # a tampered secure element that believes its purse holds more than was funded
    state = pa.state()
    state["purse"] = 10_000_00
    rogue = SecureElement.from_state(state)
    now = network.state("BKA1").ctx.now()
    for amount in (90_00, 90_00):
        pb.receive(rogue.pay(pb.device_id, bob.wallet_id, amount, now), now)
    answer = sync(network, "BKA1", pb)
    assert [r["status"] for r in answer["received"]] == ["settled", "double_spend"]
    assert balance(network, "BKA1", bob.wallet_id) == 180_00
    assert purse(network, "BKA1", pa.device_id) == 0
    assert balance(network, "BKA1", alice.wallet_id) == 0  # 30.00 recovered
    row = device_row(network, "BKA1", pa.device_id)
    assert (row.status, row.revoke_reason) == ("revoked", "overspend")
    loss = scalar(network, "BKA1", "SELECT sum(loss) FROM offline_double_spends")
    assert loss == 50_00
    # a revoked device cannot be funded again
    from cbdc.db import transaction
    from operators.offline import funding
    from operators.offline.errors import DeviceRevoked

    st = network.state("BKA1")
    with pytest.raises(DeviceRevoked):
        transaction(
            st.factory,
            lambda s: funding.fund(s, st.ctx, device_id=pa.device_id, amount=1, nonce="n" * 12),
        )
    _, reports = audits_ok(network)
    assert reports["BKA1"]["offline"]["fraud_losses"] == 50_00


def test_the_same_log_again_moves_nothing(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    bob = network.open_wallet("BKB1")
    carol = network.open_wallet("BKA1")
    pa = register(network, "BKA1", alice)
    pb, pc = register(network, "BKB1", bob), register(network, "BKA1", carol)
    fund(network, "BKA1", pa, 100_00)
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 10_00, now), now)
    pc.receive(pa.pay(pc.device_id, carol.wallet_id, 20_00, now), now)
    first = [sync(network, code, se, apply=False) for code, se in (("BKB1", pb), ("BKA1", pc))]
    drain(network)
    again = [sync(network, code, se, apply=False) for code, se in (("BKB1", pb), ("BKA1", pc))]
    drain(network)
    assert [r["status"] for r in first[1]["received"]] == ["settled"]
    assert [r["status"] for r in again[1]["received"]] == ["duplicate"]
    assert [r["status"] for r in again[0]["received"]] == ["accepted"]  # the stored claim
    for _ in range(2):
        assert [r["outcome"] for r in sync(network, "BKA1", pa, apply=False)["sent"]] == [
            "duplicate",
            "duplicate",
        ]
    assert balance(network, "BKB1", bob.wallet_id) == 10_00
    assert balance(network, "BKA1", carol.wallet_id) == 20_00
    assert purse(network, "BKA1", pa.device_id) == 70_00
    assert scalar(network, "BKA1", "SELECT count(*) FROM offline_transfers") == 2
    assert scalar(network, "BKA1", "SELECT count(*) FROM offline_double_spends") == 0
    audits_ok(network)


def test_a_transfer_no_payee_would_accept_is_not_honoured(network: Any) -> None:
    from cbdc import offline as kernel
    from cbdc.crypto import SigningKey

    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    bob = network.open_wallet("BKA1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKA1", bob)
    fund(network, "BKA1", pa, 100_00)
    key = SigningKey.from_private_bytes(pa.state()["sealed_key"])
    now = network.state("BKA1").ctx.now()
    over = kernel.transfer(
        payer=pa.device_id,
        payee=pb.device_id,
        payee_wallet=bob.wallet_id,
        counter=1,
        amount=pa.limits.per_payment + 1,
        currency="CNY",
        at=now,
        prev=kernel.GENESIS,
    )
    state = pa.state()
    state["sent"] = [{"transfer": over, "signature": key.sign_json(over)}]
    state["counter"] = 1
    rogue = SecureElement.from_state(state)
    answer = sync(network, "BKA1", rogue, apply=False)
    assert [(r["outcome"], r.get("code")) for r in answer["sent"]] == [
        ("refused", kernel.OVER_LIMIT)
    ]
    assert balance(network, "BKA1", bob.wallet_id) == 0
    assert purse(network, "BKA1", pa.device_id) == 100_00
    assert device_row(network, "BKA1", pa.device_id).status == "active"
    audits_ok(network)


def test_an_overspend_to_a_payee_that_cannot_take_it_pays_the_payer_nothing_extra(
    network: Any,
) -> None:
    from sqlalchemy import text

    alice = network.open_wallet("BKA1", deposit=150_00, load=150_00)
    bob = network.open_wallet("BKA1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKA1", bob)
    fund(network, "BKA1", pa, 100_00)  # alice keeps 50.00 online
    state = pa.state()
    state["purse"] = 10_000_00
    rogue = SecureElement.from_state(state)
    now = network.state("BKA1").ctx.now()
    pb.receive(rogue.pay(pb.device_id, bob.wallet_id, 150_00, now), now)
    with network.state("BKA1").engine.begin() as conn:
        conn.execute(
            text("UPDATE wallets SET status = 'frozen' WHERE id = :w"), {"w": bob.wallet_id}
        )
    answer = sync(network, "BKA1", pb)
    assert [r["status"] for r in answer["received"]] == ["double_spend"]
    # the purse's 100.00 goes back to alice; the float pays nothing, nothing is "recovered"
    assert balance(network, "BKA1", alice.wallet_id) == 150_00
    assert balance(network, "BKA1", bob.wallet_id) == 0
    assert purse(network, "BKA1", pa.device_id) == 0
    assert device_row(network, "BKA1", pa.device_id).status == "revoked"
    assert scalar(network, "BKA1", "SELECT sum(loss) FROM offline_double_spends") == 0
    _, reports = audits_ok(network)
    assert reports["BKA1"]["offline"]["fraud_losses"] == 0


@pytest.mark.parametrize("first", ["payee", "defund"])
def test_a_rolled_back_device_that_defunds_is_caught(network: Any, first: str) -> None:
    from cbdc.db import transaction
    from operators.offline import funding

    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    bob = network.open_wallet("BKA1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKA1", bob)
    fund(network, "BKA1", pa, 100_00)  # alice has nothing left online
    saved = pa.state()
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 80_00, now), now)
    rolled_back = SecureElement.from_state(saved)  # the purse as it was: 100.00, counter 0
    signed = rolled_back.defund(100_00, now)  # counter 1 again
    state = network.state("BKA1")

    def defund() -> dict[str, Any]:
        return transaction(  # type: ignore[no-any-return]
            state.factory,
            lambda s: funding.defund(s, state.ctx, device_id=pa.device_id, signed_transfer=signed),
        )

    if first == "payee":
        sync(network, "BKA1", pb)
        assert defund()["outcome"] == "double_spend"
    else:
        assert defund()["credited"] == 100_00
        assert [r["status"] for r in sync(network, "BKA1", pb)["received"]] == ["double_spend"]
    # either way: bob has his 80.00, alice ends with the 20.00 that were really hers, no loss
    assert balance(network, "BKA1", bob.wallet_id) == 80_00
    assert balance(network, "BKA1", alice.wallet_id) == 20_00
    assert purse(network, "BKA1", pa.device_id) == 0
    row = device_row(network, "BKA1", pa.device_id)
    assert (row.status, row.revoke_reason) == ("revoked", "counter_reuse")
    assert scalar(network, "BKA1", "SELECT sum(loss) FROM offline_double_spends") == 0
    audits_ok(network)


def test_a_revoked_device_cannot_settle_its_own_payments(network: Any) -> None:
    """A rolled-back device forgets it was revoked and signs again; the transfers it brings
    itself after its revocation are not settled (its payees bring what they accepted), so
    rolling back and syncing, again and again, does not drain the float."""
    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    mallory = network.open_wallet("BKA1")
    pa, pm = register(network, "BKA1", alice), register(network, "BKA1", mallory, "m")
    fund(network, "BKA1", pa, 100_00)  # alice keeps nothing online
    funded = pa.state()
    now = network.state("BKA1").ctx.now()
    pm.receive(pa.pay(pm.device_id, mallory.wallet_id, 100_00, now), now)
    assert [r["outcome"] for r in sync(network, "BKA1", pa)["sent"]] == ["settled"]
    branches = []
    for amount in (99_00, 98_00, 97_00):
        rolled = SecureElement.from_state(funded)  # the purse full, the counter back at 0
        branches.append(rolled.pay(pm.device_id, mallory.wallet_id, amount, now))
        answer = sync(network, "BKA1", rolled, apply=False)
        if amount == 99_00:  # the reuse is detected (and honoured: it may have a payee)
            assert [r["outcome"] for r in answer["sent"]] == ["double_spend"]
        else:
            assert [(r["outcome"], r.get("code")) for r in answer["sent"]] == [
                ("refused", "offline_device_revoked")
            ]
    with pytest.raises(kernel.OfflineRefusal):  # an honest payee took counter 1 already
        pm.receive(branches[-1], now)
    sync(network, "BKA1", pm)
    assert balance(network, "BKA1", mallory.wallet_id) == 199_00
    _, reports = audits_ok(network)
    assert reports["BKA1"]["offline"]["fraud_losses"] == 99_00
