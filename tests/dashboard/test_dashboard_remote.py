"""Whatever an operator answers the dashboard (malformed metrics, a disclosure log that is not
a list of rows, rows without a seq or hash), the summary still answers 200 and says what is
wrong with that operator; it never fails as a whole (central_bank/dashboard/remote.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from central_bank.dashboard.remote import RemoteSources
from tests.conftest import InProcessNetwork
from tests.dashboard.test_dashboard import SUMMARY, TOKEN, logged_in

METRICS_INF = 'cbdc_payments_total{path="single",outcome="completed",code=""} +Inf\n'


def serve(net: InProcessNetwork, metrics: str, log: object) -> None:
    """Every operator answers `metrics` at /metrics and `log` at the disclosure log."""

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, text=metrics)
        return httpx.Response(200, content=json.dumps(log).encode())

    def client(code: str) -> httpx.Client:
        return httpx.Client(base_url=f"http://{code}", transport=httpx.MockTransport(handler))

    http_for: Callable[[str], httpx.Client] = client
    net.cb_app.state.dashboard_sources = RemoteSources(
        urls={code: f"http://{code}" for code in net.operator_http},
        metrics_token=TOKEN,
        http_for=http_for,
        cache_seconds=0,
    )


@pytest.mark.parametrize(
    ("metrics", "log", "why"),
    [
        (METRICS_INF, {"entries": [{"seq": 1}]}, "bad metrics"),
        ("cbdc_payments_total{outcome=\n", {"entries": "not rows"}, "bad metrics"),
        ("", {"entries": [1, 2]}, None),
        ("", {"entries": [{"seq": "x"}]}, None),
        ("", {"entries": [{"prev_hash": "0", "entry": {}, "hash": "1"}]}, None),
        ("", {"entries": {"seq": 1}}, None),
        ("", {"no_entries": True}, None),
    ],
)
def test_malformed_operator_answers_do_not_fail_the_summary(
    network: InProcessNetwork, metrics: str, log: object, why: str | None
) -> None:
    serve(network, metrics, log)
    answer = logged_in(network).get(SUMMARY)
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    for line in summary["operators"]:
        if why is not None:
            assert line["metrics"] is None and why in line["error"]
    for d in summary["disclosure"]:
        assert d["ok"] is not True, d  # a malformed log is never shown as intact
