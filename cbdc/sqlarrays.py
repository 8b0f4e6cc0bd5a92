"""Array parameters as PostgreSQL array literals, for set-based statements over thousands of rows.

psycopg adapts a Python list element by element in Python (escaping each string with a regular
expression); for the batch paths that was most of their time. These build the literal with one
`join`, and the statement casts it: `unnest(CAST(:ids AS bigint[]))`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def int_array(values: Iterable[int]) -> str:
    return "{" + ",".join(map(str, values)) + "}"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def text_array(values: Sequence[str]) -> str:
    """Every element quoted (backslashes and quotes escaped, as in JSON documents)."""
    if any('"' in v or "\\" in v for v in values):
        return "{" + ",".join(map(_quoted, values)) + "}"
    return '{"' + '","'.join(values) + '"}' if values else "{}"


def nullable_text_array(values: Sequence[str | None]) -> str:
    if values and all(v is None for v in values):
        return "{" + ",".join(["NULL"] * len(values)) + "}"
    if any(v is None for v in values):
        return "{" + ",".join("NULL" if v is None else _quoted(v) for v in values) + "}"
    return text_array(values)  # type: ignore[arg-type]


def any_array(values: list[Any]) -> str:
    """Elements whose str() needs no quoting: dates, uuids, numbers."""
    return "{" + ",".join(map(str, values)) + "}"
