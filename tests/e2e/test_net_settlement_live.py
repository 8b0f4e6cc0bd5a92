"""Deferred net settlement on a real network (`CBDC_SETTLEMENT_MODE=net`): the central bank's
clearing timer and the operators' outbox workers settle payments by themselves, and
`cbdc audit` (which waits for payments in clearing) finds money conserved."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from cbdc.crypto import SigningKey
from cbdc.http import SignedClient
from cbdc.settings import Settings
from orchestration.audit import run_audit
from orchestration.network import Network
from tests.e2e.conftest import LiveNetwork, drop_databases, free_port_base
from wallets.client import OperatorClient, WalletClient


@pytest.fixture(scope="module")
def net_network(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveNetwork]:
    data_dir = tmp_path_factory.mktemp("e2e-net-network")
    settings = Settings(
        database_url=pg_url,
        data_dir=data_dir,
        port=free_port_base(3),
        operators=2,
        settlement_mode="net",
        net_interval_seconds=0.5,
    )
    prefix = f"e2enet_{uuid.uuid4().hex[:10]}"
    network = Network(settings, db_prefix=prefix)
    try:
        network.prepare()
        config = network.start()
    except Exception:
        network.stop(stop_database=False)
        drop_databases(pg_url, prefix)
        raise
    yield LiveNetwork(config=config, data_dir=network.data_dir, network=network)
    network.stop(stop_database=False)
    drop_databases(pg_url, prefix)


def _wallet(live: LiveNetwork, code: str, load: int) -> WalletClient:
    node = live.config.operator(code)
    wallet = OperatorClient.connect(node.url).open_wallet(
        display_name="Net Tester", phone="+8613800000000"
    )
    if load:
        live.credit_deposit(code, wallet.balance().customer_id, load)
        wallet.load(load)
    return wallet


def test_payments_settle_net_by_themselves_and_the_audit_holds(net_network: LiveNetwork) -> None:
    assert net_network.config.settlement_mode == "net"
    alice = _wallet(net_network, "BKA1", 5_000_00)
    bob = _wallet(net_network, "BKB1", 5_000_00)
    out = [alice.pay(bob.wallet_id, 1_000_00), alice.pay(bob.wallet_id, 500_00)]
    back = bob.pay(alice.wallet_id, 300_00)
    assert all(r.status == "pending_settlement" for r in [*out, back])

    deadline = time.monotonic() + 30
    while any(alice.payment(r.payment_id).status != "delivered" for r in out) or (
        bob.payment(back.payment_id).status != "delivered"
    ):
        assert time.monotonic() < deadline, "not settled by the timer and the workers"
        time.sleep(0.2)
    assert alice.balance().balance == 5_000_00 - 1_500_00 + 300_00
    assert bob.balance().balance == 5_000_00 + 1_500_00 - 300_00

    cb = net_network.config.central_bank
    admin = SignedClient(
        httpx.Client(base_url=cb.url, timeout=30),
        key=SigningKey.load(Path(cb.admin_key_file)),
        key_id="admin",
        server_public_key=cb.public_key,
    )
    stats = admin.request("GET", "/v1/stats/clearing")
    paid = {code: stats["operators"][code]["net_paid"] for code in ("BKA1", "BKB1")}
    # The timer may close a cycle between the payments (a loaded machine): whichever cycles they
    # fell in, what the operators paid nets their positions exactly, cycle by cycle.
    assert paid["BKA1"] - paid["BKB1"] == 1_200_00
    assert sum(c["net_settled"] for c in stats["cycles"]) == sum(paid.values())
    if any(c["items"] == 3 for c in stats["cycles"]):  # all three in one cycle
        assert paid == {"BKA1": 1_200_00, "BKB1": 0}
    assert stats["operators"]["BKA1"]["rtgs_liquidity"] == 1_500_00
    assert {c["trigger"] for c in stats["cycles"]} <= {"timer", "max_items"}
    supply = admin.request("GET", "/v1/stats/money-supply")
    assert "settlement" not in supply["operations"]

    # more payments right before the audit: it waits for their clearing cycle
    alice.pay(bob.wallet_id, 100_00)
    report = run_audit(net_network.config, drain_timeout=30)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    assert bob.balance().balance == 5_000_00 + 1_600_00 - 300_00
