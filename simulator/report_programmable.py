"""The report's section on programmable money: `summary.json`'s `programmable` figures (written
by `simulator/programmable_metrics.py`): the stimulus and where it was spent, escrows."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.report_format import format_value, md_table, money_format


def programmable_section(summary: Mapping[str, Any]) -> str | None:
    """Markdown for `## Programmable money`, or None when the run had none."""
    block = summary.get("programmable")
    if not isinstance(block, Mapping) or not block:
        return None
    decimals, currency = money_format(summary)

    def money(value: Any) -> str:
        return format_value(value, amount=True, decimals=decimals, currency=currency)

    def ratio(value: Any) -> str:
        return "—" if value is None else f"{float(value):.4f}"

    parts: list[str] = []
    stimulus = block.get("stimulus")
    if isinstance(stimulus, Mapping):
        rows: list[tuple[str, str]] = [
            ("form", str(stimulus.get("form"))),
            ("households paid", format_value(stimulus.get("recipients"), amount=False)),
            ("paid to them", money(stimulus.get("paid"))),
            ("spent from vouchers", money(stimulus.get("voucher_spent"))),
            ("returned unspent at expiry", money(stimulus.get("expiry_returns"))),
            ("velocity during the voucher period", ratio(stimulus.get("velocity_during"))),
            ("velocity after it", ratio(stimulus.get("velocity_after"))),
        ]
        refused = stimulus.get("refused") or {}
        if refused:
            rows.append(("refused", ", ".join(f"{k}: {v}" for k, v in sorted(refused.items()))))
        parts += ["### Stimulus", "", md_table(("", ""), rows, right_from=99), ""]
        paid = stimulus.get("paid_to_merchants_by_category") or {}
        from_voucher = stimulus.get("voucher_spending_by_category") or {}
        if paid:
            cats = sorted(set(paid) | set(from_voucher))
            table = [(c, money(paid.get(c, 0)), money(from_voucher.get(c, 0))) for c in cats]
            parts += [
                "Payments to merchants by category over the run, and the part paid from vouchers:",
                "",
                md_table(("category", "paid to merchants", "of which from vouchers"), table),
                "",
            ]
    escrows = block.get("escrows")
    if isinstance(escrows, Mapping):
        rows = [
            ("escrows opened", format_value(escrows.get("opened"), amount=False)),
            ("released to payees", money(escrows.get("released"))),
            ("refunded to payers at the deadline", money(escrows.get("refunded"))),
        ]
        refused = escrows.get("release_refused") or {}
        if refused:
            text = ", ".join(f"{k}: {v}" for k, v in sorted(refused.items()))
            rows.append(("releases refused", text))
        parts += ["### Escrows", "", md_table(("", ""), rows, right_from=99), ""]
    return "\n".join(parts).rstrip() or None
