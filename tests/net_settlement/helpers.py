"""Helpers shared by the net settlement tests: cycles, conservation checks, stats."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from cbdc.http import RemoteError, SignedClient
from central_bank.state import CentralBankState
from operators.settlement import netting

CODES = ("BKA1", "BKB1")


def cb_state(network: Any) -> CentralBankState:
    return network.cb_app.state.cb  # type: ignore[no-any-return]


def submit_all(network: Any) -> None:
    for code in CODES:
        netting.sync(network.state(code), force=True, poll=False)


def close(network: Any) -> dict[str, Any] | None:
    return cb_state(network).close_cycle("manual")


def settle_all(network: Any) -> None:
    """Every operator does what the clearing house asks (debtors pay, everyone applies and
    acknowledges), then marks delivered what its peers applied; returns travel by RTGS."""
    for _ in range(3):
        for code in CODES:
            netting.sync(network.state(code))
        network.run_jobs()


def cycle(network: Any) -> dict[str, Any] | None:
    """One whole clearing cycle, deterministically: submit, close, pay, apply, deliver."""
    submit_all(network)
    closed = close(network)
    settle_all(network)
    return closed


def conserved(network: Any) -> dict[str, dict[str, Any]]:
    """The cross-tier audit (what `cbdc audit` checks), without draining anything."""
    central = network.admin.request("GET", "/v1/admin/audit")
    assert central["ok"], [c for c in central["checks"] if not c["ok"]]
    assert central["live_token_value"] == central["issued"] - central["redeemed"]
    reports = {}
    for code in CODES:
        report = network.staff(code).request("GET", "/v1/admin/audit")
        assert report["ok"], [c for c in report["checks"] if not c["ok"]]
        registered = central["operators"][code]["live_token_value"]
        assert registered == report["vault_token_value"], code
        held = report["vault_float"] + report["wallets"] + report["in_transit_total"]
        assert registered == held, code
        reports[code] = report
    assert sum(r["vault_token_value"] for r in reports.values()) == central["live_token_value"]
    return reports


def stats(network: Any) -> dict[str, Any]:
    return network.admin.request("GET", "/v1/stats/clearing")  # type: ignore[no-any-return]


def drained(network: Any, timeout: float = 20) -> None:
    """Cycles and outbox runs until no payment waits for settlement anywhere."""
    deadline = time.monotonic() + timeout
    while True:
        cycle(network)
        left = 0
        for code in CODES:
            answer = network.staff(code).request("POST", "/v1/admin/jobs/run")
            net = answer["net"]
            left += answer["outbox"].get("pending", 0) + net["items_open"]
            left += net["items_submitted"] + net["obligations_unapplied"]
            left += net["obligations_undelivered"]
        if not left:
            return
        assert time.monotonic() < deadline, "net settlement did not drain"
        time.sleep(0.1)


def operations(network: Any) -> dict[str, Any]:
    return network.admin.request("GET", "/v1/stats/money-supply")["operations"]  # type: ignore


def as_operator(network: Any, code: str) -> SignedClient:
    """A client of the central bank signing as operator `code`."""
    return SignedClient(
        network.cb,
        key=network.operator_keys[code],
        key_id=f"operator:{code}",
        server_public_key=network.cb_key.public_key,
    )


def problem(call: Any) -> tuple[int, str]:
    with pytest.raises(RemoteError) as caught:
        call()
    return caught.value.status, caught.value.code


class LossyTransport(httpx.BaseTransport):
    """Forwards to the real service, but loses the answer of the first `lose` requests whose
    path starts with `prefix` (and ends with `suffix`): the request was processed, the caller
    sees a timeout."""

    def __init__(
        self, inner: httpx.BaseTransport, prefix: str, *, lose: int, suffix: str = ""
    ) -> None:
        self.inner, self.prefix, self.suffix, self.lose, self.lost = inner, prefix, suffix, lose, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.startswith(self.prefix) and path.endswith(self.suffix) and self.lost < self.lose:
            self.lost += 1
            self.inner.handle_request(request).read()
            raise httpx.ReadTimeout("answer lost", request=request)
        return self.inner.handle_request(request)
