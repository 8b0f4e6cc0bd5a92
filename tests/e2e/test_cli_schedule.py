"""`cbdc schedule` against the running e2e network: a one-off schedule a few seconds ahead is
executed by the operator's worker (the payee is paid once), a recurring one is cancelled, and a
refusal is a stable code, not a traceback."""

from __future__ import annotations

import time
import uuid

from tests.e2e.conftest import LiveNetwork, run_cli


def _out(result) -> str:  # type: ignore[no-untyped-def]
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_cli_schedule_flow(live_network: LiveNetwork) -> None:
    d = str(live_network.data_dir)
    tag = uuid.uuid4().hex[:6]
    payer, payee = f"sp{tag}", f"sq{tag}"

    def cbdc(*args: str, ok: bool = True):  # type: ignore[no-untyped-def]
        result = run_cli(*args, "--data-dir", d)
        if ok:
            assert result.returncode == 0, _out(result)
        return result

    cbdc("wallet", "create", payer, "--operator", "BKA1")
    cbdc("wallet", "create", payee, "--operator", "BKB1")
    cbdc("wallet", "deposit", payer, "100")
    cbdc("wallet", "load", payer, "100")

    once = cbdc("schedule", "create", payer, payee, "12.50", "--at", "+3s", "--memo", "rent")
    assert "12.50" in once.stdout and "active" in once.stdout and "once" in once.stdout, once
    monthly = cbdc(
        "schedule", "create", payer, payee, "1", "--at", "+1h", "--every", "1d", "--count", "3"
    )
    assert "every 1d" in monthly.stdout and "0/3" in monthly.stdout, _out(monthly)
    monthly_id = monthly.stdout.split()[1].rstrip(":")

    deadline = time.time() + 30
    while True:
        balance = cbdc("wallet", "balance", payee).stdout
        if "12.50" in balance or time.time() > deadline:
            break
        time.sleep(0.5)
    assert "12.50" in balance, balance
    assert "87.50" in cbdc("wallet", "balance", payer).stdout

    cancelled = cbdc("schedule", "cancel", monthly_id, "--as", payer)
    assert "cancelled" in cancelled.stdout, _out(cancelled)
    listing = cbdc("schedule", "list", payer).stdout
    assert "completed" in listing and "cancelled" in listing, listing
    assert "1/1" in listing and "0/3" in listing, listing

    # refusals: a stable code (not the payer's schedule; a time in the past), no traceback
    other = cbdc("schedule", "cancel", monthly_id, "--as", payee, ok=False)
    assert other.returncode == 1 and "unknown_schedule" in other.stdout, _out(other)
    past = cbdc(
        "schedule", "create", payer, payee, "1", "--at", "2020-01-01T00:00:00+00:00", ok=False
    )
    assert past.returncode == 1 and "schedule_time_invalid" in past.stdout, _out(past)
    bad = cbdc("schedule", "create", payer, payee, "1", "--at", "soon", ok=False)
    assert bad.returncode == 2 and "Traceback" not in bad.stdout + bad.stderr, _out(bad)
