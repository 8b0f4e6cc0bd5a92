"""The web wallet's own modules (operators/web/static/money.js, signing.js) run in Node against
the Python they must agree with: amounts typed in major units are read as `cbdc.money` reads
them (or refused, never misread), amounts are shown as `format_amount` shows them, and orders
are signed over the same canonical JSON as `cbdc.crypto.canonical_json`. Skipped without Node
(the browser test covers the page itself)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cbdc.crypto import canonical_json
from cbdc.money import format_amount, parse_amount

STATIC = Path(__file__).resolve().parent.parent / "operators" / "web" / "static"
NODE = shutil.which("node")
pytestmark = pytest.mark.skipif(NODE is None, reason="Node.js is not installed")

SCRIPT = """
import { parseAmount, formatAmount } from "%(static)s/money.js";
import { canonicalJson } from "%(static)s/signing.js";
const input = JSON.parse(await new Promise((done) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => done(text));
}));
const parsed = input.parse.map(([text, decimals]) => {
  try { return parseAmount(text, decimals); } catch { return null; }
});
const formatted = input.format.map(([minor, decimals, currency]) =>
  formatAmount(minor, decimals, currency));
const canonical = input.canonical.map((value) => canonicalJson(value));
process.stdout.write(JSON.stringify({ parsed, formatted, canonical }));
"""

AMOUNTS = [
    "12.3", "12.34", "0.01", "0.001", "1,000", "1,234,567.89", "12,34", "1,2", "1,00",
    "1 000", "12,345,67", "-5", "+5", "1e3", "Infinity", "NaN", "1_000", ".5", "12.",
    "0", "0.00", "0012.30", " 7 ", "", "abc", "\u0661\u0662", "\uff11\uff12", "1.2.3",
    "90071992547409.91", "90071992547409.92", "99999999999999999999",
]  # fmt: skip


def run_node(payload: dict[str, Any]) -> dict[str, Any]:
    assert NODE is not None
    done = subprocess.run(
        [NODE, "--input-type=module", "-e", SCRIPT % {"static": STATIC.as_posix()}],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def python_parse(text: str, decimals: int) -> int | None:
    try:
        minor = parse_amount(text, decimals)
    except ValueError:
        return None
    return minor if minor <= 2**53 - 1 else None  # the page refuses what JS cannot hold


def test_amounts_are_read_as_python_reads_them_or_refused() -> None:
    cases = [(text, decimals) for text in AMOUNTS for decimals in (0, 2, 3)]
    parsed = run_node({"parse": cases, "format": [], "canonical": []})["parsed"]
    for (text, decimals), got in zip(cases, parsed, strict=True):
        assert got == python_parse(text, decimals), (text, decimals)
    by_case = dict(zip(cases, parsed, strict=True))
    assert by_case[("12.3", 2)] == 1230 and by_case[("1,000", 2)] == 100_000
    for misread in ("12,34", "1,2", "1 000", "0.001", "-5", "Infinity"):
        assert by_case[(misread, 2)] is None, misread


def test_amounts_are_shown_as_python_shows_them() -> None:
    cases = [
        (minor, decimals, currency)
        for minor in (0, 1, -1, 5, 99, 1234, -123456789, 2**53 - 1)
        for decimals, currency in ((0, "JPY"), (2, "CNY"), (3, "BHD"))
    ]
    formatted = run_node({"parse": [], "format": cases, "canonical": []})["formatted"]
    assert formatted == [format_amount(*case) for case in cases]


def test_orders_are_signed_over_pythons_canonical_json() -> None:
    values: list[Any] = [
        {"b": 1, "a": {"é": "x", "\U0001f600": 1, "\uffff": 2, "z": [1, {"y": "\u2028\x7f"}]}},
        {"memo": 'quotes " and \\ \x00\x1f\n\t <>&\u0085\u00ad\ufeff', "amount": 2**53 - 1},
        {"type": "payment", "nested": {"k": [True, None, False, -7]}, "": ""},
    ]
    canonical = run_node({"parse": [], "format": [], "canonical": values})["canonical"]
    assert canonical == [canonical_json(v).decode() for v in values]
