"""`Tool`: a Python function plus the JSON schema a model needs to call it."""
from __future__ import annotations

import enum
import inspect
import json
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable

from studio.tools.schema import json_schema_for, parse_docstring

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")   # what OpenAI accepts as a function name


@dataclass
class Tool:
    """A function tool: name, description, JSON-schema parameters and the function to run."""
    name: str
    description: str
    parameters: dict
    function: Callable[..., Any]

    def responses_schema(self) -> dict:
        """The tool as the OpenAI Responses API wants it (`tools=[...]`)."""
        return {"type": "function", "name": self.name,
                "description": self.description, "parameters": self.parameters}

    def chat_schema(self) -> dict:
        """The tool as chat.completions wants it (`tools=[...]`)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description,
                             "parameters": self.parameters}}


def tool_from_function(fn: Callable[..., Any], name: str | None = None) -> Tool:
    """Make a Tool from a typed function.

    The parameters' JSON schema comes from the type hints (str, int, float, bool,
    list[X], dict, Literal[...], Optional[X] / X | None, Enum subclasses); the
    description from the docstring's first paragraph, and per-argument
    descriptions from its Google-style "Args:" section. Parameters with a
    default are not required.

    Raises:
        TypeError: a parameter has no annotation, an unsupported one, or is *args/**kwargs.
        ValueError: the name is not a valid function-tool name.
    """
    tool_name = name or getattr(fn, "__name__", "")
    if not _NAME.match(tool_name):
        raise ValueError(f"invalid tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-'")
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:   # e.g. a forward reference that does not resolve
        raise TypeError(f"{tool_name}: cannot read type hints: {exc}") from exc
    description, arg_docs = parse_docstring(inspect.getdoc(fn))

    properties: dict[str, dict] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{tool_name}: *args/**kwargs are not supported ({param.name})")
        if param.name not in hints:
            raise TypeError(f"{tool_name}: parameter {param.name!r} has no type annotation")
        try:
            schema = json_schema_for(hints[param.name])
        except TypeError as exc:
            raise TypeError(f"{tool_name}: parameter {param.name!r}: {exc}") from exc
        if param.name in arg_docs:
            schema["description"] = arg_docs[param.name]
        if param.default is param.empty:
            required.append(param.name)
        else:
            default = _json_default(param.default)
            if default is not _SKIP:
                schema["default"] = default
        properties[param.name] = schema

    parameters = {"type": "object", "properties": properties,
                  "required": required, "additionalProperties": False}
    return Tool(name=tool_name, description=description or tool_name,
                parameters=parameters, function=fn)


_SKIP = object()


def _json_default(value: Any) -> Any:
    """A default as the model should see it, or _SKIP when it has no JSON form."""
    if isinstance(value, enum.Enum):
        value = value.value
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return _SKIP
    return value
