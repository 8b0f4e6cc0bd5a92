"""Array literals (cbdc/sqlarrays.py) round-trip through PostgreSQL's array input: every element
comes back exactly as given once the statement casts the literal (`CAST(:a AS text[])`), whatever
characters it holds, and only a real None becomes SQL NULL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from cbdc.sqlarrays import any_array, int_array, nullable_text_array, text_array

AWKWARD = [
    'say "hi"',
    '"',
    '""',
    "back\\slash",
    "\\",
    "\\\\",
    '\\"',
    "trailing\\",
    "a,b",
    ",",
    "{braces}",
    "{",
    "}",
    "{}",
    "{a,b}",
    " spaced ",
    "  ",
    "two words",
    "",
    "NULL",
    "null",
    "Null",
    "'single'",
    "tab\there",
    "new\nline",
    "人民币 数字钱包",
    "emoji 💴",
    "ünïcödé",
]
DOCUMENTS = [
    json.dumps({"memo": 'He said "pay me"', "path": "C:\\temp\\x", "n": 1}),
    json.dumps({"nested": {"list": [1, "two", None], "empty": ""}, "quote": '\\"'}),
    json.dumps({"unicode": "数字人民币", "braces": "{,}"}, ensure_ascii=False),
    json.dumps({"unicode": "数字人民币"}),  # \uXXXX escapes: backslashes in the text
    json.dumps([]),
    json.dumps('just a string with \\ and "'),
]


@pytest.fixture(scope="module")
def db(pg_url: str) -> Iterator[Connection]:
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def round_trip(db: Connection, literal: str, cast: str) -> list[Any]:
    value = db.execute(text(f"SELECT CAST(:a AS {cast})"), {"a": literal}).scalar_one()
    return list(value)


def unnested(db: Connection, literal: str, cast: str) -> list[Any]:
    """The elements through unnest (how the product's statements read them), in order."""
    rows = db.execute(
        text(f"SELECT x FROM unnest(CAST(:a AS {cast})) WITH ORDINALITY AS t(x, i) ORDER BY i"),
        {"a": literal},
    ).scalars()
    return list(rows)


# ------------------------------------------------------------------ text_array


@pytest.mark.parametrize("value", AWKWARD + DOCUMENTS)
def test_text_array_keeps_each_awkward_element(db: Connection, value: str) -> None:
    assert round_trip(db, text_array([value]), "text[]") == [value]
    # next to plain elements, which alone would take the unescaped path
    values = ["plain", value, "also plain"]
    assert round_trip(db, text_array(values), "text[]") == values


def test_text_array_keeps_all_of_them_together(db: Connection) -> None:
    values = AWKWARD + DOCUMENTS
    assert round_trip(db, text_array(values), "text[]") == values
    assert unnested(db, text_array(values), "text[]") == values


def test_text_array_without_quotes_or_backslashes(db: Connection) -> None:
    values = ["a,b", "{x}", " lead", "trail ", "", "NULL", "null", "两个 字", "x y"]
    literal = text_array(values)
    assert round_trip(db, literal, "text[]") == values
    nulls = db.execute(
        text("SELECT count(*) FROM unnest(CAST(:a AS text[])) AS t(x) WHERE x IS NULL"),
        {"a": literal},
    ).scalar_one()
    assert nulls == 0  # the text 'NULL' is a string, not SQL NULL


def test_text_array_of_the_word_null_alone(db: Connection) -> None:
    for values in (["NULL"], ["null"], ["NULL", "NULL"], ["NULL", '"']):
        assert round_trip(db, text_array(values), "text[]") == values
        assert None not in round_trip(db, text_array(values), "text[]")


def test_json_documents_become_jsonb_intact(db: Connection) -> None:
    """As in operators/settlement/netting.py, where receipts travel as `CAST(:r AS jsonb[])`."""
    assert round_trip(db, text_array(DOCUMENTS), "text[]") == DOCUMENTS
    parsed = round_trip(db, text_array(DOCUMENTS), "jsonb[]")
    assert parsed == [json.loads(d) for d in DOCUMENTS]


def test_text_array_empty(db: Connection) -> None:
    assert text_array([]) == "{}"
    assert round_trip(db, text_array([]), "text[]") == []
    assert round_trip(db, text_array([""]), "text[]") == [""]
    assert round_trip(db, text_array(["", ""]), "text[]") == ["", ""]


def test_text_array_many_elements(db: Connection) -> None:
    values = ["w" + str(i) + '"' + "\\" * (i % 7) + "{,}" for i in range(2000)]
    assert round_trip(db, text_array(values), "text[]") == values
    plain = [f"BKA1-{i:08d}" for i in range(2000)]
    assert round_trip(db, text_array(plain), "text[]") == plain


# ------------------------------------------------------------------ nullable_text_array


def test_nullable_text_array_real_none_is_sql_null(db: Connection) -> None:
    values = [None, "NULL", "null", None, 'q"uote', "back\\slash", "", "a,b", "{}", "数字", None]
    literal = nullable_text_array(values)
    assert round_trip(db, literal, "text[]") == values
    row = db.execute(
        text(
            "SELECT count(*) FILTER (WHERE x IS NULL) AS nulls, "
            "count(*) FILTER (WHERE x = 'NULL') AS word FROM unnest(CAST(:a AS text[])) AS t(x)"
        ),
        {"a": literal},
    ).one()
    assert (row.nulls, row.word) == (3, 1)


@pytest.mark.parametrize(
    "values",
    [
        [None],
        [None, None],
        ["NULL"],
        ["NULL", None],
        [None, "plain"],
        [None, ""],
        ["plain", "also"],
        ["a,b", "{c}", " d "],
        [None, *AWKWARD],
        [*DOCUMENTS, None],
        AWKWARD + DOCUMENTS,
        [],
    ],
)
def test_nullable_text_array_round_trips(db: Connection, values: list[str | None]) -> None:
    assert round_trip(db, nullable_text_array(values), "text[]") == values
    assert unnested(db, nullable_text_array(values), "text[]") == values


def test_nullable_text_array_of_aliases(db: Connection) -> None:
    """Payer aliases of received payments: present or None (returns carry none)."""
    aliases = ["anon-0123456789abcdef", None, "anon-fedcba9876543210"]
    assert round_trip(db, nullable_text_array(aliases), "text[]") == aliases


# ------------------------------------------------------------------ int_array


def test_int_array_bigint(db: Connection) -> None:
    values = [0, 1, -1, -(10**15), 10**15, 2**63 - 1, -(2**63), 42, -42]
    assert round_trip(db, int_array(values), "bigint[]") == values
    assert round_trip(db, int_array(iter(values)), "bigint[]") == values  # any iterable
    assert round_trip(db, int_array(v for v in values), "bigint[]") == values
    total = db.execute(
        text("SELECT sum(x) FROM unnest(CAST(:a AS bigint[])) AS t(x)"),
        {"a": int_array([10**15, -(10**15), 7, -3])},
    ).scalar_one()
    assert total == 4


def test_int_array_empty_and_single(db: Connection) -> None:
    assert int_array([]) == "{}"
    assert round_trip(db, int_array([]), "bigint[]") == []
    assert round_trip(db, int_array([-5]), "bigint[]") == [-5]
    assert round_trip(db, int_array(range(1000)), "bigint[]") == list(range(1000))


# ------------------------------------------------------------------ any_array


def test_any_array_uuids(db: Connection) -> None:
    values = [uuid.uuid4() for _ in range(5)] + [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)]
    assert round_trip(db, any_array(values), "uuid[]") == values
    assert round_trip(db, any_array([]), "uuid[]") == []
    found = db.execute(
        text("SELECT CAST(:one AS uuid) = ANY(CAST(:all AS uuid[]))"),
        {"one": str(values[2]), "all": any_array(values)},
    ).scalar_one()
    assert found is True


