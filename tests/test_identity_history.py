"""Identity that can't be rewritten, kept over time, and bound to one holder (issue #12,
findings 1, 6 and the identity checks of 7).

* A holder may add evidence by self-service, never replace verified evidence; staff correct it
  at the counter; every escrow record a wallet had is kept (`identity_versions`, append-only)
  and a disclosure releases the identity in force at the order's `as_of`, or every version.
* Evidence is unique per operator through a keyed blind index: one wallet per ID number and
  class, one class IV wallet per phone (policy `[uniqueness]`), an account under one ID
  number, an ID number under one name; concurrent opens cannot exceed the limit.
* ID numbers, phones and bank accounts accept ASCII digits and whole-string matches only.
"""

from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from cbdc.clock import iso, utcnow
from cbdc.crypto import SigningKey
from cbdc.http import RemoteError
from cbdc.identity import (
    make_bank_account,
    make_resident_id,
    valid_bank_account,
    valid_phone,
    valid_resident_id,
)
from cbdc.policy import Uniqueness, WalletClass, load_policy, with_overrides
from operators.payments import bulk
from operators.wallets import identity_repository as irepo
from operators.wallets.identity import WalletsPerIdLimit
from operators.wallets.identity_history import backfill_index
from regulator.client import disclosure_order, open_escrow, open_escrow_versions
from tests.clocks import operator_clock
from tests.helpers import refused

NAME = "Zhao Min"
ID_A = make_resident_id("31010419850612123")
ID_B = make_resident_id("31010419850612456")
ACCOUNT_A = make_bank_account("622202100000123")
ACCOUNT_B = make_bank_account("622202100000456")
ARABIC = {ord(d): chr(0x0660 + int(d)) for d in "0123456789"}  # Arabic-Indic digits


def disclose(net: Any, wallet_id: str, *, as_of: str | None = None, code: str = "BKA1") -> Any:
    signed = disclosure_order(
        net.regulator,
        wallet_id=wallet_id,
        legal_basis="Art. 28 AML Law; case 2026-0977",
        requester="Financial Intelligence Unit",
        as_of=as_of,
    )
    return net.operator_http[code].post("/v1/regulator/disclosures", json=signed)


def log_length(net: Any, code: str = "BKA1") -> int:
    with net.state(code).engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM disclosure_log")).scalar_one())


def class_ii(net: Any, code: str = "BKA1", **evidence: Any) -> Any:
    person = {
        "display_name": NAME,
        "phone": "+8613911110001",
        "id_number": ID_A,
        "bank_account": ACCOUNT_A,
        **evidence,
    }
    return net.operator(code).open_wallet(wallet_class="II", **person)


def staff_change(net: Any, wallet_id: str, wallet_class: str, **customer: Any) -> Any:
    return net.staff("BKA1").request(
        "POST",
        f"/v1/wallets/{wallet_id}/class",
        {"wallet_class": wallet_class, "customer": customer},
    )


# ------------------------------------------------------------------ finding 1


def test_a_holder_cannot_rewrite_verified_identity_with_the_wallet_key(network: Any) -> None:
    """Reproduction: the wallet key posts a class change with another name, ID number, phone
    and bank account; before the fix the escrow was re-sealed with the invented identity."""
    wallet = class_ii(network)
    invented = {
        "display_name": "Somebody Else",
        "id_number": ID_B,
        "phone": "+8613999999999",
        "bank_account": ACCOUNT_B,
    }
    for field, value in invented.items():
        for target in ("II", "III"):
            refused(
                lambda f=field, v=value, t=target: wallet.change_class(t, **{f: v}),
                403,
                "identity_change_needs_staff",
            )
    # The same evidence again, spelt otherwise, is no change and is accepted (and, as the
    # class stays too, seals no new version).
    same = wallet.change_class("II", display_name="  zhao  MIN ", phone="13911110001")
    assert same.wallet_class == "II"

    released = disclose(network, wallet.wallet_id)
    assert released.status_code == 200, released.text
    body = released.json()
    assert body["released"] == "all-versions" and body["as_of"] is None
    records = open_escrow_versions(network.regulator, body)
    assert [r["version"] for r in records] == [1]
    for record in records:
        assert record["identity"]["display_name"] == NAME
        assert record["identity"]["id_number"] == ID_A
        assert record["identity"]["bank_account"] == ACCOUNT_A
        assert record["identity"]["phone"] == "+8613911110001"
    assert open_escrow(network.regulator, body)["identity"]["id_number"] == ID_A


