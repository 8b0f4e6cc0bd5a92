"""`cbdc up` prints each operator's wallet page and a one-time dashboard login link, and
`cbdc dashboard` a fresh one; the links open the central bank's dashboard once (real
processes)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from cbdc.settings import NetworkConfig, network_file
from tests.e2e.conftest import cbdc_executable, cli_env, drop_databases, free_port_base, run_cli

LINK = re.compile(r"^(http://127\.0\.0\.1:\d+/login\?token=[A-Za-z0-9_-]{43,})$", re.M)


def test_up_prints_the_pages_and_a_login_link(pg_url: str, tmp_path: Path) -> None:
    prefix = f"e2edash{uuid.uuid4().hex[:8]}"
    env = cli_env(CBDC_DATABASE_URL=pg_url, CBDC_DB_PREFIX=prefix, PYTHONUNBUFFERED="1")
    data_dir, port = tmp_path / "net", free_port_base(3)
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [cbdc_executable(), "up", "--data-dir", str(data_dir), "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    try:
        deadline = time.time() + 90
        while "Press Ctrl-C" not in log.read_text():
            assert up.poll() is None and time.time() < deadline, log.read_text()
            time.sleep(0.2)
        printed = log.read_text()
        config = NetworkConfig.load(network_file(data_dir))
        for node in config.operators:
            assert f"Wallet page {node.code}: {node.url}/" in printed, printed
        links = LINK.findall(printed)
        assert len(links) == 1 and links[0].startswith(config.central_bank.url), printed

        first = httpx.get(links[0], follow_redirects=False, timeout=10)
        assert first.status_code == 303 and "cbdc_dashboard=" in first.headers["set-cookie"]
        cookies = {"cbdc_dashboard": first.cookies["cbdc_dashboard"]}
        summary = httpx.get(
            f"{config.central_bank.url}/dashboard/api/summary", cookies=cookies, timeout=10
        ).json()
        assert [o["reachable"] for o in summary["operators"]] == [True, True], summary
        assert [d["ok"] for d in summary["disclosure"]] == [True, True], summary
        assert httpx.get(links[0], timeout=10).status_code == 401  # used

        fresh = run_cli("dashboard", "--data-dir", str(data_dir), env=env)
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        (again,) = LINK.findall(fresh.stdout)
        assert again != links[0]
        assert httpx.get(again, follow_redirects=False, timeout=10).status_code == 303
    finally:
        if up.poll() is None:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(up.pid, signal.SIGKILL)  # its services too
                pytest.fail("cbdc up did not stop")
        drop_databases(pg_url, prefix)


def test_dashboard_without_a_network_says_so(tmp_path: Path) -> None:
    result = run_cli("dashboard", "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 2 and "No network" in result.stdout
