"""The central bank dashboard: one-time login links (admin only, single use, expiry), the
session they open, the page and its summary; in-process, with and without the operators as
remote sources (central_bank/dashboard)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from cbdc.clock import utcnow
from cbdc.crypto import sha256_hex
from cbdc.http import RemoteError, SignedClient
from central_bank.dashboard.remote import RemoteSources, parse_metrics
from regulator.client import disclosure_order
from tests.conftest import InProcessNetwork, in_process_network

TOKEN = "dashboard-test-metrics-token-0123456789"
SUMMARY = "/dashboard/api/summary"


@pytest.fixture
def metered(pg_url: str) -> Iterator[InProcessNetwork]:
    yield from in_process_network(pg_url, metrics_token=TOKEN)


def new_login(net: InProcessNetwork) -> dict[str, Any]:
    return dict(net.admin.request("POST", "/v1/admin/dashboard/logins"))


def browser(net: InProcessNetwork) -> TestClient:
    """A client of its own (own cookie jar), as a browser is."""
    return TestClient(net.cb_app)


def logged_in(net: InProcessNetwork) -> TestClient:
    client = browser(net)
    answer = client.get(new_login(net)["url"], follow_redirects=False)
    assert answer.status_code == 303, answer.text
    return client


def with_sources(net: InProcessNetwork) -> None:
    """The operators as the dashboard's remote sources, through in-process transports."""
    net.cb_app.state.dashboard_sources = RemoteSources(
        urls={code: f"http://{code}" for code in net.operator_http},
        metrics_token=TOKEN,
        http_for=lambda code: net.operator_http[code],
        cache_seconds=0,
    )


def shift_clock(net: InProcessNetwork, by: timedelta) -> None:
    net.cb_app.state.cb.clock = lambda: utcnow() + by


# ------------------------------------------------------------------ login links


