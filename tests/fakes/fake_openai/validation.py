"""Checking request bodies against the installed openai SDK's own request types.

The SDK describes every request body as a TypedDict (e.g. `ResponseCreateParams`), written
from OpenAI's API specification. Validating what the fake receives against them (strictly:
unknown fields refused, as the real API does) keeps the fake from accepting a request that
OpenAI would refuse, e.g. a function tool without `strict`.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from openai.types.chat import CompletionCreateParams
from openai.types.conversations import ConversationCreateParams, ConversationUpdateParams, ItemCreateParams
from openai.types.fine_tuning import JobCreateParams
from openai.types.responses import ResponseCreateParams
from openai.types import VectorStoreCreateParams, VectorStoreSearchParams
from openai.types.vector_stores import FileBatchCreateParams
from pydantic import ConfigDict, TypeAdapter, ValidationError

from tests.fakes.fake_openai.errors import FakeAPIError

# The request type of each endpoint (method, path pattern).
REQUEST_TYPES: list[tuple[str, re.Pattern, Any]] = [
    ("POST", re.compile(r"/v1/responses$"), ResponseCreateParams),
    ("POST", re.compile(r"/v1/chat/completions$"), CompletionCreateParams),
    ("POST", re.compile(r"/v1/conversations$"), ConversationCreateParams),
    ("POST", re.compile(r"/v1/conversations/[^/]+$"), ConversationUpdateParams),
    ("POST", re.compile(r"/v1/conversations/[^/]+/items$"), ItemCreateParams),
    ("POST", re.compile(r"/v1/fine_tuning/jobs$"), JobCreateParams),
    ("POST", re.compile(r"/v1/vector_stores$"), VectorStoreCreateParams),
    ("POST", re.compile(r"/v1/vector_stores/[^/]+/file_batches$"), FileBatchCreateParams),
    ("POST", re.compile(r"/v1/vector_stores/[^/]+/search$"), VectorStoreSearchParams),
]
# Fields of the SDK's types that travel in the query string, not in the body.
QUERY_FIELDS = {ItemCreateParams: {"include"}}
_CLASS_NAME = re.compile(r"[A-Z]|-")   # pydantic puts union member names into error locations


@lru_cache(maxsize=None)
def _adapter(request_type: Any) -> TypeAdapter:
    # Wrapped in a list: pydantic takes a config for a list, not for a TypedDict itself.
    return TypeAdapter(list[request_type], config=ConfigDict(extra="forbid"))


def request_type_for(method: str, path: str) -> Any | None:
    for m, pattern, request_type in REQUEST_TYPES:
        if m == method and pattern.search(path):
            return request_type
    return None


def check_request(method: str, path: str, body: Any) -> None:
    """Raise the 400 OpenAI would send if `body` is not a valid request for this endpoint."""
    request_type = request_type_for(method, path)
    if request_type is None:
        return
    if not isinstance(body, dict):
        raise FakeAPIError(400, "The request body must be a JSON object.", code="invalid_type")
    unknown_query = QUERY_FIELDS.get(request_type, set()) & set(body)
    if unknown_query:
        name = sorted(unknown_query)[0]
        raise FakeAPIError(400, f"Unknown parameter: '{name}'.", code="unknown_parameter", param=name)
    try:
        [validated] = _adapter(request_type).validate_python([body])
        _drain(validated, ())
    except ValidationError as exc:   # its locations start with the list's index 0
        raise _as_api_error([dict(e, loc=tuple(e["loc"])[1:]) for e in exc.errors()], ()) from None
    except _NestedError as exc:
        raise _as_api_error(exc.errors, exc.prefix) from None


class _NestedError(Exception):
    def __init__(self, errors: list[dict], prefix: tuple):
        super().__init__("nested validation error")
        self.errors, self.prefix = errors, prefix


def _drain(value: Any, path: tuple) -> Any:
    """Validate what pydantic left lazy. Fields typed `Iterable[...]` (the SDK's lists: tools,
    input items, messages) come back as validating iterators that check nothing until read."""
    if isinstance(value, dict):
        for key, item in value.items():
            value[key] = _drain(item, path + (key,))
        return value
    if isinstance(value, (str, bytes, int, float, bool)) or value is None:
        return value
    if isinstance(value, list):
        return [_drain(item, path + (i,)) for i, item in enumerate(value)]
    if hasattr(value, "__iter__"):
        items = []
        iterator = iter(value)
        while True:
            try:
                item = next(iterator)
            except StopIteration:
                break
            except ValidationError as exc:   # its locations start with the item's index
                raise _NestedError(exc.errors(), path) from None
            items.append(_drain(item, path + (len(items),)))
        return items
    return value


def _as_api_error(errors: list[dict], prefix: tuple) -> FakeAPIError:
    """The 400 OpenAI sends, worded from the most telling of pydantic's errors."""
    error = _most_telling(errors)
    param = _param(prefix + tuple(error["loc"]))
    kind = error["type"]
    if kind == "missing":
        return FakeAPIError(400, f"Missing required parameter: '{param}'.", code="missing_required_parameter",
                            param=param)
    if kind == "extra_forbidden":
        return FakeAPIError(400, f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param)
    return FakeAPIError(400, f"Invalid value for '{param}': {error['msg']}.", code="invalid_value", param=param)


def _most_telling(errors: list[dict]) -> dict:
    """Pydantic reports one error list per union member tried. A member whose `type` (or
    `role`, `stream`) did not match is simply the wrong member: prefer errors from the others."""
    wrong_members = set()
    for e in errors:
        loc = tuple(e["loc"])
        if e["type"] in ("literal_error", "union_tag_invalid") and loc and loc[-1] in ("type", "role", "stream"):
            wrong_members.add(_member(loc))
    telling = [e for e in errors if _member(tuple(e["loc"])) not in wrong_members]
    return (telling or errors)[0]


def _member(loc: tuple) -> tuple:
    """The union members named along an error location (its path without the field names)."""
    return tuple(part for part in loc if isinstance(part, str) and _CLASS_NAME.search(part))


def _param(loc: tuple) -> str:
    """An error location as OpenAI writes a param, e.g. `tools[0].strict`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _CLASS_NAME.search(part):
            out += ("." if out else "") + part
    return out
