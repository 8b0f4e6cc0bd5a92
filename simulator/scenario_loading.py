"""Reading a scenario file: TOML to a checked `Scenario`, and errors a researcher can act on.

Checking is strict because a typo must not pass silently: an unknown key, a value of the wrong
type (`seed = "42"`, `share = true`) or an impossible combination is an error. `ScenarioError`
names the file and every bad field by its dotted path with list indexes, one per line, e.g.
`scenarios/x.toml: operators[1].class_mix: shares must sum to 1 (got 0.9)`.

The models' validators take the file's units, so build them from TOML data (`parse_scenario`,
`load_scenario`), not from already-converted minor units.
"""

from __future__ import annotations

import difflib
import re
import tomllib
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Final

from pydantic import BaseModel, ValidationError

from simulator.scenario import Scenario
from simulator.scenario_offline import SYNC_DISTRIBUTIONS
from simulator.scenario_values import DISTRIBUTIONS, EVENT_KINDS


class ScenarioError(ValueError):
    """A scenario file that cannot be used. `errors` holds (dotted path, message) pairs; the
    message has one line per error, each `<source>: <path>: <message>`."""

    def __init__(self, source: str, errors: Sequence[tuple[str, str]]) -> None:
        self.source = source
        self.errors = list(errors)
        lines = [f"{source}: {path}: {msg}" if path else f"{source}: {msg}" for path, msg in errors]
        super().__init__("\n".join(lines))


# --- loading -------------------------------------------------------------------------------

_TOML_LINE_RE: Final = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file. Raises ScenarioError naming the file."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError(source, [("", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(source, [("", f"cannot read: {exc}")]) from None
    return parse_scenario(text, source=source)


def parse_scenario(text: str, *, source: str = "<scenario>") -> Scenario:
    """Parse and check a scenario from TOML text. Raises ScenarioError naming `source`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_LINE_RE.search(message)
        where = f"line {found.group(1)}" if found else ""
        raise ScenarioError(source, [(where, f"invalid TOML: {message}")]) from None
    if "source_text" in data:  # a model field, but not a key of the file
        raise ScenarioError(source, [("source_text", _unknown_key("source_text", Scenario))])
    try:
        return Scenario.model_validate({**data, "source_text": text})
    except ValidationError as exc:
        raise ScenarioError(source, [_describe(e) for e in exc.errors()]) from None


# --- error messages ------------------------------------------------------------------------


def _file_keys(model: type[BaseModel]) -> list[str]:
    return [
        (field.alias or name) for name, field in model.model_fields.items() if name != "source_text"
    ]


def _unknown_key(key: str, model: type[BaseModel] | None) -> str:
    if model is None:
        return "unknown key"
    close = difflib.get_close_matches(key, _file_keys(model), n=1)
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    return f"unknown key (expected one of {', '.join(_file_keys(model))})"


def _unwrap(tp: Any) -> Any:
    """Strip Annotated and `X | None` down to the type that decides the next path step."""
    while True:
        if typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if typing.get_origin(tp) in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _union_member(tp: Any, tag: str) -> type[BaseModel] | None:
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return None
    for member in typing.get_args(tp):
        if isinstance(member, type) and issubclass(member, BaseModel):
            for field_name in ("kind", "distribution"):
                field = member.model_fields.get(field_name)
                if field is not None and typing.get_args(field.annotation) == (tag,):
                    return member
    return None


def _walk(loc: Sequence[str | int]) -> tuple[str, type[BaseModel] | None]:
    """Turn a pydantic error location into the file's dotted path (list indexes in brackets,
    union tags dropped) and the model that holds the last key (for unknown-key hints)."""
    path = ""
    tp: Any = Scenario
    parent: type[BaseModel] | None = None
    for item in loc:
        tp = _unwrap(tp)
        if isinstance(item, int):
            path += f"[{item}]"
            tp = typing.get_args(tp)[0] if typing.get_origin(tp) is list else None
            continue
        if item == "[key]":
            continue
        member = _union_member(tp, item)
        if member is not None:  # the discriminator's value: not part of the file's path
            tp = member
            continue
        path += f".{item}" if path else item
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            parent = tp
            fields = {(f.alias or n): f for n, f in tp.model_fields.items()}
            field = fields.get(item)
            tp = field.annotation if field is not None else None
        elif typing.get_origin(tp) is dict:
            parent = None
            tp = typing.get_args(tp)[1]
        else:
            parent, tp = None, None
    return path, parent


def _got(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


_TYPE_NAMES: Final = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "string_type": "a string",
    "bool_type": "true or false",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "an array",
}


def _describe(error: Any) -> tuple[str, str]:
    """One pydantic error as (file path, message)."""
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    path, parent = _walk(error["loc"])
    if kind == "missing":
        return path, "required"
    if kind == "extra_forbidden":
        key = str(error["loc"][-1])
        return path, _unknown_key(key, parent)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        field = ctx.get("discriminator", "'kind'").strip("'")
        noun, names = (
            ("event kind", EVENT_KINDS) if field == "kind" else ("distribution", DISTRIBUTIONS)
        )
        if path.endswith("sync_delay"):
            names = SYNC_DISTRIBUTIONS
        path = f"{path}.{field}" if path else field
        if kind == "union_tag_not_found":
            return path, f"required (one of {', '.join(names)})"
        return path, f"unknown {noun} {ctx.get('tag')!r} (expected one of {', '.join(names)})"
    if kind in _TYPE_NAMES:
        return path, f"expected {_TYPE_NAMES[kind]}, got {_got(value)}"
    if kind == "greater_than":
        return path, f"must be greater than {ctx['gt']} (got {_got(value)})"
    if kind == "greater_than_equal":
        return path, f"must be at least {ctx['ge']} (got {_got(value)})"
    if kind == "less_than":
        return path, f"must be less than {ctx['lt']} (got {_got(value)})"
    if kind == "less_than_equal":
        return path, f"must be at most {ctx['le']} (got {_got(value)})"
    if kind == "finite_number":
        return path, f"must be a finite number (got {_got(value)})"
    if kind == "too_short":
        return (
            path,
            f"needs at least {ctx['min_length']} entr{'y' if ctx['min_length'] == 1 else 'ies'}",
        )
    if kind == "too_long":
        return path, f"at most {ctx['max_length']} entries (got {ctx.get('actual_length')})"
    if kind == "literal_error":
        return path, f"expected {ctx.get('expected')}, got {_got(value)}"
    message = str(error["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return path, message


__all__ = ["ScenarioError", "load_scenario", "parse_scenario"]
