"""Array parameters as PostgreSQL array literals, for set-based statements over thousands of rows.

psycopg adapts a Python list element by element in Python (escaping each string with a regular
expression); for the batch paths that was most of their time. These build the literal with one
`join`, and the statement casts it: `unnest(CAST(:ids AS bigint[]))`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def int_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def text_array(values: list[str]) -> str | list[str]:
    """Every element quoted; falls back to psycopg's own adaptation if one holds a quote or a
    backslash (never for wallet ids, kinds, statuses or the engine's nonces)."""
    if any('"' in v or "\\" in v for v in values):
        return values
    return '{"' + '","'.join(values) + '"}' if values else "{}"


def nullable_text_array(values: list[str | None]) -> str | list[str | None]:
    if any(v is None for v in values):
        if not any(v is not None for v in values):
            return "{" + ",".join("NULL" for _ in values) + "}"
        return values
    return text_array(values)  # type: ignore[arg-type,return-value]


def any_array(values: list[Any]) -> str:
    """Elements whose str() needs no quoting: dates, uuids, numbers."""
    return "{" + ",".join(map(str, values)) + "}"
