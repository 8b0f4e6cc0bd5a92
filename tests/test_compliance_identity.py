"""Controllable anonymity, identity side: which evidence each wallet class needs, upgrading and
downgrading a wallet, and what happens at a balance cap under both overflow policies
("refuse" and the waterfall "sweep" to the holder's linked deposit).

Policy (yuan; x100 in fen): IV cap 10,000 single 2,000 daily 5,000; III cap 20,000 single
5,000 daily 10,000; II cap 500,000 single 50,000; I unlimited.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from cbdc.identity import make_bank_account, make_resident_id
from cbdc.policy import load_policy, with_overrides
from tests.conftest import VALID_BANK_ACCOUNT, VALID_ID_NUMBER
from tests.helpers import audits_ok, fund, refused

YUAN = 100
IV_CAP, IV_SINGLE = 10_000 * YUAN, 2_000 * YUAN
III_SINGLE = 5_000 * YUAN
SWEEP = with_overrides(load_policy(None, 2), overflow="sweep")
BAD_ID_NUMBER = VALID_ID_NUMBER[:-1] + ("0" if VALID_ID_NUMBER[-1] != "0" else "1")
BAD_BANK_ACCOUNT = VALID_BANK_ACCOUNT[:-1] + str((int(VALID_BANK_ACCOUNT[-1]) + 1) % 10)


def counts(net: Any, code: str = "BKA1") -> tuple[int, int]:
    """(wallets, customers) rows at an operator."""
    with net.state(code).engine.connect() as conn:
        wallets = conn.execute(text("SELECT count(*) FROM wallets")).scalar_one()
        customers = conn.execute(text("SELECT count(*) FROM customers")).scalar_one()
    return int(wallets), int(customers)


# ------------------------------------------------------------------ opening by class


def test_class_iv_opens_self_service_on_a_phone_alone(network: Any) -> None:
    op = network.operator("BKA1")
    wallet = op.open_wallet(phone="+8613811112222")
    info = wallet.balance()
    assert info.wallet_class == "IV"
    assert info.evidence == ["phone"]
    assert info.limits.balance_cap == IV_CAP and info.limits.single_payment == IV_SINGLE
    assert info.certificate["document"]["wallet_class"] == "IV"
    # Without a phone number there is nothing to open a class IV wallet on.
    before = counts(network)
    refused(lambda: op.open_wallet(display_name="No Phone"), 422, "evidence_missing")
    assert counts(network) == before


def test_class_iii_and_ii_need_a_valid_id_number_and_ii_a_bank_account(network: Any) -> None:
    op = network.operator("BKA1")
    before = counts(network)
    # Class III: name + resident ID number with a valid check digit.
    refused(
        lambda: op.open_wallet(
            phone="+8613800000001", id_number=VALID_ID_NUMBER, wallet_class="III"
        ),
        422,
        "evidence_missing",
    )  # no name
    refused(
        lambda: op.open_wallet(display_name="Li Na", phone="+8613800000001", wallet_class="III"),
        422,
        "evidence_missing",
    )  # no ID
    refused(
        lambda: op.open_wallet(
            display_name="Li Na",
            phone="+8613800000001",
            id_number=BAD_ID_NUMBER,
            wallet_class="III",
        ),
        422,
        "evidence_invalid",
    )
    # Class II: additionally the holder's own bank account (Luhn-valid).
    refused(
        lambda: op.open_wallet(
            display_name="Li Na",
            phone="+8613800000001",
            id_number=VALID_ID_NUMBER,
            wallet_class="II",
        ),
        422,
        "evidence_missing",
    )
    refused(
        lambda: op.open_wallet(
            display_name="Li Na",
            phone="+8613800000001",
            id_number=VALID_ID_NUMBER,
            bank_account=BAD_BANK_ACCOUNT,
            wallet_class="II",
        ),
        422,
        "evidence_invalid",
    )
    refused(
        lambda: op.open_wallet(
            display_name="Li Na",
            phone="+8613800000001",
            id_number=BAD_ID_NUMBER,
            bank_account=VALID_BANK_ACCOUNT,
            wallet_class="II",
        ),
        422,
        "evidence_invalid",
    )
    assert counts(network) == before  # no refusal left a wallet or a customer behind

    iii = op.open_wallet(
        display_name="Li Na", phone="+8613800000001", id_number=VALID_ID_NUMBER, wallet_class="III"
    ).balance()
    assert iii.wallet_class == "III"
    assert set(iii.evidence) == {"phone", "name", "id_number"}
    assert iii.limits.single_payment == III_SINGLE
    other_id = make_resident_id("44030619851120123")
    ii = op.open_wallet(
        display_name="Wang Fang",
        phone="+8613800000002",
        id_number=other_id,
        bank_account=make_bank_account("622848000000123"),
        wallet_class="II",
    ).balance()
    assert ii.wallet_class == "II"
    assert set(ii.evidence) == {"phone", "name", "id_number", "bank_account"}
    assert ii.limits.balance_cap == 500_000 * YUAN
    assert counts(network) == (before[0] + 2, before[1] + 2)


def test_class_i_only_at_the_counter(network: Any) -> None:
    op = network.operator("BKA1")
    before = counts(network)
    body = refused(
        lambda: op.open_wallet(
            display_name="Zhao Lei",
            phone="+8613800000003",
            id_number=VALID_ID_NUMBER,
            bank_account=VALID_BANK_ACCOUNT,
            wallet_class="I",
        ),
        403,
        "class_requires_verification",
    )
    assert body["status"] == 403
    assert counts(network) == before
    wallet = op.open_wallet(
        display_name="Zhao Lei",
        phone="+8613800000003",
        id_number=VALID_ID_NUMBER,
        bank_account=VALID_BANK_ACCOUNT,
        wallet_class="I",
        staff_key=network.operator_keys["BKA1"],
    )
    info = wallet.balance()
    assert info.wallet_class == "I"
    assert "in_person" in info.evidence
    assert info.limits.model_dump() == {
        "balance_cap": None,
        "single_payment": None,
        "daily": None,
        "annual": None,
    }
    # Staff still check the remote evidence: a bad ID number is refused at the counter too.
    refused(
        lambda: op.open_wallet(
            display_name="Zhao Lei",
            phone="+8613800000003",
            id_number=BAD_ID_NUMBER,
            bank_account=VALID_BANK_ACCOUNT,
            wallet_class="I",
            staff_key=network.operator_keys["BKA1"],
        ),
        422,
        "evidence_invalid",
    )


# ------------------------------------------------------------------ changing class


def test_upgrade_iv_to_iii_with_evidence_raises_the_limits(network: Any) -> None:
    op = network.operator("BKA1")
    payer = op.open_wallet(phone="+8613800000004")
    fund(network, "BKA1", payer, 3_000 * YUAN)
    payee = network.open_wallet("BKA1")
    amount = 2_500 * YUAN  # over class IV's single-payment limit, within class III's
    refused(lambda: payer.pay(payee.wallet_id, amount), 422, "single_payment_limit_exceeded")

    # An upgrade without the evidence class III needs is refused and changes nothing.
    refused(lambda: payer.change_class("III"), 422, "evidence_missing")
    refused(
        lambda: payer.change_class("III", display_name="Sun Li", id_number=BAD_ID_NUMBER),
        422,
        "evidence_invalid",
    )
    assert payer.balance().wallet_class == "IV"
    # Class I cannot be reached with the wallet's own key.
    refused(
        lambda: payer.change_class(
            "I", display_name="Sun Li", id_number=VALID_ID_NUMBER, bank_account=VALID_BANK_ACCOUNT
        ),
        403,
        "class_requires_verification",
    )

    upgraded = payer.change_class("III", display_name="Sun Li", id_number=VALID_ID_NUMBER)
    assert upgraded.wallet_class == "III"
    assert set(upgraded.evidence) == {"phone", "name", "id_number"}
    assert upgraded.limits.single_payment == III_SINGLE
    assert upgraded.certificate["document"]["wallet_class"] == "III"
    assert upgraded.balance == 3_000 * YUAN

    receipt = payer.pay(payee.wallet_id, amount)
    assert receipt.status == "completed"
    assert payer.balance().balance == 500 * YUAN
    assert payee.balance().balance == amount

    # Staff may take it to class I (verified in person), adding the bank account.
    data = network.staff("BKA1").request(
        "POST",
        f"/v1/wallets/{payer.wallet_id}/class",
        {"wallet_class": "I", "customer": {"bank_account": VALID_BANK_ACCOUNT}},
    )
    assert data["wallet_class"] == "I" and "in_person" in data["evidence"]
    assert data["limits"]["balance_cap"] is None
    audits_ok(network)


def test_downgrade_above_the_new_cap_is_refused_by_default(network: Any) -> None:
    wallet = network.open_wallet("BKA1", wallet_class="II", load=15_000 * YUAN)
    before = wallet.balance()
    body = refused(lambda: wallet.change_class("IV"), 422, "balance_cap_exceeded")
    assert body.get("limit") in (None, IV_CAP)
    after = wallet.balance()
    assert after.wallet_class == "II"
    assert (after.balance, after.deposit_balance) == (before.balance, before.deposit_balance)
    # Once the balance fits, the downgrade goes through.
    wallet.unload(5_000 * YUAN)
    down = wallet.change_class("IV")
    assert down.wallet_class == "IV" and down.balance == IV_CAP
    assert down.limits.balance_cap == IV_CAP
    audits_ok(network)


@pytest.mark.parametrize("network", [SWEEP], indirect=True)
def test_downgrade_above_the_new_cap_sweeps_the_excess_under_sweep(network: Any) -> None:
    wallet = network.open_wallet("BKA1", wallet_class="II", load=15_000 * YUAN)
    before = wallet.balance()
    assert before.balance == 15_000 * YUAN
    down = wallet.change_class("IV")
    assert down.wallet_class == "IV"
    assert down.balance == IV_CAP
    assert down.deposit_balance == before.deposit_balance + 5_000 * YUAN
    # The sweep is one journal entry; the wallet's history shows it.
    kinds = [item.kind for item in wallet.history().items]
    assert "waterfall_sweep" in kinds
    audits_ok(network)


# ------------------------------------------------------------------ payee over its cap


def test_payment_over_the_payee_cap_is_refused_by_default(network: Any) -> None:
    payer = network.open_wallet("BKA1", load=2_000 * YUAN)
    payee = network.open_wallet("BKA1", load=9_500 * YUAN)
    refused(lambda: payer.pay(payee.wallet_id, 1_000 * YUAN), 422, "payee_balance_cap_exceeded")
    assert payer.balance().balance == 2_000 * YUAN
    assert payee.balance().balance == 9_500 * YUAN
    # Up to the cap exactly is fine.
    payer.pay(payee.wallet_id, 500 * YUAN)
    assert payee.balance().balance == IV_CAP

    # Across operators the payee's operator cannot take it: the money goes back to the payer.
    remote = network.open_wallet("BKB1", load=9_500 * YUAN)
    receipt = payer.pay(remote.wallet_id, 1_000 * YUAN)
    network.run_jobs()
    assert payer.payment(receipt.payment_id).status == "returned"
    assert payer.balance().balance == 1_500 * YUAN
    assert remote.balance().balance == 9_500 * YUAN
    audits_ok(network)


@pytest.mark.parametrize("network", [SWEEP], indirect=True)
def test_payment_over_the_payee_cap_is_swept_to_its_deposit_under_sweep(network: Any) -> None:
    payer = network.open_wallet("BKA1", load=2_000 * YUAN)
    payee = network.open_wallet("BKA1", load=9_500 * YUAN)
    deposit_before = payee.balance().deposit_balance
    receipt = payer.pay(payee.wallet_id, 1_000 * YUAN)
    assert receipt.status == "completed"
    assert payer.balance().balance == 1_000 * YUAN
    after = payee.balance()
    assert after.balance == IV_CAP
    assert after.deposit_balance == deposit_before + 500 * YUAN
    audits_ok(network)


@pytest.mark.parametrize("network", [SWEEP], indirect=True)
def test_cross_operator_payment_over_the_cap_is_swept_not_returned(network: Any) -> None:
    payer = network.open_wallet("BKA1", load=2_000 * YUAN)
    payee = network.open_wallet("BKB1", load=9_500 * YUAN)
    deposit_before = payee.balance().deposit_balance
    receipt = payer.pay(payee.wallet_id, 1_000 * YUAN)
    network.run_jobs()
    assert payer.payment(receipt.payment_id).status == "delivered"
    assert payer.balance().balance == 1_000 * YUAN  # not refunded
    after = payee.balance()
    assert after.balance == IV_CAP
    assert after.deposit_balance == deposit_before + 500 * YUAN
    audits_ok(network)
