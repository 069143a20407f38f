"""A function's parameters as a pydantic model: its JSON schema for the model, and checking what the model sent.

One pydantic model per tool serves both directions, so the schema a model sees
and the checks its arguments pass cannot drift apart:

    model = arguments_model(fn, arg_docs)       # from the signature and type hints
    parameters = json_schema(model)             # for OpenAI function tools
    kwargs = validate_arguments(model, {...})   # coerced ("3" -> 3), or ValueError
"""
from __future__ import annotations

import inspect
import re
import typing
import warnings
from typing import Any, Callable

import pydantic
from pydantic.json_schema import PydanticJsonSchemaWarning

_MAX_SHOWN_INPUT = 60   # characters of a wrong value quoted back to the model


def arguments_model(fn: Callable[..., Any], arg_docs: dict[str, str] | None = None,
                    name: str | None = None) -> type[pydantic.BaseModel]:
    """A pydantic model with one field per parameter of `fn`.

    Field types come from the type hints, descriptions from `arg_docs`, and a
    parameter with a default is optional. Unknown arguments are refused; numbers
    sent for a str parameter become text (models write `expression=4`).

    Raises:
        TypeError: a parameter has no annotation, is *args/**kwargs or positional-only,
            or has a type pydantic cannot describe as JSON.
    """
    name = name or getattr(fn, "__name__", "tool")
    arg_docs = arg_docs or {}
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:   # e.g. a forward reference that does not resolve
        raise TypeError(f"{name}: cannot read type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    for index, param in enumerate(inspect.signature(fn).parameters.values()):
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{name}: *args/**kwargs are not supported ({param.name})")
        if param.kind is param.POSITIONAL_ONLY:
            raise TypeError(f"{name}: positional-only parameters are not supported ({param.name})")
        if param.name not in hints:
            raise TypeError(f"{name}: parameter {param.name!r} has no type annotation")
        default = ... if param.default is param.empty else param.default
        # Fields get neutral names and the parameter name as alias, so a parameter
        # called "schema", "copy" or "model_x" cannot clash with BaseModel's own names.
        fields[f"arg{index}"] = (hints[param.name], pydantic.Field(
            default, alias=param.name, description=arg_docs.get(param.name)))
    config = pydantic.ConfigDict(extra="forbid", coerce_numbers_to_str=True, validate_by_name=False)
    try:
        model = pydantic.create_model(name, __config__=config, **fields)
        json_schema(model)   # fail now, at registration, not when a model first asks
    except (pydantic.PydanticUserError, pydantic.PydanticSchemaGenerationError) as exc:
        raise TypeError(f"{name}: unsupported parameter type: {exc}") from None
    return model


def json_schema(model: type[pydantic.BaseModel]) -> dict:
    """The model's JSON schema as OpenAI function tools want it (Responses and Chat Completions).

    An object with `properties`, `required` and `additionalProperties: false`.
    Titles are dropped and `$ref`s inlined (small models read a flat schema
    best); only a recursive type keeps its `$defs`.
    """
    with warnings.catch_warnings():   # a default with no JSON form is just left out
        warnings.simplefilter("ignore", PydanticJsonSchemaWarning)
        schema = model.model_json_schema(by_alias=True)
    defs = schema.pop("$defs", {})
    recursive: set[str] = set()
    schema = _flatten(schema, defs, (), recursive)
    if recursive:
        schema["$defs"] = {key: _flatten(defs[key], defs, (key,), set()) for key in defs}
    schema.setdefault("properties", {})
    schema.setdefault("required", [])
    schema["additionalProperties"] = False
    return {key: schema[key] for key in ("type", "properties", "required", "additionalProperties", "$defs")
            if key in schema}


def _flatten(node: Any, defs: dict, expanding: tuple[str, ...], recursive: set[str]) -> Any:
    """`node` without schema titles and with `$ref`s replaced by their definitions."""
    if isinstance(node, list):
        return [_flatten(item, defs, expanding, recursive) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        key = ref.removeprefix("#/$defs/")
        if key in expanding:   # a type that contains itself: keep the reference
            recursive.add(key)
            return node
        rest = {k: v for k, v in node.items() if k != "$ref"}   # e.g. description, default
        return {**_flatten(defs[key], defs, (*expanding, key), recursive),
                **_flatten(rest, defs, expanding, recursive)}
    flat = {}
    for key, value in node.items():
        if key == "title":
            continue
        if key in ("properties", "$defs") and isinstance(value, dict):   # names, not keywords
            flat[key] = {name: _flatten(sub, defs, expanding, recursive) for name, sub in value.items()}
        else:
            flat[key] = _flatten(value, defs, expanding, recursive)
    return flat


def validate_arguments(model: type[pydantic.BaseModel], arguments: dict[str, Any]) -> dict[str, Any]:
    """The arguments checked and coerced against `model`, as keyword arguments for the function.

    Only the arguments given come back (the function applies its own defaults).

    Raises:
        ValueError: listing every wrong field, e.g. "missing required argument 'date';
            argument 'days': Input should be a valid integer, got 'soon'".
    """
    try:
        checked = model.model_validate(arguments)
    except pydantic.ValidationError as exc:
        raise ValueError(describe_errors(model, exc)) from None
    fields = type(checked).model_fields
    return {fields[key].alias or key: getattr(checked, key) for key in checked.model_fields_set}


def describe_errors(model: type[pydantic.BaseModel], error: pydantic.ValidationError) -> str:
    """A ValidationError in words a model can act on: one clause per wrong field."""
    expected = ", ".join(field.alias or key for key, field in model.model_fields.items()) or "none"
    problems = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        if item["type"] == "missing":
            problems.append(f"missing required argument {where!r}")
        elif item["type"] == "extra_forbidden":
            problems.append(f"unexpected argument {where!r} (expected arguments: {expected})")
        else:
            shown = repr(item.get("input"))
            if len(shown) > _MAX_SHOWN_INPUT:
                shown = shown[:_MAX_SHOWN_INPUT] + "..."
            problems.append(f"argument {where!r}: {item['msg']}, got {shown}")
    return "; ".join(problems)


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
