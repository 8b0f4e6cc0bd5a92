from __future__ import annotations

from typing import Any

from tests.helpers import audits_ok
from tests.offline.helpers import balance, fund, purse, register, sync


def test_honest_same_operator(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=1_000_00, load=1_000_00)
    bob = network.open_wallet("BKA1")
    pa = register(network, "BKA1", alice)
    pb = register(network, "BKA1", bob)
    fund(network, "BKA1", pa, 300_00)
    assert balance(network, "BKA1", alice.wallet_id) == 700_00
    now = network.state("BKA1").ctx.now()
    payment = pa.pay(pb.device_id, bob.wallet_id, 120_00, now)
    pb.receive(payment, now)
    answer = sync(network, "BKA1", pb)
    assert answer["received"][0]["status"] == "settled", answer
    assert balance(network, "BKA1", bob.wallet_id) == 120_00
    answer = sync(network, "BKA1", pa)
    assert answer["sent"][0]["outcome"] == "duplicate", answer
    assert purse(network, "BKA1", pa.device_id) == 180_00
    audits_ok(network)
