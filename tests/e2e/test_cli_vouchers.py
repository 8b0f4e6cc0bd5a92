"""`cbdc merchant|programme` and `cbdc wallet pay --voucher` against the running e2e network:
merchants registered at both operators, a programme funded, vouchers spent here and across
operators (by id and `auto`), a refusal on one line, a short programme returned to its issuer
by the operator's worker at its expiry, and the audit."""

from __future__ import annotations

import re
import subprocess
import time

from tests.e2e.conftest import LiveNetwork, cli_env, run_cli


def _out(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_cli_vouchers(live_network: LiveNetwork) -> None:
    data_dir, env = str(live_network.data_dir), cli_env(COLUMNS="250")

    def cli(*args: str, code: int = 0) -> str:
        result = run_cli(*args, "--data-dir", data_dir, env=env, timeout=60)
        assert result.returncode == code, _out(result)
        assert "Traceback" not in result.stdout + result.stderr, _out(result)
        return result.stdout

    cli("wallet", "create", "vou-gov", "--operator", "BKA1")
    cli("wallet", "create", "vou-ann", "--operator", "BKA1")
    cli("wallet", "create", "vou-shop", "--operator", "BKA1")
    cli("wallet", "create", "vou-far", "--operator", "BKB1")
    cli("wallet", "create", "vou-bar", "--operator", "BKA1")
    cli("wallet", "deposit", "vou-gov", "500")
    cli("wallet", "load", "vou-gov", "500")
    assert "groceries" in cli("merchant", "set", "vou-shop", "groceries")
    cli("merchant", "set", "vou-far", "groceries")
    cli("merchant", "set", "vou-bar", "restaurants")
    assert "groceries" in cli("merchant", "show", "vou-far")

    created = cli(
        "programme", "create", "vou-gov", "--name", "food aid", "--categories",
        "groceries,pharmacy", "--per-holder", "100", "--expires", "30d",
    )  # fmt: skip
    assert "active" in created, created
    pid = re.search(r"programme ([0-9a-f-]{36})", created).group(1)  # type: ignore[union-attr]
    funded = cli("programme", "fund", pid, "vou-ann", "80", "--as", "vou-gov")
    assert "granted 80.00 CNY" in funded, funded
    balance = cli("wallet", "balance", "vou-ann")
    assert "voucher" in balance and "80.00 CNY" in balance, balance

    cli("wallet", "pay", "vou-ann", "vou-shop", "30", "--voucher", pid)
    cli("wallet", "pay", "vou-ann", "vou-far", "20", "--voucher", "auto")
    refused = cli("wallet", "pay", "vou-ann", "vou-bar", "5", "--voucher", pid, code=1)
    assert "not_eligible" in refused, refused
    none = cli("wallet", "pay", "vou-ann", "vou-bar", "5", "--voucher", "auto", code=1)
    assert "no voucher" in none, none
    # by default a voucher pays where it is eligible; elsewhere (or --voucher none) money does
    assert "paid from a voucher" in cli("wallet", "pay", "vou-ann", "vou-shop", "5")
    cli("wallet", "deposit", "vou-ann", "20")
    cli("wallet", "load", "vou-ann", "20")
    assert "paid from a voucher" not in cli("wallet", "pay", "vou-ann", "vou-bar", "5")
    plain = cli("wallet", "pay", "vou-ann", "vou-shop", "5", "--voucher", "none")
    assert "paid from a voucher" not in plain, plain
    assert "10.00 CNY" in cli("wallet", "balance", "vou-ann")  # 20 - 5 - 5 of ordinary money
    shown = cli("programme", "show", pid, "--as", "vou-gov")
    assert "spent 55.00 CNY" in shown and "outstanding 25.00 CNY" in shown, shown
    deadline = time.monotonic() + 60
    while "20.00 CNY" not in cli("wallet", "balance", "vou-far"):
        assert time.monotonic() < deadline, "the voucher payment did not reach the payee"
        time.sleep(0.5)

    quick = cli(
        "programme", "create", "vou-gov", "--name", "flash", "--categories", "groceries",
        "--per-holder", "10", "--expires", "4s",
    )  # fmt: skip
    qid = re.search(r"programme ([0-9a-f-]{36})", quick).group(1)  # type: ignore[union-attr]
    cli("programme", "fund", qid, "vou-ann", "10", "--as", "vou-gov")
    deadline = time.monotonic() + 60
    while "expired" not in cli("programme", "show", qid, "--as", "vou-gov"):
        assert time.monotonic() < deadline, "the programme did not expire"
        time.sleep(0.5)
    assert "420.00 CNY" in cli("wallet", "balance", "vou-gov")  # 500 - 80 - 10 + 10
    assert run_cli("audit", "--data-dir", data_dir, env=env, timeout=120).returncode == 0
