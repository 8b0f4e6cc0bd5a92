"""The report's section on offline use: `summary.json`'s `offline` figures (written by
`simulator/offline_metrics.py`) as a table a researcher reads first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from simulator.report_format import format_value, md_table, money_format


def offline_section(summary: Mapping[str, Any]) -> str | None:
    """Markdown for `## Offline payments`, or None when the run had no offline use."""
    offline = summary.get("offline")
    if not isinstance(offline, Mapping):
        return None
    decimals, currency = money_format(summary)

    def money(value: Any) -> str:
        return format_value(value, amount=True, decimals=decimals, currency=currency)

    def count(value: Any) -> str:
        return format_value(value, amount=False)

    times = offline.get("time_to_detection_hours") or {}

    def hours(key: str) -> str:
        value = times.get(key)
        return "—" if value is None else f"{float(value):,.1f} h"

    rows: list[tuple[str, str]] = [
        (
            "devices (of which compromised)",
            f"{count(offline.get('devices'))} "
            f"({count(offline.get('compromised_devices'))}, attack: {offline.get('attack')})",
        ),
        ("offline payments", count(offline.get("payments"))),
        ("their value", money(offline.get("value"))),
        (
            "paid online instead (the payer's device refused)",
            count(offline.get("paid_online_instead")),
        ),
        ("device syncs", count(offline.get("syncs"))),
        ("double-spend attempts accepted by payees", count(offline.get("double_spend_attempts"))),
        (
            "double spends detected (devices revoked)",
            f"{count(offline.get('double_spends_detected'))} "
            f"({count(offline.get('devices_revoked'))})",
        ),
        (
            "time to detection: mean / median / max",
            f"{hours('mean')} / {hours('median')} / {hours('max')}",
        ),
    ]
    losses = offline.get("losses_by_operator") or {}
    recovered = offline.get("recovered_by_operator") or {}
    for code in sorted(set(losses) | set(recovered)):
        rows.append(
            (
                f"{code}: loss carried (recovered from payers' wallets)",
                f"{money(losses.get(code, 0))} ({money(recovered.get(code, 0))})",
            )
        )
    text = md_table(("figure", "run"), rows)
    refusals = offline.get("refusals") or {}
    if refusals:
        listed = ", ".join(f"`{reason}` {n:,}" for reason, n in sorted(refusals.items()))
        text += f"\n\nRefusals on the devices and at the operators: {listed}."
    return text


__all__ = ["offline_section"]
