"""`Tool`: a Python function plus the JSON schema a model needs to call it."""
from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import pydantic

from studio.tools.schema import arguments_model, json_schema, parse_docstring

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")   # what OpenAI accepts as a function name


@dataclass
class Tool:
    """A function tool: name, description, JSON-schema parameters and the function to run.

    `arguments` is the pydantic model the parameters were generated from; the
    runner checks a model's arguments with it.
    """
    name: str
    description: str
    parameters: dict
    function: Callable[..., Any]
    arguments: type[pydantic.BaseModel] | None = field(default=None, repr=False, compare=False)

    def responses_schema(self) -> dict:
        """The tool as the OpenAI Responses API wants it (`tools=[...]`).

        `strict` is required there; when omitted the API makes the tool strict and forces every
        optional argument to be filled. Our schemas are not strict-ready, so say False.
        """
        return {"type": "function", "name": self.name, "description": self.description,
                "parameters": self.parameters, "strict": False}

    def chat_schema(self) -> dict:
        """The tool as chat.completions wants it (`tools=[...]`)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description,
                             "parameters": self.parameters}}


def tool_from_function(fn: Callable[..., Any], name: str | None = None) -> Tool:
    """Make a Tool from a typed function.

    The parameters' JSON schema comes from the type hints through pydantic (str,
    int, float, bool, lists, dicts, sets, Literal, Enum, unions, Optional, dates,
    pydantic models...); the description from the docstring's first paragraph,
    and per-argument descriptions from its Google-style "Args:" section.
    Parameters with a default are not required.

    Define tools as plain module-level functions: those run in a worker process
    that a timeout can stop (see `studio.tools.runner`).

    Raises:
        TypeError: a parameter has no annotation, a type with no JSON form, or is *args/**kwargs.
        ValueError: the name is not a valid function-tool name.
    """
    tool_name = name or getattr(fn, "__name__", "")
    if not _NAME.match(tool_name):
        raise ValueError(f"invalid tool name {tool_name!r}: use 1-64 letters, digits, '_' or '-'")
    description, arg_docs = parse_docstring(inspect.getdoc(fn))
    model = arguments_model(fn, arg_docs, name=tool_name)
    return Tool(name=tool_name, description=description or tool_name,
                parameters=json_schema(model), function=fn, arguments=model)
