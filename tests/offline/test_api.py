"""The offline routes over HTTP: registration and the certificate chain, funding and its
refusals, defund, sync, the device view and staff totals; bad input answered with
problem+json and a stable code, never a 500."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from sqlalchemy import text

from cbdc import offline as kernel
from cbdc.clock import iso
from cbdc.crypto import SigningKey
from cbdc.http import SignedClient
from cbdc.tokens import sign_document
from tests.helpers import assert_problem, audits_ok, drain, refused
from tests.offline.helpers import balance, purse
from wallets.offline.secure_element import SecureElement
from wallets.orders import sign_order


def order(wallet: Any, network: Any, **fields: Any) -> dict[str, Any]:
    body = {
        "wallet": wallet.wallet_id,
        "currency": "CNY",
        "nonce": uuid.uuid4().hex,
        "created_at": iso(network.state(wallet.wallet_id[:4]).ctx.now()),
        **fields,
    }
    return sign_order(wallet.key, body)


def post(network: Any, code: str, path: str, body: Any) -> Any:
    return network.operator_http[code].post(path, json=body)


def register(network: Any, wallet: Any, se: SecureElement, name: str = "card") -> Any:
    body = order(wallet, network, type="offline_device", public_key=se.public_key, name=name)
    return post(network, wallet.wallet_id[:4], f"/v1/wallets/{wallet.wallet_id}/devices", body)


def fund(network: Any, wallet: Any, device_id: str, amount: int) -> Any:
    body = order(wallet, network, type="offline_fund", device=device_id, amount=amount)
    return post(network, device_id[:4], f"/v1/offline/devices/{device_id}/fund", body)


def installed(network: Any, wallet: Any) -> SecureElement:
    se = SecureElement.generate("CNY")
    answer = register(network, wallet, se)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    se.install(body["certificate"], body["operator_certificate"], body["central_bank_public_key"])
    return se


def test_registration_certifies_the_device_with_its_class_limits(network: Any) -> None:
    alice = network.open_wallet("BKA1")
    se = SecureElement.generate("CNY")
    answer = register(network, alice, se)
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["replayed"] is False and body["purse_balance"] == 0
    document = kernel.verify_device_chain(
        network.cb_key.public_key, body["operator_certificate"], body["certificate"]
    )
    limits = network.state("BKA1").ctx.policy.offline_limits(4)
    assert (
        document["limits"]
        == body["limits"]
        == {
            "per_payment": limits.per_payment,
            "purse_cap": limits.purse_cap,
            "max_payments": limits.max_payments,
            "max_days": limits.max_days,
        }
    )
    assert (document["device"], document["wallet"], document["public_key"]) == (
        body["device_id"],
        alice.wallet_id,
        se.public_key,
    )
    assert kernel.operator_of(body["device_id"]) == "BKA1"
    again = register(network, alice, se)  # the same key for the same wallet: the same device
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert again.json()["device_id"] == body["device_id"]
    bob = network.open_wallet("BKA1")
    assert_problem(register(network, bob, se), 409, "offline_device_key_taken")
    # a forged certificate (signed by another key) fails the chain
    forged = sign_document(SigningKey.generate(), body["certificate"]["document"])
    try:
        kernel.verify_device_chain(network.cb_key.public_key, body["operator_certificate"], forged)
    except kernel.OfflineRefusal as exc:
        assert exc.code == kernel.BAD_CHAIN
    else:
        raise AssertionError("a forged device certificate passed the chain")


def test_fund_and_defund_post_and_refuse(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=2_000_00, load=2_000_00)
    mallory = network.open_wallet("BKA1", deposit=100_00, load=100_00)
    se = installed(network, alice)
    cap = se.limits.purse_cap
    funded = fund(network, alice, se.device_id, 400_00)
    assert funded.status_code == 200, funded.text
    answer = funded.json()
    assert (answer["purse_balance"], answer["wallet_balance"]) == (400_00, 1_600_00)
    assert answer["funding"]["document"]["seq"] == 1
    assert se.apply_funding(answer["funding"]) == 400_00
    assert purse(network, "BKA1", se.device_id) == 400_00
    # the same signed order again: the same signed record, nothing moves
    body = order(alice, network, type="offline_fund", device=se.device_id, amount=10_00)
    path = f"/v1/offline/devices/{se.device_id}/fund"
    first, second = post(network, "BKA1", path, body), post(network, "BKA1", path, body)
    assert first.json()["funding"] == second.json()["funding"] and second.json()["replayed"]
    assert purse(network, "BKA1", se.device_id) == 410_00

    assert_problem(fund(network, alice, se.device_id, cap), 422, "offline_purse_cap_exceeded")
    poor = network.open_wallet("BKA1", deposit=5_00, load=5_00)
    poor_se = installed(network, poor)
    assert_problem(fund(network, poor, poor_se.device_id, 6_00), 422, "insufficient_funds")
    # another wallet's device
    assert_problem(fund(network, mallory, se.device_id, 1_00), 403, "offline_not_your_device")
    unknown = kernel.new_device_id("BKA1")
    assert_problem(fund(network, alice, unknown, 1_00), 404, "offline_unknown_device")

    defund = se.defund(100_00, network.state("BKA1").ctx.now())
    path = f"/v1/offline/devices/{se.device_id}/defund"
    out = post(network, "BKA1", path, defund)
    assert out.status_code == 200, out.text
    assert (out.json()["credited"], out.json()["purse_balance"]) == (100_00, 310_00)
    assert post(network, "BKA1", path, defund).json()["outcome"] == "duplicate"
    assert balance(network, "BKA1", alice.wallet_id) == 1_690_00
    # a defund into another wallet is no defund
    bad = copy.deepcopy(defund)
    bad["transfer"]["payee"] = kernel.defund_payee(mallory.wallet_id)
    assert_problem(post(network, "BKA1", path, bad), 422)
    # a revoked device takes no more funding (its payments still settle when they arrive)
    with network.state("BKA1").engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE offline_devices SET status = 'revoked', revoked_at = now(), "
                "revoke_reason = 'test' WHERE id = :d"
            ),
            {"d": poor_se.device_id},
        )
    assert_problem(fund(network, poor, poor_se.device_id, 1_00), 403, "offline_device_revoked")
    totals = network.staff("BKA1").request("GET", "/v1/admin/offline")
    assert totals["purse_value"] == 310_00 and totals["devices"] == 2
    view = alice.client.request("GET", f"/v1/offline/devices/{se.device_id}")
    assert view["purse_balance"] == 310_00 and len(view["fundings"]) == 2
    refused(
        lambda: mallory.client.request("GET", f"/v1/offline/devices/{se.device_id}"),
        403,
        "offline_not_your_device",
    )
    audits_ok(network)


def test_sync_over_http_and_bad_input(network: Any) -> None:
    alice = network.open_wallet("BKA1", deposit=500_00, load=500_00)
    bob = network.open_wallet("BKB1")
    pa, pb = installed(network, alice), installed(network, bob)
    pa.apply_funding(fund(network, alice, pa.device_id, 100_00).json()["funding"])
    now = network.state("BKA1").ctx.now()
    pb.receive(pa.pay(pb.device_id, bob.wallet_id, 40_00, now), now)
    path_a = f"/v1/offline/devices/{pa.device_id}/sync"
    path_b = f"/v1/offline/devices/{pb.device_id}/sync"

    # a batch signed by another key
    batch = pb.sync_batch(now)
    forged = {"batch": batch["batch"], "signature": SigningKey.generate().sign_json(batch["batch"])}
    assert_problem(post(network, "BKB1", path_b, forged), 422, kernel.BAD_SIGNATURE)
    # malformed batches: schema violations, wrong types, the wrong device, not JSON
    broken = copy.deepcopy(batch)
    broken["batch"]["counter"] = "7"
    assert_problem(post(network, "BKB1", path_b, broken), 422, "validation_error")
    del broken["batch"]["sent"]
    assert_problem(post(network, "BKB1", path_b, broken), 422, "validation_error")
    assert_problem(post(network, "BKB1", path_a, batch), 422, "validation_error")
    raw = network.operator_http["BKB1"].post(path_b, content=b"{not json")
    assert_problem(raw, 422)
    assert_problem(post(network, "BKB1", path_b, {"batch": None, "signature": "x"}), 422)

    # a payment whose chain is not the central bank's, and one with a forged signature, in a
    # validly signed batch: refused one by one, the rest still goes through
    fake = SecureElement.generate("CNY")
    rogue_op = SigningKey.generate()
    op_cert = sign_document(
        rogue_op, {**pa.operator_certificate["document"], "public_key": rogue_op.public_key}
    )
    cert = sign_document(rogue_op, {**pa.certificate["document"], "public_key": fake.public_key})
    fake_payment = {
        **pa.pay(pb.device_id, bob.wallet_id, 10_00, now),
        "certificate": cert,
        "operator_certificate": op_cert,
    }
    tampered = pa.pay(pb.device_id, bob.wallet_id, 5_00, now)
    tampered["transfer"] = {**tampered["transfer"], "amount": 50_00}
    extra = pb.state()
    extra["received"] += [fake_payment, tampered]
    device = SecureElement.from_state(extra)
    answer = post(network, "BKB1", path_b, device.sync_batch(now))
    assert answer.status_code == 200, answer.text
    statuses = [(r["status"], r.get("code")) for r in answer.json()["received"]]
    assert statuses == [
        ("forwarding", None),
        ("refused", kernel.BAD_CHAIN),
        ("refused", kernel.BAD_SIGNATURE),
    ]
    pb.apply_sync(answer.json())
    network.run_jobs()
    good = post(network, "BKA1", path_a, pa.sync_batch(now))
    assert good.status_code == 200, good.text
    # the payer's log: the payment forwarded already, and the two transfers whose payments the
    # payee refused (the real signed transfers are still owed to bob: honoured)
    assert [r["outcome"] for r in good.json()["sent"]] == [
        "duplicate",
        "pending_settlement",
        "pending_settlement",
    ]
    pa.apply_sync(good.json())
    drain(network)
    assert balance(network, "BKB1", bob.wallet_id) == 55_00
    assert purse(network, "BKA1", pa.device_id) == 45_00
    # interop claims are for operators only: a wallet is refused
    refused(
        lambda: alice.client.request(
            "POST", "/v1/interop/offline/claims", {"claims": [fake_payment]}
        ),
        403,
        "forbidden",
    )
    # an operator forwarding a claim for a payee that is not its own: refused per claim
    peer = SignedClient(
        network.operator_http["BKA1"],
        key=network.operator_keys["BKB1"],
        key_id="operator:BKB1",
        audience="operator:BKA1",
    )
    claim = peer.request("POST", "/v1/interop/offline/claims", {"claims": [fake_payment]})
    assert [(r["outcome"], r.get("code")) for r in claim["results"]] == [
        ("refused", kernel.BAD_CHAIN)
    ]
    audits_ok(network)