def test_staff_correct_identity_and_a_disclosure_as_of_earlier_releases_the_old_one(
    network: Any,
) -> None:
    opened_before = iso(utcnow() - timedelta(seconds=1))
    clock = operator_clock(network)
    wallet = network.operator("BKA1").open_wallet(
        display_name="Wang Fang", phone="+8613911110002", id_number=ID_A, wallet_class="III"
    )
    clock.advance(0.01)
    between = iso(clock.now())
    clock.advance(0.01)
    staff_change(network, wallet.wallet_id, "III", display_name="Wang Fangfang", id_number=ID_B)

    at_open = disclose(network, wallet.wallet_id, as_of=between)
    assert at_open.status_code == 200, at_open.text
    body = at_open.json()
    assert body["released"] == "version-at-as-of" and body["as_of"] == between
    assert [v["version"] for v in body["versions"]] == [1]
    old = open_escrow(network.regulator, body)
    assert old["identity"]["display_name"] == "Wang Fang" and old["identity"]["id_number"] == ID_A
    assert old["version"] == 1 and old["changed_by"] == "self"

    everything = disclose(network, wallet.wallet_id).json()
    records = open_escrow_versions(network.regulator, everything)
    assert [(r["version"], r["changed_by"]) for r in records] == [(1, "self"), (2, "staff")]
    assert records[0]["valid_until"] == records[1]["valid_from"]
    assert records[1]["valid_until"] is None
    assert records[1]["identity"]["display_name"] == "Wang Fangfang"
    assert records[1]["identity"]["id_number"] == ID_B
    assert open_escrow(network.regulator, everything)["identity"]["id_number"] == ID_B
    # The log records which versions each order released, and when for.
    log = network.staff("BKA1").request("GET", "/v1/regulator/disclosure-log")["entries"]
    assert [(e["entry"]["identity_versions"], e["entry"]["as_of"]) for e in log] == [
        ([1], between),
        ([1, 2], None),
    ]

    # Before the wallet existed there is nothing to release: refused, and nothing logged.
    logged = log_length(network)
    early = disclose(network, wallet.wallet_id, as_of=opened_before)
    assert early.status_code == 422 and early.json()["code"] == "no_identity_at_time"
    bad = disclose(network, wallet.wallet_id, as_of="yesterday")
    assert bad.status_code == 422
    assert log_length(network) == logged


def test_the_database_keeps_every_identity_version(network: Any) -> None:
    wallet = network.operator("BKA1").open_wallet(
        display_name="Qian Li", phone="+8613911110003", id_number=ID_A, wallet_class="III"
    )
    wallet.change_class("II", bank_account=ACCOUNT_A)
    engine = network.state("BKA1").engine
    for statement in (
        "UPDATE identity_versions SET escrow = '{}'::jsonb",
        "DELETE FROM identity_versions",
        "TRUNCATE identity_versions",
        # a version out of order (skipping a number) is refused too
        "INSERT INTO identity_versions (wallet_id, version, customer_id, valid_from, "
        "wallet_class, evidence, changed_by, escrow) SELECT wallet_id, 9, customer_id, "
        "now(), 4, '{}', 'self', '{}'::jsonb FROM identity_versions LIMIT 1",
    ):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(statement))
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT version, wallet_class, changed_by FROM identity_versions "
                "WHERE wallet_id = :w ORDER BY version"
            ),
            {"w": wallet.wallet_id},
        ).all()
    assert [tuple(r) for r in rows] == [(1, 3, "self"), (2, 2, "self")]


def test_a_downgrade_keeps_the_higher_class_identity_for_the_regulator(network: Any) -> None:
    wallet = network.operator("BKA1").open_wallet(
        display_name=NAME, phone="+8613911110004", id_number=ID_A, wallet_class="III"
    )
    wallet.change_class("II", bank_account=ACCOUNT_A)
    down = wallet.change_class("IV")
    assert down.wallet_class == "IV" and down.evidence == ["phone"]
    # Verified evidence stays verified: the downgraded holder cannot swap it either.
    refused(lambda: wallet.change_class("III", id_number=ID_B), 403, "identity_change_needs_staff")

    records = open_escrow_versions(network.regulator, disclose(network, wallet.wallet_id).json())
    assert [r["wallet_class"] for r in records] == ["III", "II", "IV"]
    assert set(records[1]["evidence"]) == {"phone", "name", "id_number", "bank_account"}
    now_iv = records[2]
    assert now_iv["evidence"] == ["phone"]
    assert now_iv["identity"]["id_number"] == ID_A
    assert now_iv["identity"]["bank_account"] == ACCOUNT_A
    assert now_iv["identity"]["display_name"] == NAME
    # ...and the downgrade freed no evidence for anybody else.
    refused(
        lambda: class_ii(
            network, display_name="Other Holder", phone="+8613911110005", id_number=ID_B
        ),
        409,
        "evidence_of_other_holder",
    )


