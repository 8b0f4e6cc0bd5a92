"""Every disclosure anchors the log's new head at the central bank: once, idempotently,
append-only, even while the central bank is down."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from cbdc.crypto import SigningKey
from cbdc.disclosure_log import (
    anchor_signed,
    sign_anchor,
)
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from tests.clocks import operator_clock
from tests.disclosure_anchors.helpers import (
    anchors,
    audit,
    disclose,
    failed_checks,
    regulator_at_central_bank,
)

# ------------------------------------------------------------------ anchoring


def test_every_disclosure_anchors_the_new_head_at_the_central_bank(network: Any) -> None:
    entries = disclose(network, 3)
    disclose(network, 1, "BKB1")
    registry = anchors(network, "BKA1")
    assert [(a["seq"], a["hash"]) for a in registry["anchors"]] == [
        (e["seq"], e["hash"]) for e in entries
    ]
    assert registry["conflicts"] == []
    for a in registry["anchors"]:
        assert a["operator"] == "BKA1"
        assert anchor_signed(
            network.operator_keys["BKA1"].public_key, "BKA1", a["seq"], a["hash"], a["signature"]
        )
    # Every operator anchors its own log; the listing covers all of them.
    assert {a["operator"] for a in anchors(network)["anchors"]} == {"BKA1", "BKB1"}
    # Registered inline with the disclosure: nothing is left in the outbox.
    with network.state("BKA1").engine.begin() as conn:
        jobs = conn.execute(
            text("SELECT reference, status FROM outbox WHERE kind = 'disclosure_anchor'")
        ).all()
    assert sorted(jobs) == [(f"disclosure-anchor:{n}", "done") for n in (1, 2, 3)]

    # Who reads the anchors: the admin and the regulator; not operators.
    assert regulator_at_central_bank(network).request("GET", "/v1/disclosure-anchors")["anchors"]
    operator = SignedClient(
        network.cb,
        key=network.operator_keys["BKA1"],
        key_id="operator:BKA1",
        server_public_key=network.cb_key.public_key,
    )
    with pytest.raises(RemoteError) as caught:
        operator.request("GET", "/v1/disclosure-anchors")
    assert caught.value.status == 403

    report = audit(network)
    assert report["ok"], failed_checks(report)
    assert report["disclosure_logs"]["BKA1"]["anchored"] == 3


def test_an_anchor_is_registered_once_even_if_the_central_bank_is_down(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    central_bank = network.state("BKA1").ctx.central_bank

    def unreachable(**_: Any) -> dict[str, Any]:
        raise RemoteUnavailable("central bank down")

    monkeypatch.setattr(central_bank, "register_disclosure_anchor", unreachable)
    entries = disclose(network, 2)  # disclosures go on while the central bank is away
    assert anchors(network, "BKA1")["anchors"] == []
    report = audit(network)
    assert not report["ok"]  # the audit waits for the outbox: anchors still owed

    monkeypatch.undo()
    operator_clock(network).advance(5)  # the retry's backoff (at most 5 s) has passed
    network.run_jobs()
    network.run_jobs()  # running again sends nothing twice
    registry = anchors(network, "BKA1")
    assert [(a["seq"], a["hash"]) for a in registry["anchors"]] == [
        (e["seq"], e["hash"]) for e in entries
    ]
    assert audit(network)["ok"]


def test_anchors_are_idempotent_and_a_different_head_is_refused_and_flagged(
    network: Any,
) -> None:
    entries = disclose(network, 2)
    key = network.operator_keys["BKA1"]
    client = network.state("BKA1").ctx.central_bank
    head = entries[1]["hash"]
    # The same anchor again (an outbox retry) is fine and stores nothing new.
    again = client.register_disclosure_anchor(
        seq=2, head=head, signature=sign_anchor(key, "BKA1", 2, head)
    )
    assert again == {"operator": "BKA1", "seq": 2, "hash": head, "anchored": True}
    # Another head for an anchored seq: refused, and kept as evidence for the audit.
    other = "ab" * 32
    with pytest.raises(RemoteError) as caught:
        client.register_disclosure_anchor(
            seq=2, head=other, signature=sign_anchor(key, "BKA1", 2, other)
        )
    assert (caught.value.status, caught.value.code) == (409, "disclosure_anchor_conflict")
    registry = anchors(network, "BKA1")
    assert [(a["seq"], a["hash"]) for a in registry["anchors"]] == [
        (1, entries[0]["hash"]),
        (2, head),
    ]
    assert [(c["seq"], c["hash"], c["anchored_hash"]) for c in registry["conflicts"]] == [
        (2, other, head)
    ]
    # An anchor not signed by the operator's key, or signed for another seq: refused.
    for signature in (
        sign_anchor(SigningKey.generate(), "BKA1", 3, other),
        sign_anchor(key, "BKA1", 4, other),
        sign_anchor(key, "BKB1", 3, other),
    ):
        with pytest.raises(RemoteError) as caught:
            client.register_disclosure_anchor(seq=3, head=other, signature=signature)
        assert (caught.value.status, caught.value.code) == (422, "disclosure_anchor_invalid")
    for bad in ({"seq": 0, "hash": head}, {"seq": 3, "hash": "xyz"}, {"seq": "3", "hash": head}):
        with pytest.raises(RemoteError) as caught:
            client.client.request(
                "POST",
                "/v1/registration/disclosure-anchors",
                {**bad, "signature": sign_anchor(key, "BKA1", 3, head)},
            )
        assert caught.value.status == 422
    assert len(anchors(network, "BKA1")["anchors"]) == 2
    # The audit reports the conflict, naming the operator and the seq.
    report = audit(network)
    assert not report["ok"]
    assert any("BKA1" in name and "#2" in name for name in failed_checks(report))


def test_the_central_bank_keeps_anchors_append_only_even_in_replica_mode(
    network: Any, superuser: Callable[[str], Engine]
) -> None:
    disclose(network, 1)
    engine = superuser("central_bank")
    for statement in (
        "UPDATE disclosure_anchors SET hash = repeat('0', 64)",
        "DELETE FROM disclosure_anchors",
        "TRUNCATE disclosure_anchors",
        "TRUNCATE disclosure_anchor_conflicts",  # (empty: a row trigger would not fire)
    ):
        with pytest.raises(DBAPIError) as caught, engine.begin() as conn:
            conn.execute(text("SET LOCAL session_replication_role = replica"))
            conn.execute(text(statement))
        assert "immutable" in str(caught.value)
    assert len(anchors(network)["anchors"]) == 1


def test_params_that_are_all_none_add_no_bare_question_mark(network: Any) -> None:
    """SignedClient signed "/v1/disclosure-anchors?" for params of only None values while the
    server saw no query at all, so the request did not verify (401)."""
    listing = network.admin.request("GET", "/v1/disclosure-anchors", params={"operator": None})
    assert isinstance(listing, dict)
