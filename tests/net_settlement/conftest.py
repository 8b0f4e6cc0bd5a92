"""Fixtures for the net settlement tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.net_settlement.helpers import CODES


@pytest.fixture
def net(network: Any) -> Any:
    """The in-process network with both operators in mode "net" (switched at run time, as a
    simulator does)."""
    for code in CODES:
        network.state(code).ctx.settlement_mode = "net"
    return network
