"""`cbdc api` against the running e2e network: a whole wallet flow by hand (a new wallet, a
staff deposit, a signed load order, a cross-operator payment, a refusal, history), the central
bank as admin, the regulator, `--curl` commands that curl really sends, and the usage errors."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import uuid
from typing import Any

import pytest

from tests.e2e.conftest import REPO, LiveNetwork, run_cli


def _out(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def api(live: LiveNetwork, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    result = run_cli("api", *args, "--data-dir", str(live.data_dir), timeout=90)
    assert result.returncode == code, _out(result)
    assert "Traceback" not in result.stdout + result.stderr, _out(result)
    return result


def answer(live: LiveNetwork, *args: str, status: int = 200) -> Any:
    """The JSON answer of a request that succeeds with `status`."""
    result = api(live, *args)
    assert result.stderr.startswith(f"HTTP {status} "), _out(result)
    return json.loads(result.stdout)


def test_a_wallet_flow_by_hand(live_network: LiveNetwork) -> None:
    live = live_network
    alice, bob = f"api-alice-{uuid.uuid4().hex[:6]}", f"api-bob-{uuid.uuid4().hex[:6]}"
    customer = {"display_name": alice, "phone": "+8613800000001"}
    opened = answer(
        live,
        *("POST", "/v1/wallets", "--as", "new-wallet", "--service", "BKA1", "--data"),
        json.dumps({"wallet_class": "IV", "customer": customer}),
        status=201,
    )
    wallet_id = opened["wallet_id"]
    assert wallet_id.startswith("BKA1")
    # the new key is in the key store under the display name: the wallet signs as its nickname
    mine = answer(live, "GET", f"/v1/wallets/{wallet_id}", "--as", alice)
    assert (mine["wallet_id"], mine["balance"]) == (wallet_id, 0)

    deposit = answer(
        live,
        *("POST", f"/v1/admin/customers/{mine['customer_id']}/deposit", "--as", "staff:BKA1"),
        *("--idempotency-key", f"api-{uuid.uuid4()}", "--data", '{"amount": 50000}'),
    )
    assert deposit["deposit_balance"] == 50_000
    load = answer(
        live,
        *("POST", f"/v1/wallets/{wallet_id}/load", "--as", alice),
        *("--order", '{"type": "load", "amount": 20000}'),
    )
    assert (load["status"], load["wallet_balance"]) == ("completed", 20_000)

    payee = answer(
        live,
        *("POST", "/v1/wallets", "--as", "new-wallet", "--service", "BKB1", "--data"),
        json.dumps({"customer": {"display_name": bob, "phone": "+8613800000002"}}),
        status=201,
    )["wallet_id"]
    order = {"type": "payment", "payee": payee, "amount": 1234, "memo": "lunch"}
    paid = answer(
        live, "POST", "/v1/payments", "--as", alice, "--order", json.dumps(order), status=201
    )
    assert paid["payer"] == wallet_id and paid["amount"] == 1234
    status = answer(live, "GET", f"/v1/payments/{paid['payment_id']}", "--as", alice)
    assert status["payment_id"] == paid["payment_id"]
    history = answer(live, "GET", f"/v1/wallets/{wallet_id}/history?limit=5", "--as", alice)
    assert history["items"][0]["counterparty"] == payee
    assert history["items"][0]["amount"] == -1234
    assert answer(live, "GET", f"/v1/wallets/{payee}", "--as", bob)["balance"] == 1234

    # a refusal: exit 1, the problem on stdout, its detail in major units
    over = {"type": "payment", "payee": payee, "amount": 100_000}
    refused = api(live, "POST", "/v1/payments", "--as", alice, "--order", json.dumps(over), code=1)
    problem = json.loads(refused.stdout)
    assert problem["code"] == "insufficient_funds", _out(refused)
    assert problem["detail"] == "payer balance 187.66 CNY does not cover 1,000.00 CNY"
    assert refused.stderr.startswith("HTTP 422 "), _out(refused)
    assert "refused insufficient_funds" in refused.stderr, _out(refused)
    # the path routes to bob's operator, where alice's key is unknown: 401, exit 1
    other = api(live, "GET", f"/v1/wallets/{payee}", "--as", alice, code=1)
    assert json.loads(other.stdout)["code"] == "bad_signature", _out(other)


def test_the_central_bank_as_admin_staff_and_regulator(live_network: LiveNetwork) -> None:
    live = live_network
    # paths only the central bank serves go there, whoever signs
    supply = answer(live, "GET", "/v1/stats/money-supply", "--as", "admin")
    assert {row["operator"] for row in supply["by_operator"]} == {"BKA1", "BKB1"}
    me = answer(live, "GET", "/v1/operators/me", "--as", "staff:BKA1")
    assert me["operator"] == "BKA1"
    # the admin signs for the central bank: its audit there
    assert answer(live, "GET", "/v1/admin/audit", "--as", "admin")["ok"] is True
    assert "alerts" in answer(live, "GET", "/v1/analysis/alerts?limit=2", "--as", "regulator")
    # staff's own operator for the paths both serve
    vault = answer(live, "GET", "/v1/admin/vault", "--as", "staff:BKB1")
    assert "accounts" in vault
    # the regulator talks to every operator: which one must be said
    unsaid = api(live, "GET", "/v1/regulator/disclosure-log", "--as", "regulator", code=2)
    assert "cannot tell which service" in unsaid.stderr and "--service" in unsaid.stderr
    assert len(unsaid.stderr.strip().splitlines()) == 1, _out(unsaid)
    log = answer(
        live, "GET", "/v1/regulator/disclosure-log", "--as", "regulator", "--service", "BKB1"
    )
    assert "entries" in log
    # unsigned public calls need the service too
    info = answer(live, "GET", "/v1/info", "--service", "central-bank")
    assert info["audience"] == "central-bank"


def test_curl_commands_really_work(live_network: LiveNetwork) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed here: the printed commands cannot be run")
    live = live_network
    name = f"api-curl-{uuid.uuid4().hex[:6]}"
    created = run_cli("wallet", "create", name, "--data-dir", str(live.data_dir), timeout=90)
    assert created.returncode == 0, _out(created)
    match = re.search(r"BKA1[0-9]{16}", created.stdout)
    assert match is not None, created.stdout
    wallet_id = match.group(0)
    customer = answer(live, "GET", f"/v1/wallets/{wallet_id}", "--as", name)["customer_id"]
    live.credit_deposit("BKA1", customer, 1_000)

    def curl(*args: str) -> Any:
        printed = api(live, *args, "--curl")
        assert printed.stdout.startswith("curl "), _out(printed)
        sent = subprocess.run(
            ["sh", "-c", printed.stdout], capture_output=True, text=True, timeout=60, cwd=REPO
        )
        assert sent.returncode == 0, sent
        return json.loads(sent.stdout)

    assert curl("GET", f"/v1/wallets/{wallet_id}", "--as", name)["wallet_id"] == wallet_id
    load = '{"type": "load", "amount": 700}'
    loaded = curl("POST", f"/v1/wallets/{wallet_id}/load", "--as", name, "--order", load)
    assert (loaded["status"], loaded["wallet_balance"]) == ("completed", 700)
    # signed with an Idempotency-Key, at the central bank (its answer is signed too)
    reserves = curl(
        *("POST", "/v1/admin/operators/BKA1/reserves", "--as", "admin", "--data"),
        *('{"amount": 1}', "--idempotency-key", f"api-curl-{uuid.uuid4()}"),
    )
    assert (reserves["amount"], reserves["replayed"]) == (1, False), reserves
    # nothing was sent by --curl itself: the load above happened once
    assert answer(live, "GET", f"/v1/wallets/{wallet_id}", "--as", name)["balance"] == 700


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("POST", "/v1/payments", "--as", "nobody-here", "--data", "{}"), "no such wallet"),
        (("GET", "/v1/info"), "cannot tell which service /v1/info is for"),
        (("GET", "/v1/info", "--service", "ZZZ9"), "not a service of this network"),
        (("POST", "/v1/payments", "--service", "BKA1", "--data", "{oops"), "malformed JSON"),
        (("POST", "/v1/payments", "--order", "{}"), "--order is signed by a wallet"),
        (("GET", "/v1/wallets/ZZZZ" + "0" * 16), "no operator ZZZZ"),
        (("POST", "/v1/payments", "--service", "BKA1", "--data", "@/no/such.json"), "cannot read"),
        (("GET", "v1/info", "--service", "BKA1"), "the path starts with /"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_exit_2(
    live_network: LiveNetwork, args: tuple[str, ...], message: str
) -> None:
    result = api(live_network, *args, code=2)
    assert result.stderr.startswith("error: ") and message in result.stderr, _out(result)
    assert len(result.stderr.strip().splitlines()) == 1, _out(result)
    assert result.stdout == "", _out(result)
