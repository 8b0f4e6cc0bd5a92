"""Fixtures for the disclosure anchor tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import Engine, make_url


@pytest.fixture
def superuser(pg_url: str, network: Any) -> Iterator[Callable[[str], Engine]]:
    """Engines on the network's databases as the server's superuser (not the services' role):
    `superuser("BKA1")`, `superuser("central_bank")`."""
    engines: dict[str, Engine] = {}

    def engine(which: str) -> Engine:
        service_engine = (
            network.cb_app.state.cb.engine
            if which == "central_bank"
            else network.state(which).engine
        )
        if which not in engines:
            url = make_url(pg_url).set(database=service_engine.url.database)
            engines[which] = create_engine(url)
        return engines[which]

    yield engine
    for e in engines.values():
        e.dispose()
