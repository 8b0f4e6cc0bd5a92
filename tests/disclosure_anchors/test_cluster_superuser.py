"""A superuser of the shared cluster (review 2): cutting the log and its anchor, deleting the
anchor link, editing anchors at the central bank; the signed chain and regulator heads show it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from cbdc.crypto import SigningKey
from cbdc.disclosure_log import (
    anchor_link_entry,
    verify_anchor_chain,
)
from cbdc.hashchain import GENESIS, link_hash
from regulator.client import load_anchors, send_disclosure
from tests.disclosure_anchors.helpers import (
    anchors,
    audit,
    disclose,
    failed_checks,
    operator_verify,
    regulator_check,
    rewrite_log,
)
from tests.test_compliance_disclosure import identified_wallet, log_entries, order_for, post_order


def disclose_as_regulator(net: Any, key_dir: Path, wallet_id: str) -> dict[str, Any]:
    """What `cbdc regulator disclose` does: send the order, record the head it gets back."""
    released, problem = send_disclosure(
        net.operator_http[wallet_id[:4]],
        wallet_id[:4],
        order_for(net, wallet_id),
        keys=net.regulator,
        key_dir=key_dir,
    )
    assert problem is None, problem
    return released


# ------------------------------------------------- a superuser of the shared cluster (review 2)


def as_cluster_superuser(engine: Engine, *statements: str) -> None:
    """The reviewer's recipe on the central bank's database: a superuser switches the
    append-only triggers off (`DISABLE TRIGGER USER`), which replica mode alone does not."""
    with engine.begin() as conn:
        for table in ("disclosure_anchors", "disclosure_anchor_links"):
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER USER"))
        for statement in statements:
            conn.execute(text(statement))
        for table in ("disclosure_anchors", "disclosure_anchor_links"):
            for trigger in ("append_only", "no_truncate"):
                conn.execute(
                    text(f"ALTER TABLE {table} ENABLE ALWAYS TRIGGER trg_{table}_{trigger}")
                )


BKA1_ID = "(SELECT id FROM operators WHERE code = 'BKA1')"


def test_a_disclosure_through_the_regulator_records_the_head_it_gets_back(
    network: Any, superuser: Callable[[str], Engine], tmp_path: Path
) -> None:
    wallet = identified_wallet(network).wallet_id
    first = disclose_as_regulator(network, tmp_path, wallet)
    assert first["log"]["prev_hash"] == GENESIS
    assert load_anchors(tmp_path) == {"BKA1": (1, first["log"]["hash"])}
    second = disclose_as_regulator(network, tmp_path, wallet)
    assert load_anchors(tmp_path)["BKA1"] == (2, second["log"]["hash"])
    # An order sent by other means (entry #3) does not stop the next one from being recorded:
    # the log is fetched and must run from the known head to the new one.
    assert post_order(network, order_for(network, wallet)).status_code == 200
    fourth = disclose_as_regulator(network, tmp_path, wallet)
    assert load_anchors(tmp_path)["BKA1"] == (4, fourth["log"]["hash"])

    # The last entry cut off (superuser, hashes consistent): the next order gets #4 again,
    # which does not extend the known #4; that is an error, and the known head is kept.
    rewrite_log(superuser("BKA1"), lambda seq, entry: None if seq == 4 else entry)
    released, problem = send_disclosure(
        network.operator_http["BKA1"],
        "BKA1",
        order_for(network, wallet),
        keys=network.regulator,
        key_dir=tmp_path,
    )
    assert released["log"]["seq"] == 4
    assert problem is not None and "removed" in problem
    assert load_anchors(tmp_path)["BKA1"] == (4, fourth["log"]["hash"])

    # A rewritten log under a longer head: the fetched log does not run from the known head.
    rewrite_log(superuser("BKA1"), lambda seq, entry: {**entry, "at": "2020-01-01T00:00:00Z"})
    released, problem = send_disclosure(
        network.operator_http["BKA1"],
        "BKA1",
        order_for(network, wallet),
        keys=network.regulator,
        key_dir=tmp_path,
    )
    assert released["log"]["seq"] == 5
    assert problem is not None and "rewritten" in problem
    assert load_anchors(tmp_path)["BKA1"] == (4, fourth["log"]["hash"])


def test_a_cluster_superuser_cutting_the_log_and_its_anchor_is_reported(
    network: Any, superuser: Callable[[str], Engine], tmp_path: Path
) -> None:
    """The reviewer's recipe (/tmp/review/t5_db.py truncate_and_drop_anchor): triggers off on
    the central bank's anchors, the operator's last log entry and its anchor deleted. Both
    `cbdc audit` and `cbdc regulator log` passed."""
    wallet = identified_wallet(network).wallet_id
    for _ in range(3):
        disclose_as_regulator(network, tmp_path, wallet)
    heads = load_anchors(tmp_path)
    assert audit(network, heads)["ok"]

    rewrite_log(superuser("BKA1"), lambda seq, entry: None if seq == 3 else entry)
    as_cluster_superuser(
        superuser("central_bank"),
        f"DELETE FROM disclosure_anchors WHERE seq = 3 AND operator_id = {BKA1_ID}",
    )
    assert [a["seq"] for a in anchors(network, "BKA1")["anchors"]] == [1, 2]
    assert operator_verify(network)["ok"] is True  # a shorter chain, its anchors all present

    # With the regulator's heads: the head #3 it got back from its own order is gone.
    report = audit(network, heads)
    assert not report["ok"]
    problems = report["disclosure_logs"]["BKA1"]["problems"]
    assert {"seq": 3, "reason": "truncated"} in problems
    assert {"seq": 3, "reason": "anchors_behind"} in problems
    assert any(
        name.startswith("BKA1: disclosure log") and "regulator's recorded head (#3)" in name
        for name in failed_checks(report)
    )
    # Without them: the central bank's signed anchor chain still reaches link 3.
    alone = audit(network)
    assert not alone["ok"]
    assert alone["disclosure_logs"]["BKA1"]["anchor_chain"] == [
        {"seq": 3, "reason": "anchor_chain_cut"}
    ]
    assert any("NOT compared" in c["name"] and c["ok"] for c in alone["checks"])
    assert report["disclosure_logs"]["BKB1"]["ok"]

    mine = regulator_check(network, tmp_path)
    assert not mine["ok"]
    assert {"seq": 3, "reason": "truncated"} in mine["problems"]


def test_a_cluster_superuser_who_also_deletes_the_anchor_link_is_caught_by_the_regulator_heads(
    network: Any, superuser: Callable[[str], Engine], tmp_path: Path
) -> None:
    wallet = identified_wallet(network).wallet_id
    for _ in range(3):
        disclose_as_regulator(network, tmp_path, wallet)
    heads = load_anchors(tmp_path)
    rewrite_log(superuser("BKA1"), lambda seq, entry: None if seq == 3 else entry)
    as_cluster_superuser(
        superuser("central_bank"),
        f"DELETE FROM disclosure_anchors WHERE seq = 3 AND operator_id = {BKA1_ID}",
        f"DELETE FROM disclosure_anchor_links WHERE seq = 3 AND operator_id = {BKA1_ID}",
    )
    # The chain is shorter but whole: only the regulator's own record shows the cut.
    assert audit(network)["disclosure_logs"]["BKA1"]["anchor_chain"] == []
    report = audit(network, heads)
    assert not report["ok"]
    assert report["disclosure_logs"]["BKA1"]["problems"] == [
        {"seq": 3, "reason": "anchors_behind"},
        {"seq": 3, "reason": "truncated"},
    ]


def test_an_anchor_edited_at_the_central_bank_breaks_its_signed_chain(
    network: Any, superuser: Callable[[str], Engine]
) -> None:
    """A superuser rewrites the log (#2, outside the order signature) and moves the anchors to
    the new hashes: the anchors now match the log, but not the central bank's chain; relinking
    the chain needs the central bank's key."""
    disclose(network, 3)
    rewrite_log(
        superuser("BKA1"),
        lambda seq, entry: {**entry, "at": "2020-01-01T00:00:00Z"} if seq == 2 else entry,
    )
    rows = {r["seq"]: r["hash"] for r in log_entries(network)}
    engine = superuser("central_bank")
    as_cluster_superuser(
        engine,
        *(
            f"UPDATE disclosure_anchors SET hash = '{rows[seq]}' "
            f"WHERE seq = {seq} AND operator_id = {BKA1_ID}"
            for seq in (2, 3)
        ),
    )
    report = audit(network)
    assert not report["ok"]
    assert report["disclosure_logs"]["BKA1"]["problems"] == []  # log and anchors agree
    assert report["disclosure_logs"]["BKA1"]["anchor_chain"] == [
        {"seq": 2, "reason": "anchor_chain"},
        {"seq": 3, "reason": "anchor_chain"},
    ]
    assert any(
        name.startswith("BKA1: disclosure anchors chained") and "#2 anchor_chain" in name
        for name in failed_checks(report)
    )

    # The links recomputed too: the hashes fit, the central bank's signatures do not.
    with engine.begin() as conn:
        links = conn.execute(
            text(
                "SELECT l.n, l.seq, a.hash, a.signature FROM disclosure_anchor_links l "
                "JOIN disclosure_anchors a USING (operator_id, seq) "
                f"WHERE l.operator_id = {BKA1_ID} ORDER BY l.n"
            )
        ).all()
    previous, statements = GENESIS, []
    for n, seq, head, signature in links:
        link = link_hash(previous, anchor_link_entry("BKA1", n, seq, head, signature))
        statements.append(
            f"UPDATE disclosure_anchor_links SET prev_link = '{previous}', link = '{link}' "
            f"WHERE n = {n} AND operator_id = {BKA1_ID}"
        )
        previous = link
    as_cluster_superuser(engine, *statements)
    chain = audit(network)["disclosure_logs"]["BKA1"]["anchor_chain"]
    assert {"seq": 2, "reason": "anchor_chain_signature"} in chain
    assert {"seq": 3, "reason": "anchor_chain_signature"} in chain
    assert {"seq": 4, "reason": "anchor_chain_cut"} in chain  # the signed head is not this


def test_every_anchor_is_a_link_of_the_central_banks_signed_chain(network: Any) -> None:
    disclose(network, 3)
    disclose(network, 1, "BKB1")
    registry = anchors(network)
    for code, count in (("BKA1", 3), ("BKB1", 1)):
        listed = [a for a in registry["anchors"] if a["operator"] == code]
        assert [a["link"]["n"] for a in listed] == list(range(1, count + 1))
        assert registry["anchor_chains"][code]["n"] == count
        assert (
            verify_anchor_chain(
                listed,
                central_bank_key=network.cb_key.public_key,
                operator=code,
                chain_head=registry["anchor_chains"][code],
            )
            == []
        )
        # Not under another key.
        assert verify_anchor_chain(
            listed, central_bank_key=SigningKey.generate().public_key, operator=code
        )
    report = audit(network)
    assert report["ok"], failed_checks(report)
