"""`cbdc regulator disclose` against the running e2e network: it opens every identity version
an operator releases, and with --as-of the one in force then."""

from __future__ import annotations

import re

from cbdc.clock import iso, utcnow
from tests.e2e.conftest import LiveNetwork, run_cli


def _out(result) -> str:  # type: ignore[no-untyped-def]
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def test_regulator_disclose_shows_each_identity_version(live_network: LiveNetwork) -> None:
    d = str(live_network.data_dir)

    def cbdc(*args: str):  # type: ignore[no-untyped-def]
        result = run_cli(*args, "--data-dir", d, timeout=90)
        assert result.returncode == 0, _out(result)
        return result

    created = cbdc("wallet", "create", "erin-versions", "--operator", "BKA1").stdout
    wallet_id = re.search(r"BKA1[0-9]{16}", created)
    assert wallet_id is not None, created
    before_upgrade = iso(utcnow())
    cbdc("wallet", "upgrade", "erin-versions", "--class", "III")

    every = cbdc(
        "regulator", "disclose", wallet_id.group(0), "--basis", "case 12", "--requester", "FIU"
    ).stdout
    assert "2 identity version(s)" in every, every
    assert "version 1: from" in every and "version 2: from" in every, every
    assert '"wallet_class": "IV"' in every and '"wallet_class": "III"' in every, every

    then = cbdc(
        "regulator",
        "disclose",
        wallet_id.group(0),
        "--basis",
        "case 12",
        "--requester",
        "FIU",
        "--as-of",
        before_upgrade,
    ).stdout
    assert f"identity in force at {before_upgrade}" in then, then
    assert "version 1: from" in then and "version 2" not in then, then
    assert '"wallet_class": "IV"' in then and '"id_number"' not in then, then


def test_a_malformed_order_file_is_one_line_not_a_traceback(
    live_network: LiveNetwork, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    for name, text in (("broken.json", "{not json"), ("other.json", '{"order": []}')):
        path = tmp_path / name
        path.write_text(text)
        result = run_cli(
            "regulator",
            "disclose",
            "--order-file",
            str(path),
            "--data-dir",
            str(live_network.data_dir),
            timeout=90,
        )
        assert result.returncode == 2, _out(result)
        assert "not a signed disclosure order" in result.stdout, _out(result)
        assert "Traceback" not in result.stdout + result.stderr, _out(result)