def test_a_self_service_upgrade_may_add_evidence_and_replace_an_unverified_name(
    network: Any,
) -> None:
    wallet = network.operator("BKA1").open_wallet(display_name="Nick", phone="+8613911110006")
    upgraded = wallet.change_class("III", display_name="Sun Wei", id_number=ID_A)
    assert set(upgraded.evidence) == {"phone", "name", "id_number"}
    refused(
        lambda: wallet.change_class("III", display_name="Nick"), 403, "identity_change_needs_staff"
    )
    records = open_escrow_versions(network.regulator, disclose(network, wallet.wallet_id).json())
    assert [r["identity"]["display_name"] for r in records] == ["Nick", "Sun Wei"]


# ------------------------------------------------------------------ finding 6


def test_one_id_number_and_account_do_not_open_a_second_wallet_under_another_name(
    network: Any,
) -> None:
    """Reproduction: the same ID number and bank account opened class II wallets under
    other names."""
    first = class_ii(network)
    refused(  # the ID number is bound to its first holder's name
        lambda: class_ii(network, display_name="Impostor", phone="+8613911110007"),
        409,
        "evidence_of_other_holder",
    )
    # Same person, same class again: one class II wallet per ID number at this operator.
    refused(lambda: class_ii(network, phone="+8613911110008"), 403, "wallets_per_id_per_class")
    # The ID number under another name in another class: bound to its first name.
    refused(
        lambda: network.operator("BKA1").open_wallet(
            display_name="Impostor", phone="+8613911110009", id_number=ID_A, wallet_class="III"
        ),
        409,
        "evidence_of_other_holder",
    )
    # The account under another person's ID number.
    refused(
        lambda: class_ii(network, display_name="Other", phone="+8613911110010", id_number=ID_B),
        409,
        "evidence_of_other_holder",
    )
    # The same person may hold a class III wallet beside the class II one...
    network.operator("BKA1").open_wallet(
        display_name=NAME, phone="+8613911110011", id_number=ID_A, wallet_class="III"
    )
    # ...and a class II wallet at another operator (the limit is per operator).
    other_operator = class_ii(network, code="BKB1")
    assert other_operator.wallet_id[:4] == "BKB1" and first.wallet_id[:4] == "BKA1"
    # No clear identity is stored for it.
    with network.state("BKA1").engine.connect() as conn:
        index = str(conn.execute(text("SELECT * FROM evidence_index")).all())
    for secret in (ID_A, ID_A[:-1], ACCOUNT_A, "13911110001", NAME):
        assert secret not in index


def test_a_phone_backs_at_most_the_policys_class_iv_wallets(network: Any) -> None:
    op = network.operator("BKA1")
    op.open_wallet(display_name="A", phone="+8613911110012")
    refused(
        lambda: op.open_wallet(display_name="B", phone="+8613911110012"), 403, "class_iv_per_phone"
    )
    refused(
        lambda: op.open_wallet(display_name="B", phone="13911110012"), 403, "class_iv_per_phone"
    )  # the same number in its national spelling
    refused(
        lambda: op.open_wallet(display_name="B", phone="8613911110012"), 422, "evidence_invalid"
    )  # the country code without its "+" is no accepted spelling
    # A class III wallet on the same phone is another class: allowed.
    op.open_wallet(display_name="B", phone="+8613911110012", id_number=ID_B, wallet_class="III")


THREE_PER_PHONE = with_overrides(
    load_policy(None, 2), uniqueness=Uniqueness(wallets_per_id_per_class=1, class_iv_per_phone=3)
)


@pytest.mark.parametrize("network", [THREE_PER_PHONE], indirect=True)
def test_the_phone_limit_is_the_policys(network: Any) -> None:
    op = network.operator("BKA1")
    for i in range(3):
        op.open_wallet(display_name=f"Family {i}", phone="+8613911110013")
    refused(
        lambda: op.open_wallet(display_name="Fourth", phone="+8613911110013"),
        403,
        "class_iv_per_phone",
    )


