"""Type hints -> JSON schema, Google-style docstring parsing, and argument checking.

The same hint logic serves both directions: describing a parameter to the model
(`json_schema_for`) and checking what the model sent back (`coerce`).
"""
from __future__ import annotations

import enum
import re
import types
import typing
from typing import Any, Literal, Union

_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}
_JSON_TYPE_OF = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """`Optional[X]` / `X | None` -> (X, True); anything else -> (hint, False)."""
    origin = typing.get_origin(hint)
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1 or len(args) == len(typing.get_args(hint)):
            raise TypeError(f"unions are not supported (only Optional[X]): {hint!r}")
        return args[0], True
    return hint, False


def json_schema_for(hint: Any) -> dict:
    """The JSON schema for one type hint; TypeError if the hint is not supported."""
    inner, nullable = _split_optional(hint)
    schema = _schema_for(inner)
    if nullable:
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        elif "type" not in schema:
            schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def _schema_for(hint: Any) -> dict:
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint is list:
        return {"type": "array"}
    if hint is dict:
        return {"type": "object"}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [m.value for m in hint]
        return _enum_schema(values)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Literal:
        return _enum_schema(list(args))
    if origin is list:
        return {"type": "array", "items": json_schema_for(args[0])} if args else {"type": "array"}
    if origin is dict:
        if args and args[0] is not str:
            raise TypeError(f"dict keys must be str in JSON: {hint!r}")
        return {"type": "object", "additionalProperties": json_schema_for(args[1])} if args else {"type": "object"}
    raise TypeError(f"unsupported type hint: {hint!r}")


def _enum_schema(values: list) -> dict:
    kinds = {_JSON_TYPE_OF.get(type(v)) for v in values}
    if None in kinds:
        raise TypeError(f"enum values must be str, int, float or bool: {values!r}")
    schema: dict = {"enum": values}
    if len(kinds) == 1:
        schema = {"type": kinds.pop(), "enum": values}
    return schema


# --- docstrings ---------------------------------------------------------------

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns?|Raises|Yields?|Examples?|Notes?|Note|See Also):\s*$")
_ARG_LINE = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


def parse_docstring(doc: str | None) -> tuple[str, dict[str, str]]:
    """(description, {arg name: description}) from a cleaned Google-style docstring.

    The description is the first paragraph, joined into one line.
    """
    if not doc:
        return "", {}
    lines = doc.strip().splitlines()
    first: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line.strip()):
            break
        first.append(line.strip())
    args: dict[str, str] = {}
    in_args, indent, current = False, None, None
    for line in lines:
        stripped = line.strip()
        if _SECTION.match(stripped) and len(line) - len(line.lstrip()) == 0:
            in_args = stripped.split(":")[0] in ("Args", "Arguments", "Parameters")
            indent, current = None, None
            continue
        if not in_args or not stripped:
            continue
        level = len(line) - len(line.lstrip())
        if level == 0:   # unindented text ends the section
            in_args = False
            continue
        if indent is None:
            indent = level
        match = _ARG_LINE.match(stripped)
        if level == indent and match:
            current = match.group(1)
            args[current] = match.group(2).strip()
        elif current is not None and level > indent:   # continuation line
            args[current] = f"{args[current]} {stripped}".strip()
    return " ".join(first), args


# --- checking what the model sent --------------------------------------------

def coerce(value: Any, hint: Any, where: str) -> Any:
    """Check `value` against `hint`, converting where unambiguous (e.g. "3" -> 3, str -> Enum).

    Raises ValueError naming `where` (e.g. "argument 'days'") when it does not fit.
    """
    inner, nullable = _split_optional(hint)
    if value is None:
        if nullable:
            return None
        raise ValueError(f"{where} must not be null")
    return _coerce(value, inner, where)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            return int(value)
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)   # e.g. calculator(expression=4)
    elif isinstance(hint, type) and issubclass(hint, enum.Enum):
        for member in hint:
            if value == member.value or value == member.name:
                return member
        raise ValueError(f"{where} must be one of {[m.value for m in hint]}, got {value!r}")
    elif typing.get_origin(hint) is Literal:
        if value in typing.get_args(hint):
            return value
        raise ValueError(f"{where} must be one of {list(typing.get_args(hint))}, got {value!r}")
    elif hint is list or typing.get_origin(hint) is list:
        if isinstance(value, list):
            args = typing.get_args(hint)
            return [coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else value
    elif hint is dict or typing.get_origin(hint) is dict:
        if isinstance(value, dict):
            args = typing.get_args(hint)
            return {k: coerce(v, args[1], f"{where}[{k!r}]") for k, v in value.items()} if args else value
    else:
        return value   # a hint we do not know how to check (hand-built tools): let the function decide
    expected = json_schema_for(hint).get("type", "value")
    raise ValueError(f"{where} must be of type {expected}, got {value!r}")
