"""An operator refuses bad requests, requests signed for another audience and the old
envelope format; unknown key ids and bad signatures get one answer."""

from __future__ import annotations

import time
import uuid
from typing import Any

from cbdc.addresses import make_wallet_id
from cbdc.crypto import SigningKey, sha256_hex
from cbdc.envelope import (
    BAD_SIGNATURE_DETAIL,
    H_AUDIENCE,
    H_KEY,
    H_NONCE,
    H_SIG,
    H_TS,
    H_VERSION,
    MAX_SKEW_SECONDS,
)
from tests.auth.helpers import AT_A, AT_B, CB, JSON, signed_headers, stale_headers
from tests.helpers import assert_problem


def version1_headers(
    key: SigningKey, key_id: str, method: str, target: str, body: bytes = b""
) -> dict[str, str]:
    """The envelope before version 2: no version, no audience, nothing of either signed."""
    ts, nonce = str(int(time.time())), uuid.uuid4().hex
    text = f"{method}\n{target}\n{ts}\n{nonce}\n{sha256_hex(body)}".encode()
    return {H_KEY: key_id, H_TS: ts, H_NONCE: nonce, H_SIG: key.sign(text)}


# ------------------------------------------------------------------ operator


def test_operator_refuses_unsigned_forged_stale_and_replayed_requests(network: Any) -> None:
    http, staff_key = network.operator_http["BKA1"], network.operator_keys["BKA1"]
    target = "/v1/admin/audit"
    assert_problem(http.get(target), 401, "unauthenticated")
    forged = signed_headers(SigningKey.generate(), "operator:BKA1", "GET", target, audience=AT_A)
    assert_problem(http.get(target, headers=forged), 401, "bad_signature")
    stale = stale_headers(
        staff_key, "operator:BKA1", "GET", target, b"", MAX_SKEW_SECONDS + 5, audience=AT_A
    )
    assert_problem(http.get(target, headers=stale), 401, "unauthenticated")
    assert_problem(
        http.get(target, headers=signed_headers(staff_key, "nobody", "GET", target, audience=AT_A)),
        401,
        "bad_signature",
    )

    headers = signed_headers(staff_key, "operator:BKA1", "GET", target, audience=AT_A)
    assert http.get(target, headers=headers).status_code == 200
    assert_problem(http.get(target, headers=headers), 409, "replayed_request")

    # a wallet's reads are signed by the wallet key; another wallet's key is refused
    alice = network.open_wallet("BKA1")
    bob = network.open_wallet("BKA1")
    path = f"/v1/wallets/{alice.wallet_id}"
    ok = http.get(
        path,
        headers=signed_headers(alice.key, f"wallet:{alice.wallet_id}", "GET", path, audience=AT_A),
    )
    assert ok.status_code == 200 and ok.json()["wallet_id"] == alice.wallet_id
    as_bob = signed_headers(bob.key, f"wallet:{bob.wallet_id}", "GET", path, audience=AT_A)
    assert_problem(http.get(path, headers=as_bob), 403, "forbidden")
    bob_claims_alice = signed_headers(
        bob.key, f"wallet:{alice.wallet_id}", "GET", path, audience=AT_A
    )
    assert_problem(http.get(path, headers=bob_claims_alice), 401, "bad_signature")

    # a deposit credit replayed with the same envelope moves money once
    customer = alice.balance().customer_id
    dpath = f"/v1/admin/customers/{customer}/deposit"
    body = b'{"amount": 5000}'
    headers = signed_headers(
        staff_key,
        "operator:BKA1",
        "POST",
        dpath,
        body,
        AT_A,
        **JSON,
        **{"Idempotency-Key": "deposit-replay-1"},
    )
    assert http.post(dpath, content=body, headers=headers).status_code == 200
    assert_problem(http.post(dpath, content=body, headers=headers), 409, "replayed_request")
    tampered = http.post(dpath, content=b'{"amount": 5000000}', headers=headers)
    assert tampered.status_code == 401
    assert alice.balance().deposit_balance == 5000

    # another operator's staff key is no staff key here
    other = signed_headers(
        network.operator_keys["BKB1"], "operator:BKB1", "GET", target, audience=AT_A
    )
    assert_problem(http.get(target, headers=other), 403, "forbidden")


