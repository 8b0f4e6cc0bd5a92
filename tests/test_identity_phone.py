"""Identity evidence after the adversarial review of issue #12 (identity-2):

1. A phone number has one canonical form, E.164: `+<country code><number>` or a Chinese
   mobile number `1[3-9]` + 9 digits (taken as +86). Other spellings (`00`, leading or trunk
   zeros, spaces) are refused, so one number cannot open several class IV wallets; a foreign
   `+1 383...` and the Chinese `138...` are different numbers. The blind index and the stored
   identity use E.164; phone rows indexed under the earlier normal form are rewritten when the
   service starts, and an identity stored in an old spelling equals its E.164 form.
2. A class change that changes neither the class nor the identity seals no new version.
3. No control, zero-width or bidi character in any customer field.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from sqlalchemy import text

from cbdc.identity import canonical_phone, legacy_phone, make_resident_id, normalise
from operators.errors import EvidenceInvalid
from operators.wallets.identity import check_well_formed
from operators.wallets.identity_history import backfill_index
from tests.helpers import refused

ID_C = make_resident_id("31010419850612789")

# One number, seven spellings (the review opened a class IV wallet on each).
SPELLINGS = (
    "+8613830230302",
    "13830230302",
    "013830230302",
    "0013830230302",
    "00013830230302",
    "008613830230302",
    "08613830230302",
)


def versions_of(net: Any, wallet_id: str) -> int:
    with net.state("BKA1").engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT count(*) FROM identity_versions WHERE wallet_id = :w"),
                {"w": wallet_id},
            ).scalar_one()
        )


def stored_identity(net: Any, wallet_id: str) -> dict[str, Any]:
    state = net.state("BKA1")
    with state.engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT c.id, c.identity FROM customers c JOIN wallets w "
                "ON w.customer_id = c.id WHERE w.id = :w"
            ),
            {"w": wallet_id},
        ).one()
    return state.ctx.identity_cipher.decrypt(row.identity, bound_to=f"customer:{row.id}")


# ------------------------------------------------------------------ finding 1: phones


def test_a_phone_has_one_canonical_form() -> None:
    assert canonical_phone("+8613830230302") == "+8613830230302"
    assert canonical_phone("13830230302") == "+8613830230302"
    assert canonical_phone("+13830230302") == "+13830230302"  # a North American number
    assert canonical_phone("+447911123456") == "+447911123456"
    for bad in SPELLINGS[2:] + (
        "+1 3830230302",
        "+86 13830230302",
        "138 3023 0302",
        "+8613830230302\n",
        "+86138302303٠٢",
        "+0013830230302",
        "+86012345678",  # +86 but not a mobile number
        "+861383023030",  # a digit short
        "+123456",  # fewer than 7 digits
        "+1234567890123456",  # more than 15
        "12830230302",  # 12x is no Chinese mobile prefix
        "8613830230302",  # the country code without its +
        "",
    ):
        assert canonical_phone(bad) is None, bad
    assert normalise("phone", "13830230302") == normalise("phone", "+8613830230302")
    assert normalise("phone", "+13830230302") != normalise("phone", "13830230302")


def test_phones_stored_before_e164_read_as_their_number() -> None:
    # What the earlier rule let in, and may still be in a stored identity.
    for old in SPELLINGS + ("8613830230302", "+008613830230302"):
        assert legacy_phone(old) == "+8613830230302", old
        assert normalise("phone", old) == "+8613830230302", old
    assert normalise("phone", "+13830230302") == "+13830230302"  # valid E.164 stays itself


def test_seven_spellings_of_one_number_open_one_class_iv_wallet(network: Any) -> None:
    op = network.operator("BKA1")
    op.open_wallet(display_name="First", phone=SPELLINGS[0])
    refused(
        lambda: op.open_wallet(display_name="Second", phone=SPELLINGS[1]), 403, "class_iv_per_phone"
    )
    for spelling in SPELLINGS[2:]:
        body = refused(
            lambda s=spelling: op.open_wallet(display_name="Again", phone=s),
            422,
            "evidence_invalid",
        )
        assert "+<country code><number>" in body["detail"], body
        assert "1[3-9]" in body["detail"], body
    count = network.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"]
    op.open_wallet(display_name="Other", phone="13830230399")  # another number still opens
    assert network.staff("BKA1").request("GET", "/v1/admin/audit")["wallet_count"] == count + 1


def test_a_foreign_number_is_not_the_chinese_one_with_the_same_digits(network: Any) -> None:
    op = network.operator("BKA1")
    foreign = op.open_wallet(display_name="Toronto", phone="+13830230302")
    chinese = op.open_wallet(display_name="Beijing", phone="13830230302")
    assert stored_identity(network, foreign.wallet_id)["phone"] == "+13830230302"
    assert stored_identity(network, chinese.wallet_id)["phone"] == "+8613830230302"
    refused(
        lambda: op.open_wallet(display_name="X", phone="+1 3830230302"), 422, "evidence_invalid"
    )
    refused(
        lambda: op.open_wallet(display_name="X", phone="+8613830230302"), 403, "class_iv_per_phone"
    )


def legacy_index(net: Any, phone: str) -> str:
    """The phone's blind index as made before E.164 (digits without `+`)."""
    cipher = net.state("BKA1").ctx.identity_cipher
    message = f"phone\x00{phone.strip().removeprefix('+')}".encode()
    return hmac.new(cipher._index_key, message, hashlib.sha256).hexdigest()