def test_concurrent_opens_on_one_phone_do_not_exceed_the_limit(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four opens with one phone meet right before counting: without the lock on the index
    they would all count 0 and all open."""
    barrier = threading.Barrier(4, timeout=2)
    real_count = irepo.count_wallets

    def count_wallets(session: Any, **key: Any) -> int:
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait()
        return real_count(session, **key)

    monkeypatch.setattr(irepo, "count_wallets", count_wallets)
    op = network.operator("BKA1")
    op.info()

    def open_one(i: int) -> str:
        try:
            op.open_wallet(display_name=f"Racer {i}", phone="+8613911110014")
        except RemoteError as exc:
            return exc.code
        except Exception as exc:  # a 500 re-raised by the test client
            return f"500 {type(exc).__name__}"
        return "opened"

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = sorted(pool.map(open_one, range(4)))
    assert outcomes == ["class_iv_per_phone"] * 3 + ["opened"], outcomes


def test_bulk_onboarding_applies_the_same_limits(network: Any) -> None:
    state = network.state("BKA1")
    ctx = state.ctx
    person = {
        "display_name": "Sim",
        "phone": "+8613911110015",
        "id_number": ID_A,
        "bank_account": ACCOUNT_A,
    }
    customers = state.uow.run(
        None, lambda s: bulk.add_customers(s, ctx, [bulk.NewCustomer(person)] * 2)
    )

    def open_two(s: Any) -> list[str]:
        return bulk.open_wallets(
            s,
            ctx,
            [
                bulk.NewWallet(cid, person, WalletClass.II, SigningKey.generate().public_key)
                for cid in customers
            ],
        )

    with pytest.raises(WalletsPerIdLimit):
        state.uow.run(None, open_two)
    with state.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM evidence_index")).scalar_one() == 0


# ------------------------------------------------------------------ finding 7 (identity)


def test_identity_checks_take_ascii_digits_and_whole_strings_only() -> None:
    assert valid_resident_id(ID_A) and valid_bank_account(ACCOUNT_A)
    assert valid_phone("+8613911110001")
    assert not valid_resident_id(ID_A + "\n")
    assert not valid_resident_id(ID_A.translate(ARABIC))
    assert not valid_bank_account(ACCOUNT_A.translate(ARABIC))
    assert not valid_bank_account(ACCOUNT_A + "\n")
    assert not valid_phone("+8613911110001\n")
    assert not valid_phone("+86139111100٠١")


def test_non_ascii_digits_and_trailing_newlines_are_422_not_500(network: Any) -> None:
    op = network.operator("BKA1")
    for number in (ACCOUNT_A.translate(ARABIC), ACCOUNT_A[:-4] + "١٢٣٤"):
        refused(lambda n=number: class_ii(network, bank_account=n), 422, "evidence_invalid")
    for id_number in (ID_A.translate(ARABIC), ID_A + "\n", ID_A[:-1].translate(ARABIC) + ID_A[-1]):
        refused(
            lambda i=id_number: op.open_wallet(
                display_name=NAME, phone="+8613911110016", id_number=i, wallet_class="III"
            ),
            422,
            "evidence_invalid",
        )
    # Evidence the class does not need is checked all the same: nothing malformed is kept.
    extras = ({"bank_account": ACCOUNT_A.translate(ARABIC)}, {"id_number": ID_A + "\n"})
    for extra in extras:
        refused(
            lambda e=extra: op.open_wallet(display_name="IV", phone="+8613911110018", **e),
            422,
            "evidence_invalid",
        )
    iv = op.open_wallet(display_name="IV", phone="+8613911110018")
    for extra in extras:
        refused(lambda e=extra: iv.change_class("IV", **e), 422, "evidence_invalid")
    # Nothing half-written: the genuine evidence still opens.
    class_ii(network)


def test_wallets_opened_before_the_index_join_it_when_the_service_starts(network: Any) -> None:
    state = network.state("BKA1")
    first = class_ii(network)
    with state.engine.begin() as conn:  # as a wallet opened before op0010 stands
        conn.execute(
            text("DELETE FROM evidence_index WHERE wallet_id = :w"), {"w": first.wallet_id}
        )
    # Unindexed, the same ID number would open a second class II wallet...
    assert state.uow.run(None, lambda s: backfill_index(s, state.ctx)) == 1
    # ...indexed again, it is refused; a second start finds nothing to do.
    refused(lambda: class_ii(network, phone="+8613911110017"), 403, "wallets_per_id_per_class")
    assert state.uow.run(None, lambda s: backfill_index(s, state.ctx)) == 0
