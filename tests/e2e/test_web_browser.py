"""The web pages in a real browser (system Chromium through Playwright, tests/e2e/browser.py):
the wallet page each operator serves at `/` and the central bank's dashboard, against a live
network. Skipped, with the reason, where Playwright or Chromium is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from cbdc.crypto import b64e, verify
from tests.e2e.browser import chromium, static_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser


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
