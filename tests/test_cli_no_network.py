"""The commands that talk to the network, with a network file whose services are not running or
whose key files are gone: one line saying so (exit 1 unreachable, exit 2 a key that cannot be
read), never a traceback. No database, no processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cbdc.crypto import SigningKey
from cbdc.settings import NetworkConfig, network_file
from cli.main import app

DOWN = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from cli.console import console

    monkeypatch.setattr(console, "_width", 250)  # a line is a line
    keys = tmp_path / "keys"
    central_bank, admin, staff = (SigningKey.generate() for _ in range(3))
    for name, key in (("central_bank", central_bank), ("admin", admin), ("BKA1", staff)):
        key.save(keys / f"{name}.key")
    node: dict[str, Any] = {"url": DOWN, "port": 1, "database_url": "postgresql://nowhere/x"}
    config = NetworkConfig.model_validate(
        dict(
            currency="CNY",
            currency_decimals=2,
            settlement_mode="rtgs",
            policy_file="policy.toml",
            max_token_amount=50_000_00,
            central_bank=dict(
                **node,
                key_file=str(keys / "central_bank.key"),
                public_key=central_bank.public_key,
                admin_key_file=str(keys / "admin.key"),
                admin_public_key=admin.public_key,
            ),
            regulator={
                "signing_public_key": admin.public_key,
                "sealing_public_key": admin.public_key,
                "key_dir": str(tmp_path / "regulator"),
            },
            operators=[
                {
                    **node,
                    "code": "BKA1",
                    "name": "Bank A",
                    "key_file": str(keys / "BKA1.key"),
                    "data_key_file": str(keys / "BKA1.data.key"),
                    "public_key": staff.public_key,
                    "reserves": 0,
                    "quota": 0,
                    "vault_low_water": 0,
                    "vault_target": 0,
                    "vault_high_water": 0,
                }
            ],
        )
    )
    config.save(network_file(tmp_path))
    return tmp_path


def cbdc(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    output = result.output
    assert (
        "Traceback" not in output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    ), output
    return result.exit_code, output.strip()


@pytest.mark.parametrize(
    "command",
    [
        ("dashboard",),
        ("central-bank", "supply"),
        ("central-bank", "issue", "100", "--operator", "BKA1"),
        ("central-bank", "redeem", "100", "--operator", "BKA1"),
        ("api", "GET", "/v1/info", "--service", "BKA1"),
        ("api", "GET", "/v1/stats/money-supply", "--as", "admin"),
    ],
)
def test_a_network_that_is_not_running_is_one_line(data_dir: Path, command: tuple[str]) -> None:
    code, output = cbdc(*command, "--data-dir", str(data_dir))
    assert code == 1, output
    assert len(output.splitlines()) == 1 and "Connection refused" in output, output


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (("dashboard",), "admin.key"),
        (("central-bank", "supply"), "admin.key"),
        (("central-bank", "issue", "100", "--operator", "BKA1"), "BKA1.key"),
        (("api", "GET", "/v1/stats/money-supply", "--as", "admin"), "admin.key"),
    ],
)
def test_a_missing_or_damaged_key_file_is_one_line(
    data_dir: Path, command: tuple[str], key: str
) -> None:
    path = data_dir / "keys" / key
    path.unlink()
    code, output = cbdc(*command, "--data-dir", str(data_dir))
    assert code == 2 and len(output.splitlines()) == 1, output
    assert str(path) in output and "No such file" in output, output
    path.write_text("not a key\n")
    code, output = cbdc(*command, "--data-dir", str(data_dir))
    assert code == 2 and len(output.splitlines()) == 1, output
    assert "32 bytes" in output and ("admin" in output or "BKA1" in output), output


def test_the_regulator_without_its_keys_is_one_line(data_dir: Path) -> None:
    for command in (("alerts",), ("log",)):
        code, output = cbdc("regulator", *command, "--data-dir", str(data_dir))
        assert code == 2 and "cannot read the regulator's keys" in output, output
