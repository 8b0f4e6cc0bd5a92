"""Fixtures for the outage tests."""

from __future__ import annotations

import pytest

from operators.payments import microbatch
from tests.outages.helpers import OutageJudge


@pytest.fixture
def outage_judge(monkeypatch: pytest.MonkeyPatch) -> OutageJudge:
    judge = OutageJudge()
    monkeypatch.setattr(microbatch.signed_batch, "judge_signed", judge)
    return judge