def test_any_array_dates(db: Connection) -> None:
    values = [date(2024, 2, 29), date(1970, 1, 1), date(9999, 12, 31), date(1, 1, 1)]
    assert round_trip(db, any_array(values), "date[]") == values
    assert round_trip(db, any_array([]), "date[]") == []


def test_any_array_numbers(db: Connection) -> None:
    values = [3, -(10**15), 10**15]
    assert round_trip(db, any_array(values), "bigint[]") == values


def test_arrays_zip_in_one_unnest(db: Connection) -> None:
    """The shape the batch statements use: several literals unnested side by side."""
    ids = [uuid.uuid4() for _ in range(3)]
    wallets = ['BKA1"x', "BKB1,y", "NULL"]
    aliases: list[str | None] = ["anon-1", None, "NULL"]
    amounts = [10**15, -1, 0]
    rows = db.execute(
        text(
            "SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:w AS text[]), "
            "CAST(:al AS text[]), CAST(:am AS bigint[])) AS t(id, wallet, alias, amount)"
        ),
        {
            "ids": any_array(ids),
            "w": text_array(wallets),
            "al": nullable_text_array(aliases),
            "am": int_array(amounts),
        },
    ).all()
    assert [tuple(r) for r in rows] == list(zip(ids, wallets, aliases, amounts, strict=True))
