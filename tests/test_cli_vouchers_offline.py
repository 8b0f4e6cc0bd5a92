"""`cbdc merchant|programme` and `cbdc wallet pay --voucher` on bad input, with a network file
whose services are not running (tests/test_cli_no_network.py): one line with exit 2 (a bad
parameter, an unknown wallet), never a traceback. No database, no processes."""

from __future__ import annotations

from pathlib import Path

import pytest

from cbdc.addresses import make_wallet_id
from cbdc.crypto import SigningKey
from cbdc.settings import NetworkConfig, network_file
from cli.cash import key_store
from tests.test_cli_no_network import cbdc, data_dir  # noqa: F401  (the fixture)
from wallets.keystore import StoredWallet

ELSEWHERE = make_wallet_id("BKB1", 12345)  # well formed, of no operator of the network


def _agency(data: Path) -> None:
    key = SigningKey.generate()
    key_store(NetworkConfig.load(network_file(data))).save(
        StoredWallet(
            wallet_id=make_wallet_id("BKA1", 777),
            operator="BKA1",
            operator_url="http://127.0.0.1:1",
            private_key=key.private_bytes(),
            public_key=key.public_key,
            wallet_class="II",
            name="agency",
        )
    )


@pytest.mark.parametrize("command", [("set", ELSEWHERE, "groceries"), ("show", ELSEWHERE)])
def test_a_merchant_of_no_operator_here_is_one_line(
    data_dir: Path,  # noqa: F811
    command: tuple[str, ...],
) -> None:
    code, output = cbdc("merchant", *command, "--data-dir", str(data_dir))
    assert code == 2 and len(output.splitlines()) == 1, output
    assert "belongs to no operator" in output, output


CREATE = ("programme", "create", "agency", "--name", "aid", "--categories", "groceries")


@pytest.mark.parametrize(
    ("command", "says"),
    [
        ((*CREATE, "--per-holder", "10", "--expires", "tomorrow"), "--expires"),
        ((*CREATE, "--per-holder", "10", "--expires", "99999999999d"), "--expires"),
        ((*CREATE, "--per-holder", "ten", "--expires", "30d"), "ten"),
        (("programme", "create", "nobody", "--name", "x", "--categories", "groceries",
          "--per-holder", "10", "--expires", "30d"), "nobody"),
        (("programme", "fund", "p", "bob", "10", "--as", "nobody"), "nobody"),
        (("programme", "show", "p", "--as", "nobody"), "nobody"),
        (("wallet", "pay", "nobody", ELSEWHERE, "1", "--voucher", "auto"), "nobody"),
    ],
)  # fmt: skip
def test_bad_programme_input_is_one_line(
    data_dir: Path,  # noqa: F811
    command: tuple[str, ...],
    says: str,
) -> None:
    _agency(data_dir)
    code, output = cbdc(*command, "--data-dir", str(data_dir))
    assert code == 2 and says in output, output
    assert "--deadline" not in output, output
