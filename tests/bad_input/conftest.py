"""Fixtures for the bad input tests."""

from __future__ import annotations

from typing import Any

import pytest

from cbdc.envelope import CENTRAL_BANK_AUDIENCE, operator_audience
from tests.bad_input.helpers import Raw


@pytest.fixture
def parties(network: Any) -> dict[str, Any]:
    payer = network.open_wallet("BKA1", wallet_class="I", deposit=1_000_000_00, load=1_000_000_00)
    payee = network.open_wallet("BKA1")
    remote = network.open_wallet("BKB1")
    return {
        "network": network,
        "payer": payer,
        "payee": payee,
        "remote": remote,
        "op": Raw(network.operator_apps["BKA1"], operator_audience("BKA1")),
        "cb": Raw(network.cb_app, CENTRAL_BANK_AUDIENCE),
    }
