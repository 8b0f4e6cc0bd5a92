"""Offline payments from the shell, as a user runs them (issue #15, "done when"): `cbdc up` as a
real process, wallets at two operators, a device for each, funded; `cbdc up` stopped (and no
service answering); offline payments both ways with the network down; restart; syncs in both
orders; a clone attack and a rollback attack detected (the clone's at its own operator, the
rollback's through a claim forwarded by the payee's operator), the devices revoked (their own
`show`, and a synced payee refusing the clone offline); `cbdc audit` passing at the end, with the
fraud loss booked and what the devices still hold unsynced listed.

Amounts (class IV: 500.00 per payment, 1,000.00 purse):
    alice (BKA1) loads 350, funds 300          -> wallet 50,  purse 300
    bob   (BKB1) loads 1,100, funds 200        -> wallet 900, purse 200
    offline: alice -> bob 50 (#1), bob -> alice 20 (bob #1), roll bob back one payment,
             bob -> carol 20 (bob #1 again), alice -> carol 30 (#2), clone alice,
             alice -> bob 100 (#3), the clone -> carol 200 (#3 again)
    alice's device signed 380 against 300 funded: shortfall 80, recovered from her wallet
    (50 + bob's 20 = 70), 10 lost. bob's device signed 40 against 200: no loss, but caught.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from cbdc.settings import NetworkConfig, network_file
from tests.e2e.conftest import cbdc_executable, cli_env, drop_databases, free_port_base, run_cli

Result = subprocess.CompletedProcess[str]


def _out(result: Result) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


class Shell:
    """`cbdc ...` in subprocesses against one data directory and database prefix."""

    def __init__(self, data_dir: Path, env: dict[str, str], port: int) -> None:
        self.data_dir, self.env, self.port = data_dir, env, port
        self.up_process: subprocess.Popen[bytes] | None = None

    def __call__(self, *args: str, ok: bool = True, timeout: float = 60) -> Result:
        result = run_cli(*args, "--data-dir", str(self.data_dir), env=self.env, timeout=timeout)
        if ok:
            assert result.returncode == 0, _out(result)
        assert "Traceback" not in result.stdout + result.stderr, _out(result)
        return result

    def json(self, *args: str) -> dict:  # type: ignore[type-arg]
        return json.loads(self(*args, "--json").stdout)  # type: ignore[no-any-return]

    def urls(self) -> list[str]:
        config = NetworkConfig.load(network_file(self.data_dir))
        return [config.central_bank.url, *(node.url for node in config.operators)]

    def up(self) -> None:
        """`cbdc up` in the background; returns once it says the services are up."""
        log = (self.data_dir.parent / f"up-{time.time_ns()}.log").open("wb")
        self.up_process = subprocess.Popen(
            [cbdc_executable(), "up", "--data-dir", str(self.data_dir), "--port", str(self.port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**self.env, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            assert self.up_process.poll() is None, Path(log.name).read_text()
            if "Press Ctrl-C" in Path(log.name).read_text():
                return
            time.sleep(0.2)
        raise AssertionError(f"cbdc up did not start:\n{Path(log.name).read_text()}")

    def down(self) -> None:
        """Stop `cbdc up` as Ctrl-C would, and prove that no service answers any more."""
        process = self.up_process
        if process is None:
            return
        self.up_process = None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise
        for url in self.urls():
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{url}/health", timeout=2)


@pytest.fixture
def shell(pg_url: str, tmp_path: Path) -> Iterator[Shell]:
    prefix = f"e2eoff{uuid.uuid4().hex[:8]}"
    env = cli_env(CBDC_DATABASE_URL=pg_url, CBDC_DB_PREFIX=prefix)
    cbdc = Shell(tmp_path / "net", env, free_port_base(3))
    try:
        yield cbdc
    finally:
        cbdc.down()
        drop_databases(pg_url, prefix)


def _until(check: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


@contextmanager
def _network_down(cbdc: Shell) -> Iterator[None]:
    cbdc.down()
    yield
    cbdc.up()


def test_offline_cli_flow(shell: Shell) -> None:
    cbdc = shell
    cbdc.up()

    # ------------------------------------------------ online: wallets, loads, devices, funding
    cbdc("wallet", "create", "alice", "--operator", "BKA1")
    cbdc("wallet", "create", "bob", "--operator", "BKB1")
    cbdc("wallet", "create", "carol", "--operator", "BKA1")
    for name, amount in (("alice", "350"), ("bob", "1100")):
        cbdc("wallet", "deposit", name, amount)
        cbdc("wallet", "load", name, amount)
    added = cbdc("offline", "device", "add", "alice", "--name", "alice-phone").stdout
    assert "500.00" in added and "1,000.00" in added, added  # class IV's limits
    alice_device = re.findall(r"BKA1D[0-9A-F]{15}", added)[0]
    added = cbdc("offline", "device", "add", "bob", "--name", "bob-card").stdout
    bob_device = re.findall(r"BKB1D[0-9A-F]{15}", added)[0]
    cbdc("offline", "device", "add", "carol", "--name", "carol-phone")
    unknown = cbdc("offline", "device", "add", "nobody", "--name", "x", ok=False)
    assert unknown.returncode == 2 and "nobody" in unknown.stdout, _out(unknown)

    funded = cbdc("offline", "fund", "alice-phone", "300").stdout
    assert "purse 300.00 CNY, wallet 50.00 CNY" in funded, funded
    cbdc("offline", "fund", "bob-card", "200")
    over = cbdc("offline", "fund", "bob-card", "850", ok=False)  # 1,050 > the purse cap
    assert over.returncode == 1 and "offline_purse_cap_exceeded" in over.stdout, _out(over)

    # ------------------------------------------------ offline: the network is stopped
    with _network_down(cbdc):
        cbdc("offline", "pay", "alice-phone", "bob-card", "50")
        cbdc("offline", "pay", "bob-card", "alice-phone", "20")
        rolled = cbdc("offline", "rollback", "bob-card", "--payments", "1").stdout
        assert "counter 0" in rolled and "200.00" in rolled, rolled
        paid = cbdc("offline", "pay", "bob-card", "carol-phone", "20").stdout
        assert "#1" in paid, paid  # the counter bob-card used for alice
        cbdc("offline", "pay", "alice-phone", "carol-phone", "30")
        cbdc("offline", "clone", "alice-phone", "alice-clone")
        cbdc("offline", "pay", "alice-phone", "bob-card", "100")
        paid = cbdc("offline", "pay", "alice-clone", "carol-phone", "200").stdout
        assert "#3" in paid, paid  # the counter alice-phone used for bob too

        # refusals offline: one line with the code, nothing changes
        broke = cbdc("offline", "pay", "carol-phone", "bob-card", "1", ok=False)
        assert broke.returncode == 1 and "offline_insufficient_purse" in broke.stdout, _out(broke)
        big = cbdc("offline", "pay", "bob-card", "carol-phone", "600", ok=False)
        assert "offline_over_limit" in big.stdout, _out(big)

        view = cbdc.json("offline", "show", "alice-phone")
        assert (view["device"], view["purse"], view["counter"]) == (alice_device, 12_000, 3)
        assert [line["counter"] for line in view["unsynced_sent"]] == [1, 2, 3]
        assert view["operator_status"] == "unreachable"
        assert view["certificate_status"] == "active"
        assert len(cbdc.json("offline", "show", "carol-phone")["unsynced_received"]) == 3
        shown = cbdc("offline", "show", "alice-phone").stdout
        assert "unreachable per the operator" in shown and "3 sent" in shown, shown
        listing = cbdc("offline", "list").stdout
        assert "alice-clone" in listing and "carol-phone" in listing, listing

    # ------------------------------------------------ online again: syncs in both orders
    # alice -> bob (#1, #3): the payee syncs first; alice -> carol (#2): the payer first.
    synced = cbdc.json("offline", "sync", "bob-card")
    assert [s["outcome"] for s in synced["sent"]] == ["pending_settlement"], synced  # to carol
    assert {r["counter"] for r in synced["received"]} == {1, 3}, synced
    assert {r["status"] for r in synced["received"]} <= {"forwarding", "accepted"}, synced
    synced = cbdc.json("offline", "sync", "alice-phone")
    assert {s["counter"] for s in synced["sent"]} == {1, 2, 3}, synced
    assert synced["device_status"] == "active", synced  # no conflict has reached BKA1 yet
    # alice's device brings bob's #1 to BKB1, which holds another #1 of bob's: a rollback
    balance = lambda name: cbdc("wallet", "balance", name).stdout  # noqa: E731
    _until(lambda: "wallet balance   70.00 CNY" in balance("alice"), "bob's 20 to land at alice")
    _until(lambda: "wallet balance   1,050.00 CNY" in balance("bob"), "alice's 150 to land at bob")

    # carol brings the clone's transfer #3: counter reuse (and 80 more than was funded)
    synced = cbdc.json("offline", "sync", "carol-phone")
    statuses = {(r["payer"], r["counter"]): r["status"] for r in synced["received"]}
    assert statuses.get((alice_device, 3)) == "double_spend", synced
    assert set(statuses) == {(alice_device, 2), (alice_device, 3), (bob_device, 1)}, synced
    assert "wallet balance   0.00 CNY" in balance("alice")  # 70 of the 80 recovered
    # every accepted payment honoured: 30 + the clone's 200 + bob's 20 (through BKB1)
    _until(lambda: "wallet balance   250.00 CNY" in balance("carol"), "carol's 250")

    # the devices are revoked by their operators at once, and on the central bank's list soon
    def on_list(name: str, *devices: str) -> bool:
        answer = cbdc.json("offline", "sync", name)
        listed = {e["device"] for e in answer["revocations"]["document"]["revoked"]}
        return set(devices) <= listed

    _until(lambda: on_list("alice-phone", alice_device), "alice's device on the list")
    _until(lambda: on_list("bob-card", bob_device), "bob's device on the list")
    rolled_back = cbdc.json("offline", "show", "bob-card")
    assert (rolled_back["certificate_status"], rolled_back["operator_status"]) == (
        "revoked",
        "revoked",
    )
    revoked = cbdc.json("offline", "show", "alice-phone")
    assert (revoked["certificate_status"], revoked["operator_status"]) == ("revoked", "revoked")
    refused = cbdc("offline", "pay", "alice-phone", "bob-card", "1", ok=False)
    assert "offline_device_revoked" in refused.stdout, _out(refused)  # its own SE knows
    clone = cbdc.json("offline", "show", "alice-clone")  # never synced: thinks it is fine
    assert (clone["certificate_status"], clone["operator_status"]) == ("active", "revoked")

    # a payee that synced the list refuses the clone offline
    assert on_list("carol-phone", alice_device, bob_device)
    refused = cbdc("offline", "pay", "alice-clone", "carol-phone", "10", ok=False)
    assert refused.returncode == 1 and "offline_device_revoked" in refused.stdout, _out(refused)
    assert cbdc.json("offline", "show", "alice-clone")["counter"] == 3  # nothing changed

    # ------------------------------------------------ the audit
    report = json.loads(cbdc("audit", "--json", timeout=120).stdout)
    assert report["ok"] is True, report
    bka1, bkb1 = report["operators"]["BKA1"], report["operators"]["BKB1"]
    assert (bka1["offline_double_spends"], bka1["fraud_losses"]) == (1, 1_000)  # 10.00 lost
    assert (bkb1["offline_double_spends"], bkb1["fraud_losses"]) == (1, 0)  # caught, no loss
    assert (bka1["offline_purses"], bkb1["offline_purses"]) == (0, 16_000)  # bob-card: 200-20-20
    devices = {row["name"]: row for row in report["offline_devices"]}
    # the clone never synced: its log still has #1 and #2 (copied from alice-phone) and its #3
    assert devices["alice-clone"]["unsynced_sent"] == 3
    assert devices["alice-clone"]["unsynced_sent_value"] == 5_000 + 3_000 + 20_000
    assert devices["bob-card"]["unsynced_received"] == 0
    assert "Local offline devices" in cbdc("audit").stdout