def test_a_request_signed_for_one_operator_is_refused_at_another(network: Any) -> None:
    """Finding 3: the regulator's signed read of BKA1's disclosure log, replayed at BKB1 (whose
    nonces are its own), is refused there for its audience; so is any signed request sent to
    another service than the one it names, and the audience cannot be changed in transit."""
    regulator = network.regulator.signing
    target = "/v1/regulator/disclosure-log"
    for_a = signed_headers(regulator, "regulator", "GET", target, audience=AT_A)
    at_b = network.operator_http["BKB1"].get(target, headers=for_a)
    body = assert_problem(at_b, 401, "wrong_audience")
    assert AT_A in body["detail"] and AT_B in body["detail"]
    # at BKA1, the audience it was signed for, it is answered
    assert network.operator_http["BKA1"].get(target, headers=for_a).status_code == 200
    # claiming BKB1 as the audience breaks the signature
    relabelled = {
        **signed_headers(regulator, "regulator", "GET", target, audience=AT_A),
        H_AUDIENCE: AT_B,
    }
    assert_problem(
        network.operator_http["BKB1"].get(target, headers=relabelled), 401, "bad_signature"
    )
    # an operator's request for the central bank is no request for a peer, and back
    staff = network.operator_keys["BKA1"]
    for_cb = signed_headers(staff, "operator:BKA1", "GET", "/v1/admin/audit")
    assert_problem(
        network.operator_http["BKA1"].get("/v1/admin/audit", headers=for_cb), 401, "wrong_audience"
    )
    for_op = signed_headers(staff, "operator:BKA1", "GET", "/v1/operators/me", audience=AT_A)
    assert_problem(network.cb.get("/v1/operators/me", headers=for_op), 401, "wrong_audience")
    # /v1/info names each service's audience
    assert network.cb.get("/v1/info").json()["audience"] == CB
    assert network.operator_http["BKB1"].get("/v1/info").json()["audience"] == AT_B


def test_the_old_envelope_format_is_refused_clearly(network: Any) -> None:
    """Envelopes without CBDC-Version 2 (the format before audiences) are refused with a code
    of their own that names the version expected, by the central bank and by operators."""
    staff = network.operator_keys["BKA1"]
    for http, key, key_id, target in (
        (network.cb, network.admin_key, "admin", "/v1/admin/audit"),
        (network.operator_http["BKA1"], staff, "operator:BKA1", "/v1/admin/audit"),
    ):
        body = assert_problem(
            http.get(target, headers=version1_headers(key, key_id, "GET", target)),
            401,
            "envelope_version_unsupported",
        )
        assert "version 2" in body["detail"]
        # a version-1 style envelope that claims another version is refused the same way
        claimed = {**version1_headers(key, key_id, "GET", target), H_VERSION: "1"}
        assert_problem(http.get(target, headers=claimed), 401, "envelope_version_unsupported")
        # the current format goes through
        audience = CB if http is network.cb else AT_A
        ok = http.get(target, headers=signed_headers(key, key_id, "GET", target, audience=audience))
        assert ok.status_code == 200, ok.text


def test_unknown_key_ids_and_bad_signatures_get_one_answer(network: Any) -> None:
    """Finding 7: nobody can tell from the answer whether a wallet id (or operator code) exists:
    an unknown key id and a wrong key for a known one give the same status, code and detail."""
    http = network.operator_http["BKA1"]
    alice = network.open_wallet("BKA1")
    mallory = SigningKey.generate()
    nobody = make_wallet_id("BKA1", 10**13 + 7)  # valid check digits, no such wallet
    answers = []
    for wallet_id in (alice.wallet_id, nobody):
        path = f"/v1/wallets/{wallet_id}"
        headers = signed_headers(mallory, f"wallet:{wallet_id}", "GET", path, audience=AT_A)
        response = http.get(path, headers=headers)
        assert response.status_code == 401
        answers.append({k: v for k, v in response.json().items() if k != "instance"})
    assert answers[0] == answers[1]
    assert answers[0]["code"] == "bad_signature" and answers[0]["detail"] == BAD_SIGNATURE_DETAIL

    central = []
    for key_id in ("operator:BKA1", "operator:ZZZ9"):
        headers = signed_headers(mallory, key_id, "GET", "/v1/operators/me")
        response = network.cb.get("/v1/operators/me", headers=headers)
        assert response.status_code == 401
        central.append(response.json())
    assert central[0] == central[1] == {**answers[0], "status": 401}