def test_login_link_opens_a_session_once(network: InProcessNetwork) -> None:
    login = new_login(network)
    token = login["token"]
    assert len(token) >= 43  # 256 random bits, base64url
    assert login["url"] == f"http://testserver/login?token={token}"
    assert parse_qs(urlsplit(login["url"]).query)["token"] == [token]
    with network.cb_app.state.cb.factory() as s:
        stored = s.execute(text("SELECT token_hash FROM dashboard_logins")).scalars().all()
    assert stored == [sha256_hex(token.encode())]  # only the hash is kept

    client = browser(network)
    assert client.get("/").status_code == 401
    answer = client.get(f"/login?token={token}", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith("cbdc_dashboard=")
    for part in ("HttpOnly", "SameSite=Lax", "Path=/"):  # Lax: a link from mail works at once
        assert part in cookie
    page = client.get("/")
    assert page.status_code == 200 and 'id="operators"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline script
    assert client.get(SUMMARY).status_code == 200

    again = browser(network).get(f"/login?token={token}", follow_redirects=False)
    assert again.status_code == 401
    assert "text/html" in again.headers["content-type"]
    assert "used or expired" in again.text and "cbdc dashboard" in again.text
    assert "set-cookie" not in again.headers


def test_unknown_and_expired_links_are_refused(network: InProcessNetwork) -> None:
    client = browser(network)
    for target in ("/login?token=nonsense", "/login", "/login?token=" + "x" * 500):
        answer = client.get(target, follow_redirects=False)
        assert answer.status_code == 401, target
        assert "used or expired" in answer.text
    token = new_login(network)["token"]
    shift_clock(network, timedelta(hours=24, minutes=1))
    assert client.get(f"/login?token={token}", follow_redirects=False).status_code == 401


def test_session_expires_after_twelve_hours(network: InProcessNetwork) -> None:
    client = logged_in(network)
    shift_clock(network, timedelta(hours=11, minutes=59))
    assert client.get(SUMMARY).status_code == 200
    shift_clock(network, timedelta(hours=12, minutes=1))
    assert client.get(SUMMARY).json()["code"] == "dashboard_login_required"


def test_only_the_admin_makes_login_links(network: InProcessNetwork) -> None:
    operator = SignedClient(
        network.cb,
        key=network.operator_keys["BKA1"],
        key_id="operator:BKA1",
        audience="central-bank",
    )
    regulator = SignedClient(
        network.cb, key=network.regulator.signing, key_id="regulator", audience="central-bank"
    )
    for client in (operator, regulator):
        with pytest.raises(RemoteError) as refused:
            client.request("POST", "/v1/admin/dashboard/logins")
        assert refused.value.status == 403
    assert network.cb.post("/v1/admin/dashboard/logins").status_code == 401  # unsigned


# ------------------------------------------------------------------ page and summary


def test_no_session_no_data(network: InProcessNetwork) -> None:
    client = browser(network)
    page = client.get("/")
    assert page.status_code == 401 and 'id="login-required"' in page.text
    assert "cbdc dashboard" in page.text
    for cookies in ({}, {"cbdc_dashboard": "forged"}):
        client.cookies.clear()
        client.cookies.update(cookies)
        answer = client.get(SUMMARY)
        assert answer.status_code == 401
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["code"] == "dashboard_login_required"


def test_static_files_are_public_and_typed(network: InProcessNetwork) -> None:
    client = browser(network)
    js = client.get("/dashboard/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.headers["cache-control"] == "no-cache"
    css = client.get("/dashboard/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    for name in ("nothing.js", "index.html", "..%2Fapi.py", "dashboard.py"):
        assert client.get(f"/dashboard/{name}").status_code == 404, name


def test_summary_without_network_configuration(network: InProcessNetwork) -> None:
    network.open_wallet("BKA1", load=50_00)
    summary = logged_in(network).get(SUMMARY).json()
    assert summary["currency"] == "CNY" and summary["decimals"] == 2 and summary["at"]
    assert summary["network_known"] is False
    supply = network.admin.request("GET", "/v1/stats/money-supply")
    assert summary["supply"] == supply
    assert summary["supply"]["digital_currency_outstanding"] > 0
    assert [o["code"] for o in summary["operators"]] == ["BKA1", "BKB1"]
    for line in summary["operators"]:
        assert line["reachable"] is False and line["metrics"] is None
        assert line["payments_total"] is None and line["url"] is None
    bka = summary["operators"][0]
    assert bka["outstanding"] == supply["by_operator"][0]["circulation"]
    assert set(summary["central_bank"]["queues"]) >= {"clearing_obligations_pending"}
    assert summary["alerts"] == {"recent": [], "totals_by_rule": {}, "total": 0}
    assert [d["reachable"] for d in summary["disclosure"]] == [False, False]


def test_summary_counts_payments_and_checks_disclosure_logs(metered: InProcessNetwork) -> None:
    with_sources(metered)
    alice = metered.open_wallet("BKA1", load=100_00, wallet_class="III")
    bob = metered.open_wallet("BKB1")
    alice.pay(bob.wallet_id, 10_00)
    with pytest.raises(RemoteError):
        alice.pay(bob.wallet_id, 1_000_00)  # refused: more than she has
    order = disclosure_order(
        metered.regulator,
        wallet_id=alice.wallet_id,
        legal_basis="Art. 28 AML Law; case 2026-0099",
        requester="Financial Intelligence Unit",
    )
    assert metered.operator_http["BKA1"].post("/v1/regulator/disclosures", json=order).is_success

    summary = logged_in(metered).get(SUMMARY).json()
    assert summary["network_known"] is True
    bka, bkb = summary["operators"]
    assert bka["reachable"] is True and bka["url"] == "http://BKA1"
    assert bka["payments_total"] == 1 and bka["refused_total"] == 1
    assert bka["payments_by_outcome"]["refused"] == 1
    assert set(bka["queues"]) >= {"outbox_pending"}
    assert bkb["payments_total"] == 0
    logs = {d["operator"]: d for d in summary["disclosure"]}
    assert logs["BKA1"]["ok"] is True and logs["BKA1"]["length"] == 1
    assert logs["BKA1"]["anchored"] == 1  # registered with the central bank at once
    entry = logs["BKA1"]["entries"][0]
    assert entry["seq"] == 1 and entry["wallet"] == alice.wallet_id
    assert entry["requester"] == "Financial Intelligence Unit"
    assert entry["released"] == "identity-escrow"
    assert logs["BKB1"] == {**logs["BKB1"], "ok": True, "length": 0, "entries": []}


def test_an_anchor_the_log_no_longer_matches_shows(metered: InProcessNetwork) -> None:
    """The dashboard checks the log against the central bank's own anchors, not the operator's
    word: a head anchored here that the served log lacks is a problem."""
    with_sources(metered)
    with metered.cb_app.state.cb.factory() as s, s.begin():
        operator_id = s.execute(text("SELECT id FROM operators WHERE code = 'BKB1'")).scalar()
        s.execute(
            text(
                "INSERT INTO disclosure_anchors (operator_id, seq, hash, signature, received_at) "
                "VALUES (:o, 1, :h, 'sig', now())"
            ),
            {"o": operator_id, "h": "0" * 64},
        )
    summary = logged_in(metered).get(SUMMARY).json()
    bkb = next(d for d in summary["disclosure"] if d["operator"] == "BKB1")
    assert bkb["ok"] is False
    assert bkb["problems"] == [{"seq": 1, "reason": "anchor_missing"}]


def test_parse_metrics_counts_payments_by_outcome() -> None:
    text_format = "\n".join(
        [
            "# TYPE cbdc_payments counter",
            'cbdc_payments_total{path="single",outcome="completed",code=""} 3.0',
            'cbdc_payments_total{path="batch",outcome="pending_settlement",code=""} 2.0',
            'cbdc_payments_total{path="batch",outcome="failed",code=""} 1.0',
            'cbdc_payments_total{path="single",outcome="replayed",code=""} 5.0',
            'cbdc_payments_total{path="single",outcome="refused",code="insufficient_funds"} 4.0',
            "# TYPE cbdc_settlement_queue_depth gauge",
            'cbdc_settlement_queue_depth{queue="outbox_pending"} 7.0',
            "",
        ]
    )
    parsed = parse_metrics(text_format)
    assert parsed["payments_total"] == 6 and parsed["refused_total"] == 4
    assert parsed["queues"] == {"outbox_pending": 7}
