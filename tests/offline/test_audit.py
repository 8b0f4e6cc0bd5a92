"""`cbdc audit` with offline payments: purses counted as CBDC the operator holds, claims
answered, fraud losses equal to the losses of detected double spends; and the check that
catches a fraud-loss account that disagrees with the detections."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from orchestration.audit import audit_network
from tests.helpers import CODES
from tests.offline.helpers import fund, register, sync


def audit(net: Any) -> dict[str, Any]:
    return audit_network(
        net.admin,
        {code: net.staff(code) for code in CODES},
        regulator_key=net.regulator.signing.public_key,
        central_bank_key=net.cb_key.public_key,
        drain_timeout=10,
    )


def test_cbdc_audit_counts_purses_and_losses(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    bob, carol = network.open_wallet("BKB1"), network.open_wallet("BKB1")
    pa, pb = register(network, "BKA1", alice), register(network, "BKB1", bob)
    pc = register(network, "BKB1", carol)
    fund(network, "BKA1", pa, 60_00)
    clone = pa.clone()
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 50_00, now), now)
    pc.receive(clone.pay(pc.device_id, carol.wallet_id, 50_00, now), now)  # counter 1 again
    sync(network, "BKB1", pb)
    sync(network, "BKB1", pc)
    report = audit(network)  # its drain forwards the claims and settles what they start
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    a, b = report["operators"]["BKA1"], report["operators"]["BKB1"]
    # purse 60.00 took 60.00, alice's 40.00 online paid the rest: no loss
    assert (a["offline_purses"], a["offline_double_spends"], a["fraud_losses"]) == (0, 1, 0)
    assert b["wallets"] == 100_00 and b["offline_claims_forwarding"] == 0
    names = {c["name"] for c in report["checks"]}
    assert "BKA1: fraud_losses == losses of detected double spends" in names
    assert "BKA1: vault tokens == float + wallets + in transit + offline purses" in names

    # a fraud-loss row that no posting backs is caught
    with network.state("BKA1").engine.begin() as conn:
        conn.execute(text("UPDATE offline_double_spends SET loss = loss + 1"))
    report = audit(network)
    failed = [c["name"] for c in report["checks"] if not c["ok"]]
    assert failed == ["BKA1: fraud_losses == losses of detected double spends"]
