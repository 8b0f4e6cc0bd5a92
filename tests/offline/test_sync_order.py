"""The outcome does not depend on sync order: the same offline payments (an honest device at
each operator, a device and its clone overspending across two payees at two operators) synced in
several orders, payer first for some transfers and payee first for others, end with the same
balances, purses, losses, recoveries and revocations."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import audits_ok, drain
from tests.offline.helpers import balance, fund, purse, register, scalar, sync

ORDERS = [
    ("pa", "clone", "pd", "pb", "pc"),  # every payer first
    ("pc", "pb", "pd", "pa", "clone"),  # every payee first
    ("pb", "pa", "pc", "clone", "pd"),
    ("pc", "pa", "pd", "clone", "pb"),
    ("clone", "pc", "pa", "pb", "pd"),
]


@pytest.mark.parametrize("order", ORDERS, ids=["-".join(o) for o in ORDERS])
def test_the_same_payments_in_any_sync_order_end_the_same(
    network: Any, order: tuple[str, ...]
) -> None:
    alice = network.open_wallet("BKA1", deposit=150_00, load=150_00)
    carol = network.open_wallet("BKA1")
    bob = network.open_wallet("BKB1")
    dan = network.open_wallet("BKB1", deposit=100_00, load=100_00)
    pa, pc = register(network, "BKA1", alice, "a"), register(network, "BKA1", carol, "c")
    pb, pd = register(network, "BKB1", bob, "b"), register(network, "BKB1", dan, "d")
    fund(network, "BKA1", pa, 100_00)  # alice keeps 50.00 online
    fund(network, "BKB1", pd, 50_00)  # dan keeps 50.00 online
    clone = pa.clone()
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 60_00, now), now)  # counter 1
    pc.receive(pa.pay(pc.device_id, carol.wallet_id, 30_00, now), now)  # counter 2
    pc.receive(clone.pay(pc.device_id, carol.wallet_id, 50_00, now), now)  # counter 1 again
    pb.receive(clone.pay(pb.device_id, bob.wallet_id, 20_00, now), now)  # counter 2 again
    pc.receive(pd.pay(pc.device_id, carol.wallet_id, 40_00, now), now)  # BKB1 -> BKA1
    devices = {"pa": ("BKA1", pa), "clone": ("BKA1", clone), "pb": ("BKB1", pb)}
    devices |= {"pc": ("BKA1", pc), "pd": ("BKB1", pd)}
    for name in order:
        code, se = devices[name]
        sync(network, code, se)
        drain(network)
    drain(network)

    # pa's device paid 160.00 on 100.00 funded: 50.00 recovered from alice, 10.00 lost
    final = {
        "alice": balance(network, "BKA1", alice.wallet_id),
        "carol": balance(network, "BKA1", carol.wallet_id),
        "bob": balance(network, "BKB1", bob.wallet_id),
        "dan": balance(network, "BKB1", dan.wallet_id),
        "purse a": purse(network, "BKA1", pa.device_id),
        "purse d": purse(network, "BKB1", pd.device_id),
        "spends": scalar(
            network,
            "BKA1",
            "SELECT json_agg(json_build_array(loss, recovered)) FROM offline_double_spends",
        ),
        "revoked A": scalar(
            network, "BKA1", "SELECT array_agg(id) FROM offline_devices WHERE status = 'revoked'"
        ),
        "revoked B": scalar(
            network, "BKB1", "SELECT count(*) FROM offline_devices WHERE status = 'revoked'"
        ),
    }
    assert final == {
        "alice": 0,
        "carol": 120_00,
        "bob": 80_00,
        "dan": 50_00,
        "purse a": 0,
        "purse d": 10_00,
        "spends": [[10_00, 50_00]],
        "revoked A": [pa.device_id],
        "revoked B": 0,
    }
    _, reports = audits_ok(network)
    assert reports["BKA1"]["offline"]["fraud_losses"] == 10_00
    assert reports["BKB1"]["offline"]["fraud_losses"] == 0
    for code in ("BKA1", "BKB1"):
        assert reports[code]["in_transit_out"] == 0
        assert reports[code]["offline"]["claims_forwarding"] == 0
        assert reports[code]["failed_jobs"] == []
