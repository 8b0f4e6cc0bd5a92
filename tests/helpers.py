"""Helpers the test files share: refusals and problem answers, draining the outboxes, audits,
waiting for something to happen. Fixtures live in tests/conftest.py."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from cbdc.http import RemoteError
from wallets.orders import payment_order, sign_order

CODES = ("BKA1", "BKB1")  # the in-process network's operators
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code"}  # RFC 9457, and our `code`


def refused(call: Callable[..., Any], status: int, code: str) -> dict[str, Any]:
    """`call()` is refused with this status and problem code; the problem's body."""
    with pytest.raises(RemoteError) as caught:
        call()
    assert (caught.value.status, caught.value.code) == (status, code), caught.value.body
    assert set(caught.value.body) >= PROBLEM_FIELDS
    return caught.value.body  # type: ignore[no-any-return]


def assert_problem(response: Any, status: int, code: str | None = None) -> dict[str, Any]:
    """An HTTP response is an application/problem+json answer with this status (and code)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert set(body) >= PROBLEM_FIELDS
    assert body["status"] == status, body
    if code is not None:
        assert body["code"] == code, body
    return dict(body)


def drain(network: Any, timeout: float = 30) -> None:
    """Run every operator's outbox until nothing is pending (jobs retried later included)."""
    deadline = time.monotonic() + timeout
    while True:
        network.run_jobs()
        pending = sum(
            network.staff(code).request("GET", "/v1/admin/audit")["outbox"].get("pending", 0)
            for code in CODES
        )
        if not pending:
            return
        assert time.monotonic() < deadline, "outbox did not drain"
        time.sleep(0.1)


def audits_ok(network: Any) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Run the due jobs; the central bank's and each operator's audits pass and agree on the
    tokens each operator holds. Their reports."""
    network.run_jobs()
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], central["checks"]
    reports = {}
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], report["checks"]
        assert central["operators"][code]["live_token_value"] == report["vault_token_value"]
        reports[code] = report
    return central, reports


def wait_until(predicate: Callable[[], bool], timeout: float = 60, every: float = 0.05) -> bool:
    """Poll `predicate` until it holds (True) or `timeout` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(every)


def fund(net: Any, code: str, wallet: Any, amount: int) -> None:
    """Credit the wallet's linked deposit at operator `code` with `amount` and load all of it."""
    customer_id = wallet.balance().customer_id
    net.staff(code).request(
        "POST",
        f"/v1/admin/customers/{customer_id}/deposit",
        {"amount": amount},
        idempotency_key=str(uuid.uuid4()),
    )
    wallet.load(amount)


def signed_payment(wallet: Any, payee: str, amount: int, **kw: Any) -> dict[str, Any]:
    """A payment order (CNY) from `wallet` to wallet id `payee`, signed by the wallet's key."""
    order = payment_order(payer=wallet.wallet_id, payee=payee, amount=amount, currency="CNY", **kw)
    return sign_order(wallet.key, order)
