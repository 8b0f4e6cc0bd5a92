"""The central bank's list of revoked offline devices: who may revoke, idempotency, the
signed list, its version, and bad input as problem+json."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cbdc.clock import iso
from cbdc.db import transaction
from cbdc.http import RemoteError, SignedClient
from cbdc.tokens import verify_document
from central_bank.certification import revocations
from central_bank.certification import service as certification
from tests.offline_revocations.helpers import (
    PATH,
    at_central_bank,
    device_id,
    post_raw,
    revocation_list,
    revoke,
)

MOMENT = datetime(2031, 5, 17, 9, 30, tzinfo=UTC)  # far from the wall clock


def test_an_operator_revokes_its_device_and_every_caller_gets_the_signed_list(
    network: Any,
) -> None:
    device = device_id("BKA1")
    response = revoke(network, "BKA1", device, serial="serial-1", reason="counter_reuse")
    assert response.status_code == 201, response.text
    entry = response.json()
    assert entry["device"] == device and entry["operator"] == "BKA1"
    assert (entry["serial"], entry["reason"], entry["version"]) == ("serial-1", "counter_reuse", 1)
    assert entry["created"] is True

    # Another operator, the admin and the regulator all read the same list.
    signed = revocation_list(network, "BKB1")
    assert verify_document(network.cb_key.public_key, signed)
    document = signed["document"]
    assert document["type"] == "offline-revocation-list"
    assert document["version"] == 1
    assert document["revoked"] == [
        {
            "device": device,
            "serial": "serial-1",
            "operator": "BKA1",
            "reason": "counter_reuse",
            "at": entry["at"],
        }
    ]
    admin_view = network.admin.request("GET", PATH)
    assert verify_document(network.cb_key.public_key, admin_view)
    assert admin_view["document"]["revoked"] == document["revoked"]
    regulator = SignedClient(
        network.cb,
        key=network.regulator.signing,
        key_id="regulator",
        server_public_key=network.cb_key.public_key,
    )
    assert regulator.request("GET", PATH)["document"]["version"] == 1

    # Another key's signature does not verify: a forged list is told apart.
    forged = {**signed, "document": {**document, "revoked": []}}
    assert not verify_document(network.cb_key.public_key, forged)


def test_the_list_and_its_entries_are_dated_by_the_central_banks_clock(network: Any) -> None:
    network.cb_app.state.cb.clock = lambda: MOMENT
    entry = revoke(network, "BKA1", device_id("BKA1")).json()
    assert entry["at"] == iso(MOMENT)
    assert revocation_list(network)["document"]["issued_at"] == iso(MOMENT)


def test_revoking_again_is_idempotent_per_device(network: Any) -> None:
    device = device_id("BKA1")
    first = revoke(network, "BKA1", device, reason="overspend").json()
    again = revoke(network, "BKA1", device, reason="counter_reuse")
    assert again.status_code == 200, again.text
    assert again.json() == {**first, "created": False}  # the first reason and time stay
    assert revocation_list(network)["document"]["version"] == 1

    # The same device under another serial is not the same revocation.
    conflict = revoke(network, "BKA1", device, serial="other")
    assert conflict.status_code == 409
    assert conflict.headers["content-type"].startswith("application/problem+json")
    assert conflict.json()["code"] == "offline_revocation_conflict"


def test_the_version_grows_with_every_new_device(network: Any) -> None:
    devices = [device_id("BKA1"), device_id("BKB1"), device_id("BKA1")]
    versions = []
    for n, device in enumerate(devices):
        code = device[:4]
        versions.append(revoke(network, code, device, serial=f"s{n}").json()["version"])
        assert revocation_list(network)["document"]["version"] == n + 1
    assert versions == [1, 2, 3]
    listed = revocation_list(network)["document"]["revoked"]
    assert [e["device"] for e in listed] == devices
    assert [e["operator"] for e in listed] == ["BKA1", "BKB1", "BKA1"]


def test_an_operator_cannot_revoke_another_operators_device(network: Any) -> None:
    response = revoke(network, "BKA1", device_id("BKB1"))
    assert response.status_code == 403
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "offline_revocation_not_operator"
    assert {"type", "title", "status", "detail"} <= problem.keys()
    assert revocation_list(network)["document"]["version"] == 0


def test_only_operators_revoke_and_only_authenticated_callers_read(network: Any) -> None:
    with pytest.raises(RemoteError) as caught:
        network.admin.request(
            "POST", PATH, {"device": device_id("BKA1"), "serial": "s", "reason": "lost"}
        )
    assert (caught.value.status, caught.value.code) == (403, "forbidden")
    anonymous = network.cb.get(PATH)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert network.cb.post(PATH, json={"device": device_id("BKA1")}).status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"device": "BKA1D12", "serial": "s", "reason": "lost"}, "device"),
        ({"device": "bka1d0123456789abcde", "serial": "s", "reason": "lost"}, "device"),
        ({"device": "@DEVICE", "serial": "s", "reason": "lost"}, "device"),
        ({"serial": "s", "reason": "lost"}, "device"),
        ({"device": "BKA1D0123456789ABCDE", "serial": "", "reason": "lost"}, "serial"),
        ({"device": "BKA1D0123456789ABCDE", "serial": "a b", "reason": "lost"}, "serial"),
        ({"device": "BKA1D0123456789ABCDE", "serial": 7, "reason": "lost"}, "serial"),
        ({"device": "BKA1D0123456789ABCDE", "serial": "s", "reason": "Lost it!"}, "reason"),
        ({"device": "BKA1D0123456789ABCDE", "serial": "s", "reason": "x" * 65}, "reason"),
        ({"device": "BKA1D0123456789ABCDE", "serial": "s", "reason": "lost", "x": 1}, "x"),
    ],
)
def test_bad_input_is_problem_json(network: Any, body: dict[str, Any], field: str) -> None:
    response = post_raw(network, "BKA1", body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert field in problem["detail"]


def test_not_json_is_problem_json(network: Any) -> None:
    response = post_raw(network, "BKA1", ["not", "an", "object"])
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("application/problem+json")


def test_revocations_are_append_only_and_numbered_in_the_database(network: Any) -> None:
    device = device_id("BKA1")
    assert revoke(network, "BKA1", device).status_code == 201
    engine = network.cb_app.state.cb.engine
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("DELETE FROM offline_revocations"))
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text("UPDATE offline_revocations SET reason = 'lost'"))
    # A version that is not the next one is refused by the database itself.
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO offline_revocations "
                "(device, serial, operator_id, reason, revoked_at, version) "
                "SELECT :d, 's', id, 'lost', now(), 5 FROM operators WHERE code = 'BKA1'"
            ),
            {"d": device_id("BKA1")},
        )
    assert revocation_list(network)["document"]["version"] == 1


def test_the_endpoints_are_in_the_openapi_docs(network: Any) -> None:
    spec = network.cb.get("/openapi.json").json()
    operations = spec["paths"][PATH]
    assert operations["post"]["tags"] == ["certification"]
    assert "RevokeDevice" in str(operations["post"]["requestBody"])
    assert "SignedRevocationList" in str(operations["get"]["responses"]["200"])
    assert at_central_bank(network, "BKA1") is not None


def test_concurrent_revocations_get_consecutive_versions(network: Any) -> None:
    """Revocations arriving at once each take the next version: 1..n, none twice, no gap."""
    cb = network.cb_app.state.cb
    devices = [device_id("BKA1") for _ in range(8)] + [device_id("BKB1") for _ in range(8)]
    start = threading.Barrier(len(devices))

    def one(device: str) -> int:
        start.wait()
        return transaction(
            cb.factory,
            lambda s: revocations.revoke(
                s,
                operator=certification.require_operator(s, device[:4]),
                device=device,
                serial="s",
                reason="overspend",
                now=cb.clock(),
            ),
        ).version

    with ThreadPoolExecutor(len(devices)) as pool:
        versions = list(pool.map(one, devices))
    assert sorted(versions) == list(range(1, len(devices) + 1))
    listed = revocation_list(network)["document"]
    assert listed["version"] == len(devices)
    assert {e["device"] for e in listed["revoked"]} == set(devices)
