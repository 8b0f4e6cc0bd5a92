"""Unit tests of the shared kernel: addresses, money, canonical JSON and signatures, tokens,
the policy file, and the wallet key store. No database."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cbdc.addresses import check_digits, is_valid_wallet_id, make_wallet_id, routing_code
from cbdc.crypto import SigningKey, b64d, b64e, canonical_json, verify, verify_json
from cbdc.money import format_amount, parse_amount
from cbdc.policy import DEFAULT_POLICY_FILE, WalletClass, load_policy
from cbdc.tokens import sign_document, sign_token, token_body, verify_document, verify_token
from wallets.keystore import KeyStore, StoredWallet

CODES = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=4, max_size=4)
SEQUENCES = st.integers(min_value=0, max_value=10**14 - 1)


# ------------------------------------------------------------------ addresses


@given(code=CODES, sequence=SEQUENCES)
@settings(max_examples=200)
def test_wallet_ids_are_valid_and_route(code: str, sequence: int) -> None:
    wallet_id = make_wallet_id(code, sequence)
    assert len(wallet_id) == 20
    assert is_valid_wallet_id(wallet_id)
    assert routing_code(wallet_id) == code
    assert int(wallet_id[4:18]) == sequence


@given(code=CODES, sequence=SEQUENCES, position=st.integers(4, 19), delta=st.integers(1, 9))
@settings(max_examples=300)
def test_any_single_digit_typo_is_caught(
    code: str, sequence: int, position: int, delta: int
) -> None:
    wallet_id = make_wallet_id(code, sequence)
    digit = (int(wallet_id[position]) + delta) % 10
    typo = wallet_id[:position] + str(digit) + wallet_id[position + 1 :]
    assert not is_valid_wallet_id(typo)


@given(code=CODES, sequence=SEQUENCES, position=st.integers(4, 18))
@settings(max_examples=300)
def test_adjacent_transpositions_are_caught(code: str, sequence: int, position: int) -> None:
    wallet_id = make_wallet_id(code, sequence)
    a, b = wallet_id[position], wallet_id[position + 1]
    swapped = wallet_id[:position] + b + a + wallet_id[position + 2 :]
    if swapped != wallet_id:
        assert not is_valid_wallet_id(swapped)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "BKA1",
        "bka1000000000000000100",
        "BKA10000000000000001",
        "BKA1 00000000000001 00",
        "BKA1000000000000000X00",
        "BKA100000000000000010",
        "BKA1-0000000000000100",
        "ÄKA10000000000000001",
    ],
)
def test_malformed_wallet_ids_are_invalid(text: str) -> None:
    assert not is_valid_wallet_id(text)


def test_check_digits_are_iso_7064() -> None:
    # MOD 97-10 as in IBAN: the whole id read as a number (letters as 10..35, check digits
    # moved after the number) is 1 mod 97
    wallet_id = make_wallet_id("BKA1", 4711)
    assert wallet_id == "BKA100000000004711" + check_digits("BKA1", "00000000004711")
    numeric = "".join(str(int(ch, 36)) for ch in wallet_id)
    assert int(numeric) % 97 == 1


# ------------------------------------------------------------------ money


@pytest.mark.parametrize(
    ("minor", "decimals", "currency", "text"),
    [
        (0, 2, "", "0.00"),
        (1, 2, "CNY", "0.01 CNY"),
        (123456789, 2, "CNY", "1,234,567.89 CNY"),
        (-150, 2, "", "-1.50"),
        (5, 0, "JPY", "5 JPY"),
        (1234, 3, "", "1.234"),
    ],
)
def test_format_amount(minor: int, decimals: int, currency: str, text: str) -> None:
    assert format_amount(minor, decimals, currency) == text


def test_parse_amount() -> None:
    assert parse_amount("12.34") == 1234
    assert parse_amount("1,000") == 100000
    assert parse_amount(" 0.01 ") == 1
    assert parse_amount("7", decimals=0) == 7
    for bad in ("", "abc", "1.234", "0", "-1", "0.00", "1e-3", "NaN"):
        with pytest.raises(ValueError):
            parse_amount(bad)


def test_parse_amount_refuses_what_it_would_misread() -> None:
    """Commas only as thousands groups ("12,34" is not 1,234.00), ASCII digits only, and no
    NaN, Infinity, sign, exponent or underscore (Infinity used to raise OverflowError)."""
    assert parse_amount("1,234,567.89") == 123456789
    assert parse_amount("0012.30") == 1230
    for bad in (
        "12,34", "1,00", "1,2", "1 000", "12,345,67", "Infinity", "-Infinity", "sNaN",
        "1e3", "+5", "1_000", "\u0661\u0662", "\uff11\uff12", ".5", "1.2.3",
    ):  # fmt: skip
        with pytest.raises(ValueError):
            parse_amount(bad)


@given(st.integers(min_value=1, max_value=10**15))
def test_parse_format_roundtrip(minor: int) -> None:
    assert parse_amount(format_amount(minor)) == minor


# ------------------------------------------------------------------ crypto and tokens


def test_canonical_json_is_order_independent() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == canonical_json(
        {"a": [1, {"c": "é", "d": 2}], "b": 1}
    )
    assert canonical_json({"b": 1, "a": 2}) == b'{"a":2,"b":1}'
    assert canonical_json({"x": "é"}) == '{"x":"é"}'.encode()


@given(st.binary(max_size=64))
def test_b64_roundtrip(raw: bytes) -> None:
    encoded = b64e(raw)
    assert "=" not in encoded
    assert b64d(encoded) == raw


def test_signatures(tmp_path: Path) -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    signature = key.sign(b"message")
    assert verify(key.public_key, b"message", signature)
    assert not verify(key.public_key, b"messagE", signature)
    assert not verify(other.public_key, b"message", signature)
    for junk_key, junk_sig in (
        ("", signature),
        ("not base64 !", signature),
        (key.public_key, ""),
        (key.public_key, "@@@@"),
    ):
        assert not verify(junk_key, b"message", junk_sig)
    assert verify_json(key.public_key, {"b": 1, "a": 2}, key.sign_json({"a": 2, "b": 1}))
    # keys survive a round trip through their encodings and a file
    assert SigningKey.from_private_bytes(key.private_bytes()).public_key == key.public_key
    path = tmp_path / "keys" / "k.key"
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKey.load(path).public_key == key.public_key


def test_tokens_and_documents() -> None:
    cb = SigningKey.generate()
    token = sign_token(cb, token_body("serial-1", 100, "CNY", "2026-01-01T00:00:00+00:00"))
    assert verify_token(cb.public_key, token)
    for field, value in (
        ("amount", 101),
        ("currency", "USD"),
        ("serial", "serial-2"),
        ("issued_at", "2027-01-01T00:00:00+00:00"),
    ):
        assert not verify_token(cb.public_key, {**token, field: value})
    assert not verify_token(cb.public_key, {k: v for k, v in token.items() if k != "currency"})
    assert not verify_token(cb.public_key, {k: v for k, v in token.items() if k != "signature"})
    assert not verify_token(SigningKey.generate().public_key, token)

    signed = sign_document(cb, {"kind": "receipt", "amount": 5})
    assert verify_document(cb.public_key, signed)
    assert not verify_document(
        cb.public_key, {**signed, "document": {"kind": "receipt", "amount": 6}}
    )
    assert not verify_document(cb.public_key, {"document": "text", "signature": "x"})
    assert not verify_document(cb.public_key, {"document": {}, "signature": None})
    assert not verify_document(cb.public_key, {})


# ------------------------------------------------------------------ policy


def test_default_policy_matches_the_pilot_limits() -> None:
    policy = load_policy(None, 2)
    iv = policy.limits(WalletClass.IV)
    assert (iv.balance_cap, iv.single_payment, iv.daily, iv.annual) == (
        10_000_00,
        2_000_00,
        5_000_00,
        50_000_00,
    )
    iii = policy.limits(WalletClass.III)
    assert (iii.balance_cap, iii.single_payment, iii.daily, iii.annual) == (
        20_000_00,
        5_000_00,
        10_000_00,
        None,
    )
    ii = policy.limits(WalletClass.II)
    assert (ii.balance_cap, ii.single_payment, ii.daily, ii.annual) == (
        500_000_00,
        50_000_00,
        100_000_00,
        None,
    )
    i = policy.limits(WalletClass.I)
    assert (i.balance_cap, i.single_payment, i.daily, i.annual) == (None, None, None, None)
    assert load_policy(DEFAULT_POLICY_FILE, 0).limits(WalletClass.IV).balance_cap == 10_000
    assert WalletClass.parse(" iv ") is WalletClass.IV and WalletClass.parse(2) is WalletClass.II
    with pytest.raises(KeyError):
        WalletClass.parse("V")


def test_bad_policy_files_are_refused(tmp_path: Path) -> None:
    good = "".join(f"[classes.{c}]\nbalance_cap = 10\n" for c in ("I", "II", "III", "IV"))
    path = tmp_path / "policy.toml"
    path.write_text(good)
    assert load_policy(path, 2).limits(WalletClass.I).balance_cap == 1000
    for bad in (
        good.replace("[classes.IV]\nbalance_cap = 10\n", ""),  # a class missing
        good.replace("balance_cap = 10", "balance_cap = -1", 1),  # negative
        good.replace("balance_cap = 10", "balance_cap = 1.5", 1),  # not an integer
        good + "[balance_cap]\noverflow = 'ignore'\n",
    ):
        path.write_text(bad)
        with pytest.raises(ValueError):
            load_policy(path, 2)


# ------------------------------------------------------------------ key store


def test_key_store(tmp_path: Path) -> None:
    store = KeyStore(tmp_path / "wallets")
    assert store.all() == []
    key = SigningKey.generate()
    stored = StoredWallet(
        wallet_id=make_wallet_id("BKA1", 1),
        operator="BKA1",
        operator_url="http://x",
        private_key=key.private_bytes(),
        public_key=key.public_key,
        wallet_class="IV",
        name="alice",
    )
    store.save(stored)
    path = tmp_path / "wallets" / f"{stored.wallet_id}.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.get("alice") == stored
    assert store.get(stored.wallet_id).key.public_key == key.public_key
    with pytest.raises(KeyError):
        store.get("bob")