def test_phones_indexed_before_e164_are_reindexed_and_compare_equal(network: Any) -> None:
    state = network.state("BKA1")
    op = network.operator("BKA1")
    wallet = op.open_wallet(display_name="Old", phone="+8613830230305")
    # As the wallet stood before: identity in an old spelling, phone indexed the old way.
    old_spelling = "008613830230305"
    with state.engine.begin() as conn:
        customer_id = conn.execute(
            text("SELECT customer_id FROM wallets WHERE id = :w"), {"w": wallet.wallet_id}
        ).scalar_one()
        box = state.ctx.identity_cipher.encrypt(
            {"display_name": "Old", "phone": old_spelling}, bound_to=f"customer:{customer_id}"
        )
        conn.execute(
            text("UPDATE customers SET identity = CAST(:b AS jsonb) WHERE id = :c"),
            {"b": json.dumps(box), "c": customer_id},
        )
        conn.execute(
            text("UPDATE evidence_index SET blind_index = :i WHERE wallet_id = :w"),
            {"i": legacy_index(network, old_spelling), "w": wallet.wallet_id},
        )
    # Indexed the old way, the number would open a second class IV wallet: the start rewrites.
    state.uow.run(None, lambda s: backfill_index(s, state.ctx))
    refused(
        lambda: op.open_wallet(display_name="New", phone="13830230305"), 403, "class_iv_per_phone"
    )
    # The holder presents the number in E.164: the same evidence, not a replacement, and
    # (same class, same identity) no new version.
    before = versions_of(network, wallet.wallet_id)
    assert wallet.change_class("IV", phone="+8613830230305").wallet_class == "IV"
    assert versions_of(network, wallet.wallet_id) == before
    # Upgrading adds evidence and keeps the phone: indexed once more, in E.164.
    wallet.change_class("III", display_name="Old", phone="13830230305", id_number=ID_C)
    with state.engine.connect() as conn:
        phone_rows = (
            conn.execute(
                text(
                    "SELECT blind_index FROM evidence_index WHERE kind = 'phone' AND wallet_id = :w"
                ),
                {"w": wallet.wallet_id},
            )
            .scalars()
            .all()
        )
    assert phone_rows == [state.ctx.identity_cipher.blind_index("phone", "+8613830230305")]


# ------------------------------------------------------------------ finding 2: no-op versions


def test_a_class_change_that_changes_nothing_seals_no_version(network: Any) -> None:
    op = network.operator("BKA1")
    wallet = op.open_wallet(
        display_name="Sun Wei", phone="+8613830230306", id_number=ID_C, wallet_class="III"
    )
    assert versions_of(network, wallet.wallet_id) == 1
    for _ in range(5):
        assert wallet.change_class("III").wallet_class == "III"
        wallet.change_class("III", phone="13830230306", id_number=ID_C.lower())
    assert versions_of(network, wallet.wallet_id) == 1
    staff = network.staff("BKA1")
    for _ in range(2):
        staff.request(
            "POST",
            f"/v1/wallets/{wallet.wallet_id}/class",
            {"wallet_class": "III", "customer": {"display_name": "sun  wei"}},
        )
    assert versions_of(network, wallet.wallet_id) == 1
    # A real change still seals one: the class...
    wallet.change_class("IV")
    assert versions_of(network, wallet.wallet_id) == 2
    # ...or the identity (a correction by staff).
    staff.request(
        "POST",
        f"/v1/wallets/{wallet.wallet_id}/class",
        {"wallet_class": "IV", "customer": {"display_name": "Sun Weiwei"}},
    )
    assert versions_of(network, wallet.wallet_id) == 3


# ------------------------------------------------------------------ finding 3: control chars

HIDDEN = (
    "A\x00B",
    "Ann\u200b",
    "\u202eevil",
    "Bob\u2066x\u2069",
    "Eve\n",
    "\ufeffZed",
    "Tab\tbed",
    "Line\u2028two",
    "Del\x7f",
    "Soft\u00adhyphen",
)


def test_control_zero_width_and_bidi_characters_are_refused() -> None:
    for name in HIDDEN:
        with pytest.raises(EvidenceInvalid):
            check_well_formed({"display_name": name, "phone": "+8613830230307"})
    for field in ("id_number", "bank_account", "phone"):
        with pytest.raises(EvidenceInvalid):
            check_well_formed({field: "1234\x005678"})
    with pytest.raises(EvidenceInvalid):
        check_well_formed({"display_name": "A" * 201})
    # Ordinary spaces and scripts are fine; the phone comes back in E.164.
    assert check_well_formed({"display_name": "王 秀英 Jean-Luc", "phone": "13830230307"}) == {
        "display_name": "王 秀英 Jean-Luc",
        "phone": "+8613830230307",
    }


def test_hidden_characters_in_a_name_are_422_on_open_and_on_class_change(network: Any) -> None:
    op = network.operator("BKA1")
    for i, name in enumerate(HIDDEN):
        refused(
            lambda n=name, i=i: op.open_wallet(display_name=n, phone=f"+86138302304{i:02d}"),
            422,
            "evidence_invalid",
        )
    wallet = op.open_wallet(display_name="Plain", phone="+8613830230308")
    for name in ("Plain\x00", "\u202ePlain"):
        refused(lambda n=name: wallet.change_class("IV", display_name=n), 422, "evidence_invalid")
    assert stored_identity(network, wallet.wallet_id)["display_name"] == "Plain"
    assert versions_of(network, wallet.wallet_id) == 1
