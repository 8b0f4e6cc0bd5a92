"""`cbdc escrow create|release|refund|show` against the running e2e network: an escrow with an
arbiter released in part across operators and refunded by the arbiter, a refusal on one line,
and an escrow given back by the operator's worker at its deadline."""

from __future__ import annotations

import re
import subprocess
import time

from tests.e2e.conftest import LiveNetwork, cli_env, run_cli


def _out(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_cli_escrow(live_network: LiveNetwork) -> None:
    data_dir, env = str(live_network.data_dir), cli_env(COLUMNS="250")

    def cli(*args: str, code: int = 0) -> str:
        result = run_cli(*args, "--data-dir", data_dir, env=env, timeout=60)
        assert result.returncode == code, _out(result)
        assert "Traceback" not in result.stdout + result.stderr, _out(result)
        return result.stdout

    cli("wallet", "create", "esc-ann", "--operator", "BKA1")
    cli("wallet", "create", "esc-bo", "--operator", "BKB1")
    cli("wallet", "create", "esc-cy", "--operator", "BKA1")
    cli("wallet", "deposit", "esc-ann", "500")
    cli("wallet", "load", "esc-ann", "500")

    created = cli(
        "escrow", "create", "esc-ann", "esc-bo", "120", "--deadline", "2d", "--arbiter", "esc-cy"
    )
    assert "120.00 CNY" in created and ", open;" in created, created
    escrow_id = re.search(r"escrow ([0-9a-f-]{36})", created).group(1)  # type: ignore[union-attr]
    assert "380.00 CNY" in cli("wallet", "balance", "esc-ann")

    refused = cli("escrow", "release", escrow_id, "--as", "esc-ann", "--amount", "10", code=1)
    assert "not_the_arbiter" in refused, refused
    released = cli("escrow", "release", escrow_id, "--as", "esc-cy", "--amount", "50")
    assert "released 50.00 CNY" in released and "remaining 70.00 CNY" in released, released
    back = cli("escrow", "refund", escrow_id, "--as", "esc-cy")
    assert ", refunded;" in back and "remaining 0.00 CNY" in back, back
    shown = cli("escrow", "show", escrow_id)  # staff's view
    assert "release" in shown and "refund" in shown and "deadline" in shown, shown
    assert "450.00 CNY" in cli("wallet", "balance", "esc-ann")
    deadline = time.monotonic() + 60
    while "50.00 CNY" not in cli("wallet", "balance", "esc-bo"):
        assert time.monotonic() < deadline, "the release did not reach the payee"
        time.sleep(0.5)

    quick = cli("escrow", "create", "esc-ann", "esc-cy", "25", "--deadline", "4s")
    quick_id = re.search(r"escrow ([0-9a-f-]{36})", quick).group(1)  # type: ignore[union-attr]
    deadline = time.monotonic() + 60
    while ", refunded;" not in cli("escrow", "show", quick_id, "--as", "esc-ann"):
        assert time.monotonic() < deadline, "the escrow was not given back at its deadline"
        time.sleep(0.5)
    assert "450.00 CNY" in cli("wallet", "balance", "esc-ann")
    assert (
        "audit" and run_cli("audit", "--data-dir", data_dir, env=env, timeout=120).returncode == 0
    )
