"""The values of an escrow or voucher event row, shared by their repositories."""

from __future__ import annotations

import json
from typing import Any

# The columns an event may leave out (NULL when not given).
OPTIONAL = ("nonce", "signature", "order_hash", "order_id", "entry_id")


def event_values(row: dict[str, Any], *optional: str) -> dict[str, Any]:
    """`row` with every optional column (`OPTIONAL` and `optional`) None when not given, and
    `body` as JSON text (None without one)."""
    values = {**dict.fromkeys((*optional, *OPTIONAL)), **row}
    body = values.pop("body", None)
    values["body"] = json.dumps(body) if body is not None else None
    return values
