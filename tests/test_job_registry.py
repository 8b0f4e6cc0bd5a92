"""Outbox jobs are dispatched by the handler table the areas register (`operators.jobs`,
composed in `operators.state`): a job of a kind no area registered fails at once, with that
said in its error, and a kind registered twice is refused when the table is composed."""

from __future__ import annotations

from typing import Any

import pytest

from cbdc.db import transaction
from operators import repository as repo
from operators.jobs import job_table
from operators.state import JOBS


def test_every_area_registers_its_job_kinds() -> None:
    assert {"issuance", "redemption"} <= JOBS.keys()  # vault
    assert {"settle", "deliver", "rtgs_batch", "rtgs_settle", "rtgs_deliver"} <= JOBS.keys()
    assert {"net_submit", "net_pay", "net_apply"} <= JOBS.keys()  # settlement
    assert {"aml_report", "disclosure_anchor"} <= JOBS.keys()  # compliance


def test_a_kind_registered_twice_is_refused() -> None:
    def handler(runner: Any, job: Any) -> None:
        pass

    with pytest.raises(ValueError, match="registered twice"):
        job_table({"x": handler}, {"x": handler})


def test_a_job_of_an_unknown_kind_fails_at_once_and_says_why(network: Any) -> None:
    state = network.state("BKA1")
    transaction(
        state.factory,
        lambda s: repo.enqueue(
            s, kind="no_such_kind", reference="mystery:1", payload={}, now=state.ctx.now()
        ),
    )
    state.runner.run_reference("mystery:1", patience=0)

    def read(s: Any) -> tuple[str, str | None, int]:
        job = repo.job_by_reference(s, "mystery:1")
        assert job is not None
        return job.status, job.last_error, job.attempts

    status, error, attempts = transaction(state.factory, read)
    assert status == "failed"
    assert "unknown job kind 'no_such_kind'" in (error or "")
    assert attempts == 1  # not retried
