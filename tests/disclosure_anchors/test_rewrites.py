"""The attack: a superuser in the operator's database rewrites the disclosure log and
recomputes the hashes; the signatures and the anchors show it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from cbdc.crypto import SigningKey
from regulator.client import verify_log_rows
from tests.disclosure_anchors.helpers import (
    audit,
    disclose,
    failed_checks,
    operator_verify,
    regulator_check,
    rewrite_log,
)
from tests.test_compliance_disclosure import log_entries, order_for

# ------------------------------------------------------------------ the attack


def test_a_superuser_rewrite_with_recomputed_hashes_is_reported(
    network: Any, superuser: Callable[[str], Engine], tmp_path: Path
) -> None:
    before = disclose(network, 3)
    assert regulator_check(network, tmp_path)["ok"]  # the regulator saw the log once
    assert audit(network)["ok"]

    def new_basis(seq: int, entry: dict[str, Any]) -> dict[str, Any]:
        if seq == 2:
            entry["order"]["legal_basis"] = "routine curiosity"
        return entry

    rewrite_log(superuser("BKA1"), new_basis)
    after = log_entries(network)
    assert after[1]["entry"]["order"]["legal_basis"] == "routine curiosity"
    assert after[2]["hash"] != before[2]["hash"]
    assert verify_log_rows(after)["ok"] is True  # the chain alone is fooled

    theirs = operator_verify(network)
    assert (theirs["ok"], theirs["broken_at"]) == (False, 2)
    assert {"seq": 2, "reason": "order_signature"} in theirs["problems"]

    report = audit(network)
    assert not report["ok"]
    failed = failed_checks(report)
    assert any(name.startswith("BKA1: disclosure log") and "#2" in name for name in failed)
    log = report["disclosure_logs"]["BKA1"]
    assert log["broken_at"] == 2
    assert {"seq": 2, "reason": "anchor_mismatch"} in log["problems"]
    assert {"seq": 3, "reason": "anchor_mismatch"} in log["problems"]
    assert report["disclosure_logs"]["BKB1"]["ok"]  # the other operator is not blamed

    mine = regulator_check(network, tmp_path)
    assert (mine["ok"], mine["broken_at"]) == (False, 2)
    assert {"seq": 2, "reason": "order_signature"} in mine["problems"]
    assert {"seq": 2, "reason": "anchor_mismatch"} in mine["problems"]
    assert {"seq": 3, "reason": "truncated"} in mine["problems"]  # its own head changed too


def test_a_rewrite_of_what_the_order_signature_does_not_cover_shows_against_the_anchors(
    network: Any, superuser: Callable[[str], Engine], tmp_path: Path
) -> None:
    disclose(network, 3)

    def backdate(seq: int, entry: dict[str, Any]) -> dict[str, Any]:
        if seq == 2:
            entry["at"] = "2020-01-01T00:00:00+00:00"
        return entry

    rewrite_log(superuser("BKA1"), backdate)
    # Chain and signatures hold: only the anchors outside the database can tell.
    assert operator_verify(network)["ok"] is True
    report = audit(network)
    assert not report["ok"]
    assert report["disclosure_logs"]["BKA1"]["problems"][0] == {
        "seq": 2,
        "reason": "anchor_mismatch",
    }
    assert any("BKA1" in name and "#2 anchor_mismatch" in name for name in failed_checks(report))
    mine = regulator_check(network, tmp_path)  # a regulator that never looked before
    assert (mine["ok"], mine["broken_at"]) == (False, 2)
    assert not (tmp_path / "log_heads.json").exists()  # a broken log is not taken as an anchor


def test_cutting_entries_off_the_end_shows_against_the_anchors(
    network: Any, superuser: Callable[[str], Engine], tmp_path: Path
) -> None:
    disclose(network, 3)
    rewrite_log(superuser("BKA1"), lambda seq, entry: None if seq == 3 else entry)
    assert [e["seq"] for e in log_entries(network)] == [1, 2]
    assert operator_verify(network)["ok"] is True  # a shorter chain is still a chain
    report = audit(network)
    assert report["disclosure_logs"]["BKA1"]["problems"] == [{"seq": 3, "reason": "anchor_missing"}]
    assert not report["ok"]
    mine = regulator_check(network, tmp_path)
    assert mine["problems"] == [{"seq": 3, "reason": "anchor_missing"}]


def test_an_entry_whose_regulator_signature_no_longer_verifies_is_reported(
    network: Any, superuser: Callable[[str], Engine], tmp_path: Path
) -> None:
    entries = disclose(network, 3)
    forger = SigningKey.generate()

    def forge(seq: int, entry: dict[str, Any]) -> dict[str, Any]:
        if seq == 2:  # the order re-signed by a key that is not the regulator's
            entry["order"]["requester"] = "somebody else"
            entry["signature"] = forger.sign_json(entry["order"])
        if seq == 3:  # a genuine signature, of another order
            entry["signature"] = entries[0]["entry"]["signature"]
        return entry

    rewrite_log(superuser("BKA1"), forge)
    theirs = operator_verify(network)
    assert theirs["broken_at"] == 2
    assert [p for p in theirs["problems"] if p["reason"] == "order_signature"] == [
        {"seq": 2, "reason": "order_signature"},
        {"seq": 3, "reason": "order_signature"},
    ]
    staff_audit = network.staff("BKA1").request("GET", "/v1/admin/audit")
    assert not staff_audit["ok"]
    report = audit(network)
    assert not report["ok"]
    assert report["disclosure_logs"]["BKA1"]["broken_at"] == 2
    mine = regulator_check(network, tmp_path)
    assert {"seq": 3, "reason": "order_signature"} in mine["problems"]


def test_a_log_entry_with_an_order_for_another_operator_or_repeated_is_reported(
    network: Any, superuser: Callable[[str], Engine]
) -> None:
    entries = disclose(network, 3)
    remote = network.open_wallet("BKB1")
    elsewhere = order_for(network, remote.wallet_id)  # genuinely signed, for BKB1's wallet

    def swap(seq: int, entry: dict[str, Any]) -> dict[str, Any]:
        if seq == 2:  # the first order, logged twice
            return dict(entries[0]["entry"])
        if seq == 3:
            entry.update(order=elsewhere["order"], signature=elsewhere["signature"])
        return entry

    rewrite_log(superuser("BKA1"), swap)
    theirs = operator_verify(network)
    assert theirs["problems"] == [
        {"seq": 2, "reason": "order_repeated"},
        {"seq": 3, "reason": "order_for_another_operator"},
    ]
