"""The load generator's cheap order signing gives exactly the wallets' own signed order, and its
byte searches read the same status and problem code as parsing the answer would. No timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cbdc.crypto import canonical_json, verify_json
from loadtest import orders as common  # no Locust import here: it monkey-patches the process
from loadtest.keys import derive_key, private_key
from loadtest.manifest import Manifest, OperatorWallets
from wallets.orders import payment_order, sign_order


def test_payment_body_is_the_wallets_signed_order_byte_for_byte() -> None:
    key = derive_key("seed", "BKA1", 7)
    order = payment_order(
        payer="BKA14502953426558810", payee="BKB19681380711319563", amount=12_300, currency="CNY"
    )
    body = common.payment_body(
        private_key("seed", "BKA1", 7),
        payer=order["payer"],
        payee=order["payee"],
        amount=order["amount"],
        currency=order["currency"],
        nonce=order["nonce"],
        created_at=order["created_at"],
    )
    signed = json.loads(body)
    assert signed == sign_order(key, order)  # Ed25519 signatures are deterministic
    assert body.startswith(b'{"order":' + canonical_json(order) + b',"signature":"')
    assert verify_json(key.public_key, signed["order"], signed["signature"])


def test_every_payment_body_has_a_fresh_nonce_and_the_current_time() -> None:
    key = private_key("seed", "BKA1", 1)
    orders = [
        json.loads(common.payment_body(key, payer="A", payee="B", amount=1, currency="CNY"))
        for _ in range(50)
    ]
    assert len({o["order"]["nonce"] for o in orders}) == 50
    fresh = payment_order(payer="A", payee="B", amount=1, currency="CNY")["created_at"]
    assert all(o["order"]["created_at"][:16] == fresh[:16] for o in orders)  # same minute


def test_manifest_names_must_be_plain(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    good = OperatorWallets(code="BKA1", url="http://127.0.0.1:1", wallets=["BKA14502953426558810"])
    Manifest(key_seed="s", currency="CNY", decimals=2, operators=[good]).save(path)
    assert Manifest.load(path).operators[0].wallets == good.wallets
    bad = OperatorWallets(code="BKA1", url="http://127.0.0.1:1", wallets=['BKA1"x'])
    Manifest(key_seed="s", currency="CNY", decimals=2, operators=[bad]).save(path)
    with pytest.raises(ValueError, match="not plain"):
        Manifest.load(path)


def test_the_load_generator_imports_no_service_code() -> None:
    """Locust processes import the manifest, keys and orders only, not the services (whose
    modules other work may be changing while a bench runs)."""
    code = (
        "import sys, loadtest.orders, loadtest.manifest, loadtest.keys\n"
        "tops = {m.split('.')[0] for m in sys.modules}\n"
        "print(sorted(tops & {'operators', 'central_bank', 'wallets', 'locust', 'gevent'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "body",
    [
        {"type": "payment-receipt", "status": "delivered", "receipt": {"status": "delivered"}},
        {"status": "pending_settlement", "amount": 5},
    ],
)
def test_receipt_status_by_byte_search(body: dict) -> None:
    for text in (json.dumps(body), json.dumps(body, separators=(",", ":"))):
        assert common.receipt_status(text.encode()) == body["status"]


def test_problem_code_by_byte_search_and_fallbacks() -> None:
    problem = {"type": "x", "title": "t", "status": 422, "code": "insufficient_funds"}
    assert common.problem_code(json.dumps(problem).encode()) == "insufficient_funds"
    assert common.problem_code(b'{"title": "no code"}') == "unknown"
    assert common.problem_code(b"<html>bad gateway</html>") == "unreadable"
    assert common.receipt_status(b'{"status": null}') == "None"
