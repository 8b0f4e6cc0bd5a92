"""De-anonymisation under law: identity escrow released only against an order signed by the
regulator's key, every order written first to an append-only, hash-chained log; the escrow is
sealed to the regulator and nobody else (the operator included) can open it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cbdc.addresses import make_wallet_id
from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey
from cbdc.http import RemoteError, SignedClient
from cbdc.sealing import SealError, SealingKey
from regulator.client import RegulatorKeys, disclosure_order, open_escrow, verify_log_rows
from tests.conftest import VALID_ID_NUMBER
from tests.helpers import assert_problem

NAME, PHONE = "Chen Jing Disclosed", "+8613912345678"


def post_order(net: Any, order: dict[str, Any], code: str = "BKA1") -> Any:
    return net.operator_http[code].post("/v1/regulator/disclosures", json=order)


def regulator(net: Any, code: str = "BKA1") -> SignedClient:
    return SignedClient(net.operator_http[code], key=net.regulator.signing, key_id="regulator")


def log_entries(net: Any, code: str = "BKA1") -> list[dict[str, Any]]:
    return list(regulator(net, code).request("GET", "/v1/regulator/disclosure-log")["entries"])


def staff_verify(net: Any, code: str = "BKA1") -> dict[str, Any]:
    return dict(net.staff(code).request("GET", "/v1/admin/disclosure-log/verify"))


def order_for(net: Any, wallet_id: str, **changes: Any) -> dict[str, Any]:
    """A disclosure order; with `changes`, the order is altered and signed again."""
    signed = disclosure_order(
        net.regulator,
        wallet_id=wallet_id,
        legal_basis="Art. 28 AML Law; case 2026-0412",
        requester="Financial Intelligence Unit",
    )
    if not changes:
        return signed
    order = {**signed["order"], **changes}
    return {"order": order, "signature": net.regulator.signing.sign_json(order)}


def identified_wallet(net: Any) -> Any:
    return net.operator("BKA1").open_wallet(
        display_name=NAME, phone=PHONE, id_number=VALID_ID_NUMBER, wallet_class="III"
    )


# ------------------------------------------------------------------ release


def test_a_signed_order_releases_escrow_only_the_regulator_can_open(network: Any) -> None:
    wallet = identified_wallet(network)
    order = order_for(network, wallet.wallet_id)
    response = post_order(network, order)
    assert response.status_code == 200, response.text
    released = response.json()
    assert released["wallet_id"] == wallet.wallet_id
    assert released["order_id"] == order["order"]["order_id"]
    assert released["log"]["seq"] == 1

    record = open_escrow(network.regulator, released)
    assert record["wallet_id"] == wallet.wallet_id
    assert record["operator"] == "BKA1"
    assert record["wallet_class"] == "III"
    assert record["identity"]["display_name"] == NAME
    assert record["identity"]["id_number"] == VALID_ID_NUMBER
    assert record["identity"]["phone"] == PHONE
    assert set(record["evidence"]) == {"phone", "name", "id_number"}

    # The sealed box itself says nothing in clear...
    assert NAME not in str(released["escrow"]) and VALID_ID_NUMBER not in str(released["escrow"])
    # ...and no other key opens it: not a key the operator could make, not the regulator's
    # signing side, not the regulator's own key under another wallet's id (the box is bound).
    with pytest.raises(SealError):
        SealingKey.generate().open_json(released["escrow"], context=wallet.wallet_id.encode())
    with pytest.raises(SealError):
        open_escrow(RegulatorKeys.generate(), released)
    with pytest.raises(SealError):
        open_escrow(network.regulator, {**released, "wallet_id": make_wallet_id("BKA1", 424242)})
    # The regulator's key is no skeleton key: without an order it cannot read the wallet.
    with pytest.raises(RemoteError) as caught:
        regulator(network).request("GET", f"/v1/wallets/{wallet.wallet_id}")
    assert caught.value.status == 403


def test_escrow_follows_the_wallet_class(network: Any) -> None:
    wallet = network.operator("BKA1").open_wallet(phone=PHONE)
    first = post_order(network, order_for(network, wallet.wallet_id)).json()
    record = open_escrow(network.regulator, first)
    assert record["wallet_class"] == "IV"
    assert record["identity"] == {"phone": PHONE}
    wallet.change_class("III", display_name=NAME, id_number=VALID_ID_NUMBER)
    second = post_order(network, order_for(network, wallet.wallet_id)).json()
    record = open_escrow(network.regulator, second)
    assert record["wallet_class"] == "III"
    assert record["identity"]["display_name"] == NAME
    assert record["identity"]["id_number"] == VALID_ID_NUMBER
    assert second["log"]["seq"] == 2


# ------------------------------------------------------------------ refusals


def test_refused_orders_release_nothing_and_log_nothing(network: Any) -> None:
    wallet = identified_wallet(network)
    good = order_for(network, wallet.wallet_id)

    # Unsigned or garbage-signed: refused before anything happens.
    assert post_order(network, {"order": good["order"]}).status_code == 422
    for garbage in ("A" * 86, "!" * 86, good["signature"][:-4] + "AAAA"):
        response = post_order(network, {"order": good["order"], "signature": garbage})
        assert response.status_code in (403, 422), response.text
        assert "escrow" not in response.json()

    # Signed by somebody else's Ed25519 key.
    impostor = SigningKey.generate()
    forged = {"order": good["order"], "signature": impostor.sign_json(good["order"])}
    assert_problem(post_order(network, forged), 403, "disclosure_order_invalid")
    # A genuine signature over a different order (the wallet id swapped after signing).
    other = network.open_wallet("BKA1", wallet_class="III", name="Other Person")
    swapped = {
        "order": {**good["order"], "wallet_id": other.wallet_id},
        "signature": good["signature"],
    }
    assert_problem(post_order(network, swapped), 403, "disclosure_order_invalid")

    # Too old (issued two days ago) or dated in the future, even though properly signed.
    stale = order_for(network, wallet.wallet_id, issued_at=iso(utcnow() - timedelta(days=2)))
    assert_problem(post_order(network, stale), 422, "disclosure_order_expired")
    future = order_for(network, wallet.wallet_id, issued_at=iso(utcnow() + timedelta(hours=1)))
    assert_problem(post_order(network, future), 422, "disclosure_order_expired")

    # A wallet the operator does not hold: unknown here, or held at the other operator.
    unknown = order_for(network, make_wallet_id("BKA1", 99_999_999))
    assert_problem(post_order(network, unknown), 404)
    remote = network.open_wallet("BKB1")
    assert_problem(post_order(network, order_for(network, remote.wallet_id)), 404)

    assert log_entries(network) == []  # no refusal wrote to the log
    assert staff_verify(network)["length"] == 0

    # The genuine order works once; replaying it is refused and logs nothing more.
    assert post_order(network, good).status_code == 200
    assert_problem(post_order(network, good), 409, "disclosure_order_replayed")
    # Same order id re-signed with another wallet: still the same order, still refused.
    reused = order_for(network, other.wallet_id, order_id=good["order"]["order_id"])
    assert_problem(post_order(network, reused), 409, "disclosure_order_replayed")
    entries = log_entries(network)
    assert len(entries) == 1
    assert entries[0]["entry"]["order"] == good["order"]


def test_replay_protection_does_not_depend_on_how_the_order_id_is_written(network: Any) -> None:
    """One spelling per order id: an upper-case UUID (which uuid.UUID would parse) is refused
    outright, so a replay can never pass as a new order by changing the case of its id."""
    wallet = identified_wallet(network)
    lower = order_for(network, wallet.wallet_id)
    upper = order_for(network, wallet.wallet_id, order_id=lower["order"]["order_id"].upper())
    assert_problem(post_order(network, upper), 422, "validation_error")
    assert log_entries(network) == []
    assert post_order(network, lower).status_code == 200
    # The very same signed document, sent again, in either spelling.
    assert_problem(post_order(network, lower), 409, "disclosure_order_replayed")
    assert_problem(post_order(network, upper), 422, "validation_error")
    assert len(log_entries(network)) == 1


# ------------------------------------------------------------------ the log


def test_the_log_records_every_order_and_verifies(network: Any) -> None:
    wallets = [identified_wallet(network), network.open_wallet("BKA1", wallet_class="III")]
    orders = [order_for(network, w.wallet_id) for w in (*wallets, wallets[0])]
    for order in orders:
        assert post_order(network, order).status_code == 200

    entries = log_entries(network)
    assert [e["seq"] for e in entries] == [1, 2, 3]
    for entry, order in zip(entries, orders, strict=True):
        assert entry["entry"]["order"] == order["order"]
        assert entry["entry"]["signature"] == order["signature"]
        assert entry["entry"]["operator"] == "BKA1"
    assert entries[0]["prev_hash"] == "0" * 64
    assert entries[1]["prev_hash"] == entries[0]["hash"]
    # The log shows what was ordered, not whom it identified.
    assert NAME not in str(entries) and VALID_ID_NUMBER not in str(entries)

    mine = verify_log_rows(entries)
    assert mine["ok"] is True and mine["length"] == 3 and mine["broken_at"] is None
    theirs = staff_verify(network)
    assert theirs["ok"] is True and theirs["length"] == 3
    assert theirs["head"] == mine["head"] == entries[-1]["hash"]
    assert regulator(network).request("GET", "/v1/admin/disclosure-log/verify")["ok"] is True

    # Who may read the log: the regulator and staff; not anonymous callers, not wallets,
    # not a key pretending to be the regulator.
    http = network.operator_http["BKA1"]
    assert http.get("/v1/regulator/disclosure-log").status_code == 401
    assert http.get("/v1/admin/disclosure-log/verify").status_code == 401
    assert network.staff("BKA1").request("GET", "/v1/regulator/disclosure-log")["entries"]
    with pytest.raises(RemoteError) as caught:
        wallets[0].client.request("GET", "/v1/regulator/disclosure-log")
    assert caught.value.status == 403
    with pytest.raises(RemoteError) as caught:
        wallets[0].client.request("GET", "/v1/admin/disclosure-log/verify")
    assert caught.value.status == 403
    fake = SignedClient(http, key=SigningKey.generate(), key_id="regulator")
    with pytest.raises(RemoteError) as caught:
        fake.request("GET", "/v1/regulator/disclosure-log")
    assert caught.value.status in (401, 403)


def _three_orders(net: Any) -> list[dict[str, Any]]:
    wallet = net.open_wallet("BKA1", wallet_class="III")  # its own person each time
    for _ in range(3):
        assert post_order(net, order_for(net, wallet.wallet_id)).status_code == 200
    return log_entries(net)


def _behind_the_database(net: Any, statement: str) -> None:
    """Run `statement` as the database superuser with triggers off (replica mode)."""
    with net.state("BKA1").engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(statement))


def test_an_edited_log_entry_is_detected(network: Any) -> None:
    before = _three_orders(network)
    assert verify_log_rows(before)["ok"] is True
    _behind_the_database(
        network,
        "UPDATE disclosure_log SET entry = jsonb_set(entry, '{order,requester}', "
        "'\"nobody in particular\"') WHERE seq = 2",
    )
    entries = log_entries(network)
    assert entries[1]["entry"]["order"]["requester"] == "nobody in particular"
    mine = verify_log_rows(entries)
    assert (mine["ok"], mine["broken_at"]) == (False, 2)
    theirs = staff_verify(network)
    assert (theirs["ok"], theirs["broken_at"]) == (False, 2)


def test_a_deleted_log_entry_is_detected(network: Any) -> None:
    _three_orders(network)
    _behind_the_database(network, "DELETE FROM disclosure_log WHERE seq = 2")
    entries = log_entries(network)
    assert [e["seq"] for e in entries] == [1, 3]
    mine = verify_log_rows(entries)
    theirs = staff_verify(network)
    assert mine["ok"] is False and theirs["ok"] is False
    assert mine["broken_at"] == theirs["broken_at"] == 3  # the first entry that no longer fits


def test_the_database_refuses_to_change_the_log(network: Any) -> None:
    before = _three_orders(network)
    engine = network.state("BKA1").engine
    for statement in (
        "UPDATE disclosure_log SET entry = '{}'::jsonb WHERE seq = 2",
        "UPDATE disclosure_log SET hash = 'x' WHERE seq = 3",
        "DELETE FROM disclosure_log WHERE seq = 2",
        "DELETE FROM disclosure_log",
    ):
        with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
            conn.execute(text(statement))
        assert "immutable" in str(caught.value)
    assert log_entries(network) == before
    assert staff_verify(network)["ok"] is True
    # Appending still works after the refused attempts, and extends the same chain.
    wallet = identified_wallet(network)
    assert post_order(network, order_for(network, wallet.wallet_id)).json()["log"]["seq"] == 4
    assert verify_log_rows(log_entries(network))["ok"] is True
