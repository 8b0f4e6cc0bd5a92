"""What the payee's device checks, the payer's operator checks too when the payer brings the
transfer itself: a transfer whose payee wallet is not the payee device's wallet (no payee's
device would take it) is returned to the payer (what the purse held), whichever side syncs
first; it never credits the wallet it names."""

from __future__ import annotations

from typing import Any

import pytest

from cbdc import offline as kernel
from tests.helpers import audits_ok, drain
from tests.offline.helpers import balance, fund, purse, register, scalar, sync
from wallets.offline.secure_element import SecureElement


@pytest.mark.parametrize("first", ["payer", "payee"])
def test_a_transfer_to_another_wallet_than_the_payee_devices_is_returned(
    network: Any, first: str
) -> None:
    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    bob, mallory = network.open_wallet("BKA1"), network.open_wallet("BKA1")
    dan = network.open_wallet("BKB1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKA1", bob, "b")
    pd = register(network, "BKB1", dan, "d")
    fund(network, "BKA1", pa, 100_00)  # alice keeps nothing online
    now = network.state("BKA1").ctx.now()
    to_mallory = pa.pay(pb.device_id, mallory.wallet_id, 40_00, now)  # bob's device, not wallet
    with pytest.raises(kernel.OfflineRefusal) as caught:
        pb.receive(to_mallory, now)
    assert caught.value.code == kernel.WRONG_PAYEE
    pa.pay(pd.device_id, mallory.wallet_id, 10_00, now)  # a BKB1 device, a BKA1 wallet
    if first == "payee":  # bob's device brings it anyway: refused by its operator
        state = pb.state()
        state["received"].append(to_mallory)
        answer = sync(network, "BKA1", SecureElement.from_state(state), apply=False)
        assert [(r["status"], r.get("code")) for r in answer["received"]] == [
            ("refused", kernel.WRONG_PAYEE)
        ]
    answer = sync(network, "BKA1", pa)
    assert [r["outcome"] for r in answer["sent"]] == ["returned", "returned"]
    drain(network)
    assert balance(network, "BKA1", mallory.wallet_id) == 0
    assert balance(network, "BKA1", alice.wallet_id) == 50_00
    assert purse(network, "BKA1", pa.device_id) == 50_00
    failures = "SELECT string_agg(DISTINCT failure, ',') FROM orders WHERE kind = 'offline_payment'"
    assert scalar(network, "BKA1", failures) == kernel.WRONG_PAYEE
    audits_ok(network)
