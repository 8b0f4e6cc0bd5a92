"""JSON that means one thing: objects with a repeated key are refused.

`json.loads` keeps the last of two equal keys; another parser may keep the first. A signed body
or a signed order with `{"amount": 1, "amount": 100000}` could then mean one amount to the party
that checked it and another to the party that acts on it, so every request body the services
parse goes through `loads_unique` (see `cbdc.web.auth.StrictJSONRoute`).

JSON nested deeper than the parser's recursion allows (`[[[[...]]]]` a hundred thousand deep) is
refused 422 `validation_error`, as malformed JSON is, instead of a RecursionError (a 500).
"""

from __future__ import annotations

import json
from typing import Any

from cbdc.errors import ValidationFailed


class JSONTooDeep(ValidationFailed):
    code = "validation_error"  # what malformed JSON gets (FastAPI's own parse error)
    title = "Request is not valid"


class DuplicateJSONKey(ValidationFailed):
    code = "duplicate_json_key"
    title = "A JSON object repeats a key"


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateJSONKey(f"key {key[:64]!r} appears more than once in an object")
            seen.add(key)
    return result


def loads_unique(raw: bytes | str) -> Any:
    """`json.loads`, refusing (`DuplicateJSONKey`, 422) an object that repeats a key and
    (`JSONTooDeep`, 422) nesting too deep to parse."""
    try:
        return json.loads(raw, object_pairs_hook=_unique)
    except RecursionError:
        raise JSONTooDeep("body: JSON nested too deeply") from None
