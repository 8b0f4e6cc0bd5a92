"""The web wallet's server side (operators/web): the page and its files with their security
headers, QR codes, and the demo deposit a wallet may make to its own bank deposit. The page
itself runs in a browser: tests/e2e/test_web_browser.py."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from cbdc.envelope import sign_request
from operators.web.api import CSP
from operators.web.qr import qr_svg
from tests.helpers import assert_problem, refused

# The ids the browser test relies on (SPEC of issue #16, "DOM contract").
DOM_CONTRACT = (  # noqa: SIM905 (40 ids, easier read as one string)
    "open-form open-class open-name open-phone open-id-number open-bank-account open-demo-fill "
    "open-submit wallet-view wallet-id wallet-class balance deposit-balance limits "
    "demo-deposit-amount demo-deposit load-amount load unload-amount unload pay-to pay-amount "
    "pay-memo pay request-amount show-qr qr qr-payload history upgrade-class upgrade-name "
    "upgrade-phone upgrade-id-number upgrade-bank-account upgrade-demo-fill upgrade status "
    "problem refresh forget"
).split()


def test_the_wallet_page_is_served_with_a_strict_csp(network: Any) -> None:
    http = network.operator_http["BKA1"]
    page = http.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "frame-ancestors 'none'" in CSP
    assert page.headers["cache-control"] == "no-cache"
    html = page.text
    # No inline script or style: every script is a file of the page's own origin.
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script type="module" src="/web/wallet.js">']
    assert "<style" not in html and re.search(r"\s(style|on[a-z]+)=", html) is None
    ids = set(re.findall(r'\bid="([^"]+)"', html))
    assert set(DOM_CONTRACT) <= ids, set(DOM_CONTRACT) - ids
    assert re.search(r'<div id="problem"[^>]*role="alert"[^>]*hidden', html)
    assert re.search(r'<p id="status"[^>]*role="status"', html)


@pytest.mark.parametrize(
    ("name", "media_type"),
    [
        ("wallet.js", "text/javascript; charset=utf-8"),
        ("signing.js", "text/javascript; charset=utf-8"),
        ("wallet.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ],
)
def test_static_files_have_their_types_and_no_cache(
    network: Any, name: str, media_type: str
) -> None:
    answer = network.operator_http["BKB1"].get(f"/web/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == media_type
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_only_the_page_files_are_served(network: Any) -> None:
    http = network.operator_http["BKA1"]
    for name in ("nope.js", "api.py", "..%2Fapi.py", "__init__.py"):
        assert_problem(http.get(f"/web/{name}"), 404)
    # The modules import each other by these names: each exists.
    wallet_js = http.get("/web/wallet.js").text
    for module in re.findall(r'from "\./([a-z]+\.js)"', wallet_js):
        assert http.get(f"/web/{module}").status_code == 200, module


def test_qr_code_of_a_payment_request(network: Any) -> None:
    http = network.operator_http["BKA1"]
    text = "cbdc:pay?to=BKA13871092655401118&amount=12.34&currency=CNY"
    answer = http.get("/web/qr.svg", params={"text": text})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/svg+xml"
    assert answer.content == qr_svg(text)
    assert (
        answer.content.startswith(b"<svg")
        and b'xmlns="http://www.w3.org/2000/svg"' in answer.content
    )
    assert b"<script" not in answer.content
    assert http.get("/web/qr.svg", params={"text": "x" * 512}).status_code == 200
    assert_problem(http.get("/web/qr.svg", params={"text": "x" * 513}), 422, "validation_error")
    assert_problem(http.get("/web/qr.svg", params={"text": ""}), 422, "validation_error")
    assert_problem(http.get("/web/qr.svg"), 422, "validation_error")


def _demo_deposit(wallet: Any, amount: Any, wallet_id: str | None = None) -> Any:
    path = f"/v1/wallets/{wallet_id or wallet.wallet_id}/demo-deposit"
    return wallet.client.request("POST", path, {"amount": amount})


def test_a_wallet_credits_its_own_deposit_and_loads_it(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    customer_id = wallet.balance().customer_id
    assert network.operator_http["BKA1"].get("/web/settings.json").json() == {"demo_deposits": True}
    done = _demo_deposit(wallet, 250_000)
    assert done == {
        "wallet_id": wallet.wallet_id,
        "customer_id": customer_id,
        "amount": 250_000,
        "deposit_balance": 250_000,
    }
    assert _demo_deposit(wallet, 1)["deposit_balance"] == 250_001
    wallet.load(100_000)
    info = wallet.balance()
    assert (info.balance, info.deposit_balance) == (100_000, 150_001)
    # Staff may do it for the wallet too; the audit still balances.
    network.staff("BKA1").request(
        "POST", f"/v1/wallets/{wallet.wallet_id}/demo-deposit", {"amount": 5}
    )
    assert wallet.balance().deposit_balance == 150_006
    network.run_jobs()
    assert network.staff("BKA1").request("GET", "/v1/admin/audit")["ok"]


def test_a_wallet_may_not_credit_another_wallets_deposit(network: Any) -> None:
    mine, other = network.open_wallet("BKA1"), network.open_wallet("BKA1")
    refused(lambda: _demo_deposit(mine, 1000, wallet_id=other.wallet_id), 403, "forbidden")
    assert other.balance().deposit_balance == 0
    assert mine.balance().deposit_balance == 0


def test_demo_deposits_can_be_turned_off(network: Any) -> None:
    wallet = network.open_wallet("BKB1")
    network.state("BKB1").config.demo_deposits = False
    assert network.operator_http["BKB1"].get("/web/settings.json").json() == {
        "demo_deposits": False
    }
    body = refused(lambda: _demo_deposit(wallet, 1000), 403, "demo_deposits_disabled")
    assert "demo deposits" in body["title"].lower()
    assert wallet.balance().deposit_balance == 0


@pytest.mark.parametrize("amount", [0, -1, 10_000_001, "100", 1.5, None, True])
def test_demo_deposit_amounts_are_checked(network: Any, amount: Any) -> None:
    wallet = network.open_wallet("BKA1")
    refused(lambda: _demo_deposit(wallet, amount), 422, "validation_error")
    assert _demo_deposit(wallet, 10_000_000)["deposit_balance"] == 10_000_000


def test_a_replayed_demo_deposit_is_refused_and_credits_once(network: Any) -> None:
    wallet = network.open_wallet("BKA1")
    path = f"/v1/wallets/{wallet.wallet_id}/demo-deposit"
    body = json.dumps({"amount": 700}).encode()
    headers = sign_request(
        wallet.key, f"wallet:{wallet.wallet_id}", "POST", path, body, audience="operator:BKA1"
    ) | {"content-type": "application/json"}
    http = network.operator_http["BKA1"]
    first = http.post(path, content=body, headers=headers)
    assert first.status_code == 200, first.text
    assert_problem(http.post(path, content=body, headers=headers), 409, "replayed_request")
    assert wallet.balance().deposit_balance == 700
