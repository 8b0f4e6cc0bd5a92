"""Helpers for the adversarial tests: draining outboxes, positions, jobs, operator status."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import text

CODES = ("BKA1", "BKB1")


def drain(network: Any, timeout: float = 10) -> None:
    """Run every operator's outbox until nothing is pending (jobs retried later included)."""
    deadline = time.monotonic() + timeout
    while True:
        network.run_jobs()
        pending = 0
        for code in CODES:
            with network.state(code).factory() as s:
                pending += s.execute(
                    text("SELECT count(*) FROM outbox WHERE status = 'pending'")
                ).scalar_one()
        if not pending or time.monotonic() > deadline:
            return
        time.sleep(0.05)


def positions(network: Any) -> dict[str, tuple[int, int]]:
    """Per operator: (value the central bank registers to it, value its vault holds)."""
    central = network.admin.request("GET", "/v1/admin/audit")
    out = {}
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        out[code] = (central["operators"][code]["live_token_value"], report["vault_token_value"])
    return out


def assert_tiers_agree(network: Any) -> None:
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
    for code, (registered, held) in positions(network).items():
        assert registered == held, f"{code}: registered {registered}, vault holds {held}"


def set_operator_status(network: Any, code: str, status: str) -> None:
    with network.cb_app.state.cb.engine.begin() as conn:
        conn.execute(
            text("UPDATE operators SET status = :s WHERE code = :c"), {"s": status, "c": code}
        )


def job(network: Any, code: str, reference: str, kind: str) -> dict[str, Any]:
    with network.state(code).factory() as s:
        row = (
            s.execute(
                text(
                    "SELECT status, last_error, attempts FROM outbox WHERE reference = :r "
                    "AND kind = :k"
                ),
                {"r": reference, "k": kind},
            )
            .mappings()
            .one()
        )
    return dict(row)
