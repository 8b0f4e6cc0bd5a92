"""Controllable anonymity, privacy side: identity is encrypted at rest at the operator, no
personal data ever reaches the central bank's database (a scan of every table after a busy
network day), and payees see only a payer alias, different for each payee.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from sqlalchemy import text

from cbdc.identity import make_bank_account, make_resident_id
from cbdc.policy import load_policy, with_overrides
from regulator.client import disclosure_order
from tests.helpers import fund

YUAN = 100
# Lowered AML thresholds so the busy day below raises alerts (reported to the central bank).
BUSY = with_overrides(load_policy(None, 2), large_value=500 * YUAN, velocity_count=3, fan_count=3)


def person(i: int, *, unicode_name: bool = False) -> dict[str, str]:
    """A distinctive identity per person, easy to grep for and unlikely to occur by chance."""
    name = f"王秀英{i}号" if unicode_name else f"Customer Q{i:02d}X Zyxwvut"
    return {
        "display_name": name,
        "phone": f"+86139{i:02d}{7654321 + i:07d}"[:14],  # a mobile number: 11 digits
        "id_number": make_resident_id(f"3301061987{i:02d}1{i:04d}"[:17]),
        "bank_account": make_bank_account(f"62220219{i:02d}{314159 + i:06d}"),
    }


def needles(people: list[dict[str, str]]) -> list[str]:
    """Every personal datum, in clear and in the forms JSON or a digits-only copy would take."""
    out: set[str] = {"Zyxwvut", "王秀英", json.dumps("王秀英")[1:-1]}
    for p in people:
        for value in p.values():
            out.add(value)
            out.add(json.dumps(value)[1:-1])  # \uXXXX-escaped form of non-ASCII names
            if value.startswith("+"):
                out.add(value[1:])
    return sorted(out)


def table_dump(engine: Any, tables: list[str] | None = None) -> dict[str, str]:
    """Every row of every (or the given) public table, cast to text."""
    with engine.connect() as conn:
        if tables is None:
            tables = list(
                conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1"
                    )
                ).scalars()
            )
        dumps = {}
        for table in tables:
            rows = conn.execute(text(f'SELECT t::text FROM "{table}" t')).scalars().all()
            dumps[table] = "\n".join(rows)
    return dumps


def text_columns(engine: Any) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [
            tuple(r)
            for r in conn.execute(
                text(
                    "SELECT c.table_name, c.column_name FROM information_schema.columns c "
                    "JOIN information_schema.tables t USING (table_schema, table_name) "
                    "WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE' "
                    "AND (c.data_type IN ('text', 'character varying', 'character', 'json', "
                    "'jsonb') OR c.udt_name IN ('_text', '_varchar')) ORDER BY 1, 2"
                )
            ).all()
        ]


def column_dump(engine: Any) -> dict[str, str]:
    """Every text/json column of every public table (alternative view of the same data)."""
    out = {}
    with engine.connect() as conn:
        for table, column in text_columns(engine):
            values = (
                conn.execute(
                    text(
                        f'SELECT CAST("{column}" AS text) FROM "{table}" '
                        f'WHERE "{column}" IS NOT NULL'
                    )
                )
                .scalars()
                .all()
            )
            out[f"{table}.{column}"] = "\n".join(values)
    return out


def leaks(dumps: dict[str, str], people: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(where, n) for where, blob in dumps.items() for n in needles(people) if n in blob]


def test_the_scanner_finds_personal_data_in_any_form() -> None:
    people = [person(1), person(4, unicode_name=True)]
    for blob in (
        json.dumps(people),
        json.dumps(people, ensure_ascii=False),
        people[1]["display_name"],
        people[0]["phone"][1:],
    ):
        assert leaks({"probe": blob}, people), blob
    assert leaks({"probe": "BKA1 anon-0123456789abcdef 100.00 CNY"}, people) == []


def open_identified(net: Any, code: str, who: dict[str, str], wallet_class: str) -> Any:
    staff = net.operator_keys[code] if wallet_class == "I" else None
    fields = {
        "II": ("display_name", "phone", "id_number", "bank_account"),
        "III": ("display_name", "phone", "id_number"),
        "IV": ("display_name", "phone"),
    }.get(wallet_class, tuple(who))
    return net.operator(code).open_wallet(
        wallet_class=wallet_class, staff_key=staff, **{k: who[k] for k in fields}
    )


# ------------------------------------------------------------------ operator at rest


def test_identity_is_encrypted_at_rest_at_the_operator(network: Any) -> None:
    people = [person(i, unicode_name=(i == 3)) for i in range(1, 6)]
    classes = ["IV", "III", "II", "I"]
    wallets = [
        open_identified(network, "BKA1", who, c) for who, c in zip(people[:4], classes, strict=True)
    ]
    # An upgrade adds evidence later: it must be stored encrypted too.
    extra = people[4]
    upgraded = network.operator("BKA1").open_wallet(phone=extra["phone"])
    upgraded.change_class(
        "II",
        display_name=extra["display_name"],
        id_number=extra["id_number"],
        bank_account=extra["bank_account"],
    )
    engine = network.state("BKA1").engine
    customers = table_dump(engine, ["customers"])["customers"]
    assert customers.count("\n") + 1 == len(wallets) + 1  # one customer per wallet
    assert leaks({"customers": customers}, people) == []
    # ... nor anywhere else in the operator's database (escrow is sealed, certificates and
    # orders carry no identity).
    assert leaks(table_dump(engine), people) == []
    # The identity column holds an AEAD box, not fields of a person.
    with engine.connect() as conn:
        boxes = conn.execute(text("SELECT identity FROM customers")).scalars().all()
    for box in boxes:
        assert set(box) == {"v", "nonce", "ct"}
    # Yet the operator can still read it back (the data key decrypts): the upgrade kept the
    # evidence, so a downgrade and re-upgrade need no new evidence.
    assert upgraded.balance().wallet_class == "II"
    assert upgraded.change_class("III").wallet_class == "III"
    assert upgraded.change_class("II").wallet_class == "II"


# ------------------------------------------------------------------ the central bank


@pytest.mark.parametrize("network", [BUSY], indirect=True)
def test_no_personal_data_reaches_the_central_bank(network: Any) -> None:
    rng = random.Random(20261121)
    people = [person(i, unicode_name=(i % 4 == 0)) for i in range(10, 20)]
    classes = ["II", "III", "IV", "I", "II"]
    wallets: list[tuple[str, Any]] = []
    for n, who in enumerate(people):
        code = "BKA1" if n % 2 == 0 else "BKB1"
        wallet = open_identified(network, code, who, classes[n % len(classes)])
        fund(network, code, wallet, rng.randrange(1_500, 3_000) * YUAN)
        wallets.append((code, wallet))
    # Random traffic: intra- and cross-operator payments, loads and unloads.
    for _ in range(25):
        (_, payer), (_, payee) = rng.sample(wallets, 2)
        amount = rng.randrange(1, 300) * YUAN + rng.randrange(100)
        payer.pay(payee.wallet_id, amount)
    for _code, wallet in rng.sample(wallets, 3):
        wallet.unload(100 * YUAN)
    # An AML alert for sure: a large-value payment (threshold lowered to 500).
    big_payer = wallets[0][1]
    big_payer.pay(wallets[1][1].wallet_id, 600 * YUAN)
    # A disclosure (the regulator learns an identity; the central bank must not).
    order = disclosure_order(
        network.regulator,
        wallet_id=big_payer.wallet_id,
        legal_basis="AML investigation 2026/17",
        requester="FIU",
    )
    response = network.operator_http["BKA1"].post("/v1/regulator/disclosures", json=order)
    assert response.status_code == 200, response.text
    network.run_jobs()

    cb_engine = network.cb_app.state.cb.engine
    assert str(cb_engine.url.database) in network.cb_app.state.cb.config.database_url
    rows = table_dump(cb_engine)
    columns = column_dump(cb_engine)
    assert {"aml_reports", "operators", "tokens"} <= set(rows)
    # The scan is meaningful: the alerts and the settlements did reach the central bank...
    assert "large_value" in rows["aml_reports"]
    assert big_payer.wallet_id in rows["aml_reports"]
    assert rows["tokens"]
    # ...but no name, ID number, phone number or bank account, in any row or column.
    assert leaks(rows, people) == []
    assert leaks(columns, people) == []
    # No wallet-to-person link either: nothing with a display name or an identity field.
    for needle in ("display_name", "id_number", "bank_account", "phone"):
        assert all(needle not in blob for blob in rows.values()), needle

    # The operators' outboxes (what travels to the central bank and to peers) and their AML
    # alerts are pseudonymous too.
    for code in ("BKA1", "BKB1"):
        engine = network.state(code).engine
        dumps = table_dump(engine, ["outbox", "aml_alerts", "inbound_settlements"])
        assert leaks(dumps, people) == []
        for needle in ("display_name", "id_number", "bank_account"):
            assert all(needle not in blob for blob in dumps.values()), needle
    assert "aml_report" in table_dump(network.state("BKA1").engine, ["outbox"])["outbox"]


# ------------------------------------------------------------------ payer aliases


def incoming_aliases(wallet: Any) -> list[str]:
    return [
        item.counterparty
        for item in wallet.history().items
        if item.amount > 0 and item.kind in ("payment", "settlement_in")
    ]


def test_payees_see_a_per_payee_alias_never_the_payer(network: Any) -> None:
    payer = network.open_wallet("BKA1", load=1_000 * YUAN)
    m1 = network.open_wallet("BKA1")
    m2 = network.open_wallet("BKA1")
    m3 = network.open_wallet("BKB1")
    m4 = network.open_wallet("BKB1")
    for merchant in (m1, m1, m2, m3, m3, m4):
        payer.pay(merchant.wallet_id, 10 * YUAN)
    network.run_jobs()

    aliases = {}
    for name, merchant in (("m1", m1), ("m2", m2), ("m3", m3), ("m4", m4)):
        seen = incoming_aliases(merchant)
        assert len(seen) == (2 if name in ("m1", "m3") else 1), (name, seen)
        assert len(set(seen)) == 1, f"{name}: alias not stable across payments: {seen}"
        alias = seen[0]
        assert alias and alias.startswith("anon-")
        assert payer.wallet_id not in alias and payer.wallet_id[4:18] not in alias
        # The whole history the merchant can read never names the payer's wallet.
        assert payer.wallet_id not in merchant.history().model_dump_json()
        aliases[name] = alias
    assert len(set(aliases.values())) == 4, aliases  # unlinkable across merchants

    # A second payer gets yet another alias at the same merchant.
    other = network.open_wallet("BKA1", load=100 * YUAN)
    other.pay(m1.wallet_id, 10 * YUAN)
    now_seen = set(incoming_aliases(m1))
    assert aliases["m1"] in now_seen and len(now_seen) == 2
    # The payer itself sees whom it paid.
    own = [item.counterparty for item in payer.history().items if item.amount < 0]
    assert {m1.wallet_id, m2.wallet_id, m3.wallet_id, m4.wallet_id} <= set(own)
