"""The `cbdc` command as a user runs it: subprocesses against the running e2e network, and
`cbdc demo` on a network of its own."""

from __future__ import annotations

import json
import time
import uuid

from cbdc.settings import NetworkConfig, network_file
from tests.e2e.conftest import LiveNetwork, cli_env, drop_databases, free_port_base, run_cli


def _out(result) -> str:  # type: ignore[no-untyped-def]
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_cli_audit_json(live_network: LiveNetwork) -> None:
    data_dir = live_network.data_dir
    assert network_file(data_dir).exists()
    assert NetworkConfig.load(network_file(data_dir)) == live_network.config

    result = run_cli("audit", "--json", "--data-dir", str(data_dir), timeout=90)

    assert result.returncode == 0, _out(result)
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert isinstance(report["checks"], list) and report["checks"], report
    assert all(check["ok"] for check in report["checks"]), report["checks"]
    names = " | ".join(check["name"] for check in report["checks"])
    for node in live_network.config.operators:
        assert f"{node.code}: live tokens at central bank == float + wallets + in transit" in names
    assert set(report["operators"]) == {n.code for n in live_network.config.operators}
    for summary in report["operators"].values():  # locked and earmarked value (issue #17)
        assert {"escrows", "escrows_open", "vouchers", "programmes_active"} <= set(summary)
    assert report["central_bank"]["live_token_value"] == (
        report["central_bank"]["issued"] - report["central_bank"]["redeemed"]
    )


def test_cli_audit_without_network_exits_2(tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("audit", "--json", "--data-dir", str(tmp_path / "nothing"))
    assert result.returncode == 2, _out(result)
    assert "No network" in result.stdout


def test_cli_wallet_flow(live_network: LiveNetwork) -> None:
    d = str(live_network.data_dir)

    def cbdc(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = run_cli("wallet", *args, "--data-dir", d)
        if ok:
            assert result.returncode == 0, _out(result)
        return result

    created = cbdc("create", "alice", "--operator", "BKA1")
    assert "opened class IV wallet" in created.stdout and "BKA1" in created.stdout
    created = cbdc("create", "bob", "--operator", "BKB1", "--class", "II")
    assert "opened class II wallet" in created.stdout

    listing = cbdc("list")
    assert "alice" in listing.stdout and "bob" in listing.stdout
    assert (live_network.data_dir / "wallets").is_dir()

    assert "500.00" in cbdc("deposit", "alice", "500").stdout
    loaded = cbdc("load", "alice", "300").stdout
    assert "300.00" in loaded and "200.00" in loaded  # wallet 300, deposit 200 left

    paid = cbdc("pay", "alice", "bob", "12.34").stdout
    assert "12.34" in paid and "cross" in paid, paid

    # Cross-operator money lands on bob's side once the delivery is processed.
    deadline = time.time() + 20
    while True:
        balance = cbdc("balance", "bob").stdout
        if "12.34" in balance or time.time() > deadline:
            break
        time.sleep(0.5)
    assert "wallet balance" in balance and "12.34" in balance, balance
    assert "class II" in balance

    alice_balance = cbdc("balance", "alice").stdout
    assert "287.66" in alice_balance, alice_balance

    history = cbdc("history", "alice").stdout
    assert "12.34" in history and "300.00" in history, history

    refused = cbdc("pay", "alice", "bob", "5000", ok=False)
    assert refused.returncode != 0, _out(refused)
    assert "single_payment_limit_exceeded" in refused.stdout, _out(refused)
    # ... and nothing moved.
    assert "287.66" in cbdc("balance", "alice").stdout

    unloaded = cbdc("unload", "alice", "10").stdout
    assert "277.66" in unloaded and "210.00" in unloaded, unloaded

    # Bad input is a clear usage error, not a traceback.
    bad = cbdc("pay", "alice", "bob", "1.234", ok=False)
    assert bad.returncode == 2, _out(bad)
    assert "Traceback" not in bad.stdout + bad.stderr
    unknown = cbdc("balance", "nobody", ok=False)
    assert unknown.returncode == 2, _out(unknown)
    # An unknown payee nickname is answered as such (not as a malformed wallet id) ...
    nobody = cbdc("pay", "alice", "carol", "1", ok=False)
    assert nobody.returncode == 2, _out(nobody)
    assert "'carol' is neither a local wallet nickname nor a wallet id" in nobody.stdout
    # ... a nickname is unique in the data directory ...
    again = cbdc("create", "alice", "--operator", "BKB1", ok=False)
    assert again.returncode == 2, _out(again)
    assert "already here" in again.stdout
    assert cbdc("list").stdout.count("alice") == 1
    # ... and class I is only given at the counter.
    counter = cbdc("upgrade", "alice", "--class", "I", ok=False)
    assert counter.returncode == 2 and "--at-counter" in counter.stdout, _out(counter)
    assert "class IV" in cbdc("balance", "alice").stdout
    assert "Traceback" not in nobody.stdout + again.stdout + counter.stdout


def test_demo_command(pg_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A database prefix of its own, so the demo touches nothing else on the server.
    prefix = f"e2edemo{uuid.uuid4().hex[:8]}"
    data_dir = tmp_path / "demo"
    try:
        result = run_cli(
            "demo",
            "--data-dir",
            str(data_dir),
            "--port",
            str(free_port_base(3)),
            timeout=180,
            env=cli_env(CBDC_DATABASE_URL=pg_url, CBDC_DB_PREFIX=prefix),
        )
    finally:
        drop_databases(pg_url, prefix)
    assert result.returncode == 0, _out(result)
    assert "Every invariant holds" in result.stdout, _out(result)
    assert "single_payment_limit_exceeded" in result.stdout
    assert "returned" in result.stdout
