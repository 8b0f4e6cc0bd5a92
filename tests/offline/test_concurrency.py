"""Conservation under concurrent syncs: the payer, a clone of it and its payees sync
overlapping logs at once, some more than once; every transfer is honoured exactly once, the
double spend is detected once, and no money is made or lost beyond the booked loss."""

from __future__ import annotations

import threading
from typing import Any

from tests.helpers import audits_ok, drain
from tests.offline.helpers import balance, fund, purse, register, scalar, sync


def test_concurrent_overlapping_syncs_conserve_money(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    payees = [network.open_wallet(code) for code in ("BKA1", "BKA1", "BKB1", "BKB1", "BKA1")]
    pa = register(network, "BKA1", alice)
    devices = [register(network, w.wallet_id[:4], w) for w in payees]
    fund(network, "BKA1", pa, 100_00)  # alice has nothing left online
    clone = pa.clone()
    now = network.state("BKA1").ctx.now()
    for device, wallet in zip(devices[:4], payees[:4], strict=True):
        device.receive(pa.pay(device.device_id, wallet.wallet_id, 25_00, now), now)
    # the clone reuses counter 1 with the fifth payee
    devices[4].receive(clone.pay(devices[4].device_id, payees[4].wallet_id, 25_00, now), now)

    jobs = [("BKA1", pa), ("BKA1", pa), ("BKA1", clone)]
    jobs += [(w.wallet_id[:4], d) for w, d in zip(payees, devices, strict=True)]
    jobs += [(w.wallet_id[:4], d) for w, d in zip(payees[:2], devices[:2], strict=True)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(code: str, se: Any) -> None:
        try:
            barrier.wait()
            sync(network, code, se, apply=False)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    drain(network)

    for wallet in payees:
        assert balance(network, wallet.wallet_id[:4], wallet.wallet_id) == 25_00
    assert purse(network, "BKA1", pa.device_id) == 0
    assert balance(network, "BKA1", alice.wallet_id) == 0
    assert scalar(network, "BKA1", "SELECT count(*) FROM offline_transfers") == 5
    assert scalar(network, "BKA1", "SELECT count(*) FROM offline_double_spends") == 1
    assert scalar(network, "BKA1", "SELECT sum(loss) FROM offline_double_spends") == 25_00
    central, reports = audits_ok(network)
    # Money: the 100.00 alice loaded is now the payees' 125.00, 25.00 of it from the float.
    a, b = reports["BKA1"], reports["BKB1"]
    assert a["offline"]["fraud_losses"] == 25_00
    assert a["wallets"] + b["wallets"] == 125_00
    assert a["offline_purses"] == 0
    assert central["live_token_value"] == a["vault_token_value"] + b["vault_token_value"]
