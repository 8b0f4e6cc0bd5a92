"""Fixtures for the scenario output tests."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from simulator.outputs import (
    RUNS_DIR_ENV,
)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    from cli.console import console

    monkeypatch.setattr(console, "_width", 200)  # no wrapping of long run names
    monkeypatch.delenv(RUNS_DIR_ENV, raising=False)
    return CliRunner()
