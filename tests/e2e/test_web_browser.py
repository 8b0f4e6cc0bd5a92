"""The web pages in a real browser (system Chromium through Playwright, tests/e2e/browser.py):
the wallet page each operator serves at `/` and the central bank's dashboard, against a live
network. Skipped, with the reason, where Playwright or Chromium is missing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from cbdc.crypto import SigningKey, b64d, b64e, canonical_json, verify, verify_json
from cbdc.http import SignedClient
from cbdc.money import format_amount
from tests.e2e.browser import (
    VIEWPORT,
    chromium,
    minor,
    paste,
    screenshot,
    static_server,
    wait_for,
    wait_until,
    watch,
)
from tests.e2e.conftest import LiveNetwork

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


# What the wallet page relies on: a non-extractable Ed25519 key pair made by WebCrypto, kept as
# CryptoKey objects in IndexedDB, and still able to sign after a reload.
_MAKE_AND_STORE_KEY = """
async () => {
  const keys = await crypto.subtle.generateKey({name: "Ed25519"}, false, ["sign", "verify"]);
  let exportRefused = false;
  try { await crypto.subtle.exportKey("pkcs8", keys.privateKey); }
  catch (e) { exportRefused = true; }
  const db = await new Promise((ok, fail) => {
    const open = indexedDB.open("smoke", 1);
    open.onupgradeneeded = () => open.result.createObjectStore("keys");
    open.onsuccess = () => ok(open.result);
    open.onerror = () => fail(open.error);
  });
  await new Promise((ok, fail) => {
    const tx = db.transaction("keys", "readwrite");
    tx.objectStore("keys").put(keys, "k");
    tx.oncomplete = ok;
    tx.onerror = () => fail(tx.error);
  });
  db.close();
  const pub = new Uint8Array(await crypto.subtle.exportKey("raw", keys.publicKey));
  return {pub: Array.from(pub), extractable: keys.privateKey.extractable, exportRefused};
}
"""
_SIGN_WITH_STORED_KEY = """
async (message) => {
  const db = await new Promise((ok, fail) => {
    const open = indexedDB.open("smoke", 1);
    open.onsuccess = () => ok(open.result);
    open.onerror = () => fail(open.error);
  });
  const keys = await new Promise((ok, fail) => {
    const get = db.transaction("keys").objectStore("keys").get("k");
    get.onsuccess = () => ok(get.result);
    get.onerror = () => fail(get.error);
  });
  db.close();
  const signature = await crypto.subtle.sign(
    {name: "Ed25519"}, keys.privateKey, new TextEncoder().encode(message));
  return {signature: Array.from(new Uint8Array(signature)), type: keys.privateKey.type};
}
"""


def test_chromium_keeps_a_non_extractable_ed25519_key_in_indexeddb(
    browser: Browser, tmp_path: Path
) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>smoke</title><p>smoke</p>")
    context = browser.new_context()
    try:
        with static_server(tmp_path) as url:
            page = context.new_page()
            page.goto(url + "/")
            assert page.evaluate("window.isSecureContext") is True
            made = page.evaluate(_MAKE_AND_STORE_KEY)
            assert made["extractable"] is False and made["exportRefused"] is True
            public_key = b64e(bytes(made["pub"]))
            page.reload()  # the key comes back from IndexedDB, still a usable private key
            message = "CBDC-Envelope: v2\nnonce: é\u2028 ✓"
            signed = page.evaluate(_SIGN_WITH_STORED_KEY, message)
            assert signed["type"] == "private"
            assert verify(public_key, message.encode(), b64e(bytes(signed["signature"])))
    finally:
        context.close()


# --- the wallet page and the dashboard against a live network --------------------------------

# Shown when the wallet view is open with a plain 20-character wallet id.
_WALLET_OPEN = """
() => {
  const view = document.querySelector("#wallet-view");
  const id = document.querySelector("#wallet-id");
  const shown = view && !view.hidden && view.getClientRects().length > 0;
  const text = id ? id.textContent.trim() : "";
  return shown && /^[0-9A-Za-z]{20}$/.test(text) ? text : false;
}
"""
# A history row of `amount` (signed minor units): its counterparty cell's text.
_HISTORY_ROW = """
(amount) => {
  for (const row of document.querySelectorAll("table#history tbody tr.history-row")) {
    if (row.dataset.amount === String(amount)) {
      const cell = row.querySelector(".counterparty");
      return {counterparty: cell ? cell.textContent : null};
    }
  }
  return false;
}
"""
# Accessibility the pages promise: every field labelled, results announced politely, refusals
# as alerts, every table captioned. The ids of what falls short.
_UNLABELLED = """
() => {
  const fields = document.querySelectorAll("input:not([type=hidden]), select, textarea");
  const bad = [...fields].filter((f) => !f.labels.length && !f.getAttribute("aria-label")
    && !f.getAttribute("aria-labelledby")).map((f) => f.id || f.name || f.outerHTML);
  const tables = [...document.querySelectorAll("table")].filter((t) => !t.caption);
  return bad.concat(tables.map((t) => "uncaptioned table " + (t.id || "")));
}
"""

# Keys out of order at every level, quotes, backslashes, control characters, non-ASCII text
# and a character JSON escapes nowhere else (U+2028): what a memo or a nested order may hold.
# Keys beyond the BMP sort by code point in Python, not by UTF-16 unit as JS's sort() would.
TRICKY = {
    "z": {"b": [3, {"y": None, "x": True}], "a": False, "\U0001f600": 1, "\uff01": 2},
    "memo": 'tea "for two" \\ 雪 café \u2028 line\nbreak\ttab \u0001\u001f\u007f \U0001f600',
    "é": -12,
    "A": "",
    "_": [[], {}],
    "amount": 9_007_199_254_740_991,
}


def _open_wallet(page: Page, url: str, who: str) -> str:
    response = page.goto(url + "/")
    assert response is not None and response.status == 200, f"{who}: GET / answered {response}"
    csp = response.headers.get("content-security-policy", "")
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp, csp
    page.wait_for_selector("#open-form")
    page.select_option("select#open-class", "IV")
    page.click("#open-demo-fill")
    assert page.input_value("#open-phone"), f"{who}: Fill demo values left the phone empty"
    page.click("#open-submit")
    wallet_id = wait_until(page, _WALLET_OPEN, f"{who}: open a class IV wallet")
    assert page.evaluate(_UNLABELLED) == []
    assert page.get_attribute("#status", "role") == "status"
    assert page.get_attribute("#status", "aria-live") == "polite"
    assert page.get_attribute("#problem", "role") == "alert"
    assert page.inner_text("#wallet-class").strip() == "IV"
    return str(wallet_id)


def _amount_shown(page: Page, selector: str, amount: int, what: str) -> None:
    wait_for(page, f'{selector}[data-minor="{amount}"]', what)
    assert page.inner_text(selector).strip() == format_amount(amount, 2, "CNY"), what


def _fund(page: Page, who: str) -> None:
    """Demo deposit 500.00, load 300.00 of it into the wallet."""
    page.fill("#demo-deposit-amount", "500.00")
    page.click("button#demo-deposit")
    _amount_shown(page, "#deposit-balance", 500_00, f"{who}: demo deposit")
    assert page.input_value("#demo-deposit-amount") == "", f"{who}: demo amount not cleared"
    page.fill("#load-amount", "300.00")
    page.click("button#load")
    _amount_shown(page, "#balance", 300_00, f"{who}: load")
    _amount_shown(page, "#deposit-balance", 200_00, f"{who}: deposit after the load")
    wait_until(page, _HISTORY_ROW, f"{who}: the load in the history", arg=300_00)


def _admin(live: LiveNetwork) -> SignedClient:
    cb = live.config.central_bank
    return SignedClient(
        httpx.Client(base_url=cb.url, timeout=30),
        key=SigningKey.load(Path(cb.admin_key_file)),
        key_id="admin",
        server_public_key=cb.public_key,
    )


def test_two_wallets_pay_across_operators_and_the_dashboard_counts_it(
    browser: Browser, live_network: LiveNetwork
) -> None:
    url_a = live_network.config.operator("BKA1").url
    url_b = live_network.config.operator("BKB1").url
    ctx_a = browser.new_context(viewport=VIEWPORT)
    ctx_b = browser.new_context(viewport=VIEWPORT)
    errors: list[str] = []
    try:
        ctx_a.grant_permissions(["clipboard-read", "clipboard-write"], origin=url_a)
        page_a, page_b = ctx_a.new_page(), ctx_b.new_page()
        for context in (ctx_a, ctx_b):
            context.set_default_timeout(20_000)
        watch(page_a, errors)
        watch(page_b, errors)

        # Wallet A at BKA1: open, demo deposit, load.
        wallet_a = _open_wallet(page_a, url_a, "A")
        screenshot(page_a, "01-wallet-a-opened")
        _fund(page_a, "A")
        screenshot(page_a, "02-wallet-a-loaded")

        # Wallet B at BKB1 asks for 12.34: the QR code and the payload to paste.
        wallet_b = _open_wallet(page_b, url_b, "B")
        page_b.fill("#request-amount", "12.34")
        page_b.click("button#show-qr")
        payload = f"cbdc:pay?to={wallet_b}&amount=12.34&currency=CNY"
        wait_until(
            page_b,
            "p => document.querySelector('#qr-payload')?.textContent.trim() === p",
            "B: the payment request's payload",
            arg=payload,
        )
        wait_until(
            page_b,
            "() => { const q = document.querySelector('img#qr');"
            " return q && q.complete && q.naturalWidth > 0; }",
            "B: the QR image loads",
        )
        assert "/web/qr.svg?" in (page_b.get_attribute("img#qr", "src") or "")
        screenshot(page_b, "03-wallet-b-receive-qr", doc="web-wallet-receive")

        # A pastes B's payload ("scanning can be pasting") and pays across operators.
        how = paste(page_a, "#pay-to", payload)
        wait_until(
            page_a,
            "() => document.querySelector('#pay-amount').value === '12.34'",
            f"A: the pasted ({how}) payload fills the amount",
        )
        assert wallet_b in page_a.input_value("#pay-to")
        page_a.fill("#pay-memo", 'lunch "noodles" café')
        page_a.click("button#pay")
        _amount_shown(page_a, "#balance", 300_00 - 12_34, "A: pay 12.34 to B")
        row = wait_until(page_a, _HISTORY_ROW, "A: the payment in A's history", arg=-12_34)
        assert "".join(row["counterparty"].split()) == wallet_b
        screenshot(page_a, "04-wallet-a-paid", doc="web-wallet")

        # B sees it (delivery across operators may take a moment: refresh until it is there).
        deadline = time.monotonic() + 30
        while page_b.get_attribute("#balance", "data-minor") != str(12_34):
            assert time.monotonic() < deadline, "B: the payment never arrived"
            page_b.click("button#refresh")
            time.sleep(0.5)
        _amount_shown(page_b, "#balance", 12_34, "B: received 12.34")
        row = wait_until(page_b, _HISTORY_ROW, "B: the payment in B's history", arg=12_34)
        assert (row["counterparty"] or "").strip(), "B's history row names no counterparty"
        screenshot(page_b, "05-wallet-b-received")

        # A refused payment: more than the balance. Title and detail, amounts in major units.
        page_a.fill("#pay-to", wallet_b)
        page_a.fill("#pay-amount", "1000.00")
        page_a.click("button#pay")
        page_a.wait_for_selector("#problem", state="visible")
        title = page_a.inner_text("#problem .problem-title").strip()
        detail = page_a.inner_text("#problem .problem-detail").strip()
        assert title and page_a.get_attribute("#problem", "data-code"), (title, detail)
        assert "CNY" in detail, f"the refusal's detail names no amount in CNY: {detail!r}"
        assert minor(page_a, "#balance") == 300_00 - 12_34
        screenshot(page_a, "06-wallet-a-refused")

        # The page's canonical JSON is Python's; its key is a public Ed25519 key (the payment
        # above went through: the server verified the page's order signature).
        js = page_a.evaluate("o => window.cbdcWallet.canonicalJson(o)", TRICKY)
        assert js == canonical_json(TRICKY).decode()
        public_key = page_a.evaluate("() => window.cbdcWallet.publicKey()")
        assert len(b64d(public_key)) == 32
        signed = page_a.evaluate(
            "f => window.cbdcWallet.signOrderForTest(f)",
            {"type": "payment", "wallet": wallet_a, "payee": wallet_b, "amount": 1, "memo": "é"},
        )
        assert verify_json(public_key, signed["order"], signed["signature"])
        created_at = signed["order"]["created_at"]  # Python's isoformat() of an aware UTC time
        assert datetime.fromisoformat(created_at).isoformat() == created_at
        assert created_at.endswith("+00:00") and len(created_at) == 32, created_at
        assert re.fullmatch("[0-9a-f]{32}", signed["order"]["nonce"])

        # Unload some back to the deposit; upgrade to class III on demo evidence. A new action
        # clears the refusal shown before.
        page_a.fill("#unload-amount", "10.00")
        page_a.click("button#unload")
        page_a.wait_for_selector("#problem", state="hidden")
        _amount_shown(page_a, "#balance", 300_00 - 12_34 - 10_00, "A: unload 10.00")
        _amount_shown(page_a, "#deposit-balance", 210_00, "A: the deposit after the unload")
        assert "2,000.00 CNY" in page_a.inner_text("#limits")  # class IV's single payment
        page_a.select_option("select#upgrade-class", "III")
        page_a.click("button#upgrade-demo-fill")
        page_a.click("button#upgrade")
        wait_until(
            page_a,
            "() => document.querySelector('#wallet-class').textContent.trim() === 'III'",
            "A: upgrade to class III",
        )
        wait_until(
            page_a,
            "() => document.querySelector('#limits').textContent.includes('5,000.00 CNY')",
            "A: class III's limits shown",
        )

        # The wallet comes back from IndexedDB after a reload; "forget" drops it.
        page_a.reload()
        assert wait_until(page_a, _WALLET_OPEN, "A: the stored wallet opens at load") == wallet_a
        # The operator out of reach: the page says so (not a refusal by the operator).
        page_b.route("**/v1/**", lambda route: route.abort())
        page_b.click("button#refresh")
        page_b.wait_for_selector('#problem[data-code="network_error"]', state="visible")
        assert page_b.inner_text("#problem .problem-detail").strip()
        page_b.unroute("**/v1/**")
        # B holds 12.34: the first click only asks, inside the page; the second forgets.
        page_b.click("button#forget")
        wait_for(page_b, 'button#forget[data-armed="true"]', "B: forget asks first")
        assert "12.34 CNY will be out of reach" in page_b.inner_text("button#forget")
        assert page_b.is_visible("#wallet-view") and "12.34 CNY" in page_b.inner_text("#status")
        page_b.click("button#forget")
        page_b.wait_for_selector("#open-form", state="visible")  # forgotten: then reload
        page_b.reload()
        page_b.wait_for_selector("#open-form", state="visible")
        assert not page_b.is_visible("#wallet-view")
        # An empty wallet is forgotten at the first click.
        _open_wallet(page_b, url_b, "B, a second wallet")
        page_b.click("button#forget")
        page_b.wait_for_selector("#open-form", state="visible")

        _dashboard(browser, live_network, errors)
        assert not errors, errors
    except BaseException:
        for context, name in ((ctx_a, "failed-wallet-a"), (ctx_b, "failed-wallet-b")):
            for page in context.pages:
                with suppress(Exception):  # what the page showed, if it still can
                    screenshot(page, name)
        raise
    finally:
        ctx_a.close()
        ctx_b.close()


def _dashboard(browser: Browser, live: LiveNetwork, errors: list[str]) -> None:
    cb_url = live.config.central_bank.url
    login = _admin(live).request("POST", "/v1/admin/dashboard/logins", {})
    assert login["url"].startswith(f"{cb_url}/login?token="), login
    assert httpx.get(f"{cb_url}/dashboard/api/summary").status_code == 401

    # The wallet's 1000 px: the operators table fits without a sideways scroll.
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(20_000)
    try:
        page = ctx.new_page()
        watch(page, errors)
        response = page.goto(cb_url + "/")
        assert response is not None and response.status == 401
        page.wait_for_selector("#login-required")
        screenshot(page, "07-dashboard-login-required")

        page.goto(login["url"])
        assert page.url.rstrip("/") == cb_url, page.url
        wait_until(
            page,
            "() => Number(document.querySelector("
            "'table#operators tr[data-operator=\"BKA1\"] .payments-total')"
            "?.dataset.value) >= 1",
            "dashboard: BKA1's payments counted",
        )
        first = page.inner_text("#updated-at").strip()
        assert first, "#updated-at is empty after a poll"
        for code in ("BKA1", "BKB1"):
            row = f'table#operators tr[data-operator="{code}"]'
            for cell in (".outstanding", ".reserves", ".payments-rate", ".queues"):
                assert page.locator(f"{row} {cell}").count() == 1, (code, cell)
            wait_for(page, f'#disclosure [data-disclosure="{code}"][data-ok="true"]', code)
        assert minor(page, "#total-outstanding") > 0
        assert "CNY" in page.inner_text("#total-outstanding")
        assert minor(page, "#total-reserves") > 0
        assert page.inner_text("#issuance").strip() and page.inner_text("#redemption").strip()
        assert page.locator("table#alerts").count() == 1
        # No alerts: one sentence says so and the empty table is hidden; else the table shows.
        alert_rows = page.locator("table#alerts tr.alert-row").count()
        assert page.locator("table#alerts").is_visible() == (alert_rows > 0)
        assert ("No AML alerts" in page.inner_text("#alert-totals")) == (alert_rows == 0)
        overflow = page.evaluate(
            "() => [...document.querySelectorAll('.scroll')]"
            ".map(d => d.scrollWidth - d.clientWidth)"
        )
        assert max(overflow) <= 0, f"a dashboard table scrolls sideways at 1000 px: {overflow}"
        assert page.evaluate(_UNLABELLED) == []
        assert "cbdc_dashboard" not in page.evaluate("document.cookie")  # HttpOnly
        wait_until(
            page,
            "t => document.querySelector('#updated-at').textContent.trim() !== t",
            "dashboard: polls again",
            arg=first,
            timeout=10,
        )
        screenshot(page, "08-dashboard", doc="dashboard")
        summary = ctx.request.get(f"{cb_url}/dashboard/api/summary").json()
        assert {"currency", "supply", "operators", "alerts", "disclosure"} <= set(summary)
    except BaseException:
        for page in ctx.pages:
            with suppress(Exception):
                screenshot(page, "failed-dashboard")
        raise
    finally:
        ctx.close()

    # The link was for one use: a second browser (no session) is refused.
    again = browser.new_context()
    try:
        page = again.new_page()
        response = page.goto(login["url"])
        assert response is not None and response.status == 401
        assert "cbdc dashboard" in page.inner_text("body")
        assert page.goto(cb_url + "/").status == 401  # type: ignore[union-attr]
    finally:
        again.close()
