"""Issue #12 finding 5: a disclosure log a database superuser cannot quietly rewrite.

The attack: as a superuser in the operator's database, `SET session_replication_role = replica`
(the append-only triggers stop firing), rewrite an entry and recompute every hash after it, so
the hash chain verifies again. What catches it: the regulator's signature on every logged order
(checked by the operator's verify endpoint, `cbdc audit` and `cbdc regulator log`), and the heads
each operator anchors at the central bank after every disclosure (compared by the audit and the
regulator), besides the regulator's own anchor file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError

from cbdc.audit import audit_network
from cbdc.crypto import SigningKey
from cbdc.disclosure_log import (
    anchor_link_entry,
    anchor_signed,
    sign_anchor,
    verify_anchor_chain,
)
from cbdc.hashchain import GENESIS, link_hash
from cbdc.http import RemoteError, RemoteUnavailable, SignedClient
from cbdc.regulator import check_operator_log, load_anchors, send_disclosure, verify_log_rows
from tests.test_compliance_disclosure import identified_wallet, log_entries, order_for, post_order

CODES = ("BKA1", "BKB1")


@pytest.fixture
def superuser(pg_url: str, network: Any) -> Iterator[Callable[[str], Engine]]:
    """Engines on the network's databases as the server's superuser (not the services' role):
    `superuser("BKA1")`, `superuser("central_bank")`."""
    engines: dict[str, Engine] = {}

    def engine(which: str) -> Engine:
        service_engine = (
            network.cb_app.state.cb.engine
            if which == "central_bank"
            else network.state(which).engine
        )
        if which not in engines:
            url = make_url(pg_url).set(database=service_engine.url.database)
            engines[which] = create_engine(url)
        return engines[which]

    yield engine
    for e in engines.values():
        e.dispose()


def regulator_at_central_bank(net: Any) -> SignedClient:
    return SignedClient(
        net.cb,
        key=net.regulator.signing,
        key_id="regulator",
        server_public_key=net.cb_key.public_key,
    )


def anchors(net: Any, code: str | None = None) -> dict[str, Any]:
    params = {"operator": code} if code else None
    return dict(net.admin.request("GET", "/v1/disclosure-anchors", params=params))


def disclose(net: Any, times: int, code: str = "BKA1") -> list[dict[str, Any]]:
    wallet = identified_wallet(net) if code == "BKA1" else net.open_wallet(code, wallet_class="III")
    for _ in range(times):
        response = post_order(net, order_for(net, wallet.wallet_id), code)
        assert response.status_code == 200, response.text
    return log_entries(net, code)


def audit(net: Any, heads: dict[str, tuple[int, str]] | None = None) -> dict[str, Any]:
    """`cbdc audit`; `heads`: the regulator's head file, where the audit runs beside it."""
    return audit_network(
        net.admin,
        {code: net.staff(code) for code in CODES},
        regulator_key=net.regulator.signing.public_key,
        central_bank_key=net.cb_key.public_key,
        regulator_heads=heads,
        regulator_heads_at="the test's regulator directory",
        drain_timeout=5,
    )


def failed_checks(report: dict[str, Any]) -> list[str]:
    return [c["name"] for c in report["checks"] if not c["ok"]]


def regulator_check(net: Any, key_dir: Path, code: str = "BKA1") -> dict[str, Any]:
    """What `cbdc regulator log` does for one operator."""
    central = regulator_at_central_bank(net).request("GET", "/v1/disclosure-anchors")
    return check_operator_log(
        net.regulator,
        key_dir,
        code=code,
        rows=log_entries(net, code),
        central=central,
        central_bank_key=net.cb_key.public_key,
    )


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


def operator_verify(net: Any, code: str = "BKA1") -> dict[str, Any]:
    return dict(net.staff(code).request("GET", "/v1/admin/disclosure-log/verify"))


def rewrite_log(
    engine: Engine, edit: Callable[[int, dict[str, Any]], dict[str, Any] | None]
) -> None:
    """The attack: triggers off (replica mode), `edit` each entry (None: drop it), and every
    hash recomputed so the chain links again."""
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        rows = conn.execute(text("SELECT seq, entry FROM disclosure_log ORDER BY seq")).all()
        previous = GENESIS
        for seq, entry in rows:
            changed = edit(int(seq), entry)
            if changed is None:
                conn.execute(text("DELETE FROM disclosure_log WHERE seq = :s"), {"s": seq})
                continue
            digest = link_hash(previous, changed)
            conn.execute(
                text(
                    "UPDATE disclosure_log SET prev_hash = :p, entry = CAST(:e AS jsonb), "
                    "hash = :h WHERE seq = :s"
                ),
                {"p": previous, "e": json.dumps(changed), "h": digest, "s": seq},
            )
            previous = digest


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
    with network.state("BKA1").engine.begin() as conn:  # the retry's backoff has passed
        conn.execute(text("UPDATE outbox SET next_attempt_at = now() WHERE status = 'pending'"))
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


def test_params_that_are_all_none_add_no_bare_question_mark(network: Any) -> None:
    """SignedClient signed "/v1/disclosure-anchors?" for params of only None values while the
    server saw no query at all, so the request did not verify (401)."""
    listing = network.admin.request("GET", "/v1/disclosure-anchors", params={"operator": None})
    assert isinstance(listing, dict)
