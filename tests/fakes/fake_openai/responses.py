"""The Responses API (`POST /v1/responses`) and the Conversations API (`/v1/conversations`).

The streamed events follow the real order: response.created, response.in_progress, then per
output item: output_item.added, [content_part.added, output_text.delta..., output_text.done,
output_text.annotation.added..., content_part.done | function_call_arguments.delta..., .done |
code_interpreter_call.* events | file_search_call.in_progress, .searching, .completed],
output_item.done; finally response.completed (with usage), response.incomplete (a reply cut
at its token limit), or response.failed / error.

Like the real API, a response refuses to start while its conversation holds a function call
whose output was never sent (400 "No tool output found for function call ..."). A response
that fails part-way leaves its input in the conversation (the server had taken it).

With a `file_search` tool the model first searches its vector stores for the user's message
(a file_search_call item; its `results` only with include=["file_search_call.results"]), then
answers from the best passage with a `file_citation` annotation for its file, or says the
documents do not cover it (see `_answer_from`).
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.fakes.fake_openai import errors
from tests.fakes.fake_openai.brain import DIRECTIVE, Plan, estimate_tokens, plan_reply, split_json, split_words
from tests.fakes.fake_openai.errors import FakeAPIError
from tests.fakes.fake_openai.server import FAIL_MIDSTREAM, FAIL_MIDSTREAM_ERROR, FakeConversation
from tests.fakes.fake_openai.vector_stores import search_stores

if TYPE_CHECKING:
    from tests.fakes.fake_openai.server import FakeOpenAI

MAX_ITEMS_PER_CREATE = 20
MAX_SEARCHED_STORES = 2      # file_search's limit, as reported of the real API (not in the OpenAPI document)


def routes(fake: "FakeOpenAI") -> list[Route]:
    """The Starlette routes, bound to `fake`'s state."""
    api = _ResponsesAPI(fake)
    return [
        Route("/v1/responses", api.create_response, methods=["POST"]),
        Route("/v1/conversations", api.create_conversation, methods=["POST"]),
        Route("/v1/conversations/{cid}", api.get_conversation, methods=["GET"]),
        Route("/v1/conversations/{cid}", api.update_conversation, methods=["POST"]),
        Route("/v1/conversations/{cid}", api.delete_conversation, methods=["DELETE"]),
        Route("/v1/conversations/{cid}/items", api.list_items, methods=["GET"]),
        Route("/v1/conversations/{cid}/items", api.add_items, methods=["POST"]),
    ]


# --- item helpers --------------------------------------------------------------------

def normalize_input(fake: "FakeOpenAI", value: Any) -> list[dict]:
    """Input as the stored items it becomes (ids added, string content expanded)."""
    if isinstance(value, str):
        value = [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise FakeAPIError(400, "Invalid type for 'input': expected a string or an array.", param="input")
    items = []
    for raw in value:
        item = dict(raw)
        kind = item.setdefault("type", "message")
        if kind == "message":
            role = item.get("role", "user")
            part_type = "output_text" if role == "assistant" else "input_text"
            content = item.get("content", "")
            if isinstance(content, str):
                content = [{"type": part_type, "text": content}]
            content = [dict(p, annotations=[]) if p.get("type") == "output_text" else p for p in content]
            item.update(role=role, content=content, status="completed")
            item.setdefault("id", fake.new_id("msg"))
        elif kind == "function_call_output":
            item.update(status="completed")
            item.setdefault("id", fake.new_id("fco"))
        else:
            item.setdefault("id", fake.new_id("item"))
        items.append(item)
    return items


def item_text(item: dict) -> str:
    if item.get("type") == "message":
        return "".join(p.get("text", "") for p in item.get("content", []))
    if item.get("type") == "function_call_output":
        out = item.get("output", "")
        return out if isinstance(out, str) else json.dumps(out)
    return json.dumps(item)


def _without_conversations():
    # A chat-completions-only server (e.g. `transformers serve`) has no such route.
    return JSONResponse({"detail": "Not Found"}, status_code=404)


def _page(items: list[dict], has_more: bool = False) -> dict:
    return {"object": "list", "data": items, "has_more": has_more,
            "first_id": items[0]["id"] if items else "", "last_id": items[-1]["id"] if items else ""}


class _ResponsesAPI:
    def __init__(self, fake: "FakeOpenAI"):
        self.fake = fake

    # --- conversations -------------------------------------------------------------
    def _conversation(self, cid: str) -> FakeConversation:
        conv = self.fake.conversations.get(cid)
        if conv is None:
            raise FakeAPIError(404, f"Conversation with id '{cid}' not found.", param="conversation_id")
        return conv

    async def create_conversation(self, request: Request):
        if not self.fake.conversations_api:
            return _without_conversations()
        body = await self.fake.begin(request) or {}
        items = body.get("items") or []
        if len(items) > MAX_ITEMS_PER_CREATE:
            raise FakeAPIError(400, f"Invalid 'items': array too long. Expected at most "
                                    f"{MAX_ITEMS_PER_CREATE} items, got {len(items)}.", param="items")
        conv = FakeConversation(self.fake.new_id("conv"), int(time.time()), body.get("metadata") or {},
                                normalize_input(self.fake, items))
        self.fake.conversations[conv.id] = conv
        return JSONResponse(conv.to_json())

    async def get_conversation(self, request: Request):
        if not self.fake.conversations_api:
            return _without_conversations()
        await self.fake.begin(request)
        return JSONResponse(self._conversation(request.path_params["cid"]).to_json())

    async def update_conversation(self, request: Request):
        if not self.fake.conversations_api:
            return _without_conversations()
        body = await self.fake.begin(request) or {}
        conv = self._conversation(request.path_params["cid"])
        conv.metadata = body.get("metadata") or {}
        return JSONResponse(conv.to_json())

    async def delete_conversation(self, request: Request):
        if not self.fake.conversations_api:
            return _without_conversations()
        await self.fake.begin(request)
        conv = self._conversation(request.path_params["cid"])
        del self.fake.conversations[conv.id]
        return JSONResponse({"id": conv.id, "object": "conversation.deleted", "deleted": True})

    async def list_items(self, request: Request):
        if not self.fake.conversations_api:
            return _without_conversations()
        await self.fake.begin(request)
        conv = self._conversation(request.path_params["cid"])
        q = request.query_params
        items = list(conv.items) if q.get("order", "desc") == "asc" else list(reversed(conv.items))
        if q.get("after"):
            ids = [i["id"] for i in items]
            items = items[ids.index(q["after"]) + 1:] if q["after"] in ids else []
        limit = int(q.get("limit", 20))
        return JSONResponse(_page(items[:limit], has_more=len(items) > limit))

    async def add_items(self, request: Request):
        if not self.fake.conversations_api:
            return _without_conversations()
        body = await self.fake.begin(request) or {}
        conv = self._conversation(request.path_params["cid"])
        items = normalize_input(self.fake, body.get("items") or [])
        conv.items.extend(items)
        return JSONResponse(_page(items))

    # --- responses -----------------------------------------------------------------
    async def create_response(self, request: Request):
        body = await self.fake.begin(request) or {}
        model = self.fake.check_model(body.get("model"))
        conv_ref = body.get("conversation")
        conv = None
        if conv_ref:
            conv = self._conversation(conv_ref["id"] if isinstance(conv_ref, dict) else conv_ref)
        new_items = normalize_input(self.fake, body.get("input", []))
        history = conv.items if conv else []
        answered = {i.get("call_id") for i in history + new_items if i["type"] == "function_call_output"}
        for item in history:
            if item["type"] == "function_call" and item.get("call_id") not in answered:
                raise errors.dangling_call(item["call_id"])
        # truncation="auto" lets the server drop old conversation items; the new input must fit.
        counted = new_items if body.get("truncation") == "auto" else history + new_items
        self.fake.check_length(len(body.get("instructions") or "")
                               + sum(len(item_text(i)) for i in counted), "input")
        plan = self._plan(body, history + new_items, new_items)
        search = self._file_search(body, history + new_items, new_items)
        builder = _ResponseBuilder(self.fake, body, model, conv.id if conv else None, plan, search,
                                   input_tokens=sum(estimate_tokens(item_text(i)) for i in history + new_items),
                                   cap=self.fake.cap_for(body.get("max_output_tokens")))
        if body.get("stream"):
            return StreamingResponse(self._stream(builder, conv, new_items), media_type="text/event-stream")
        response = builder.final(builder.status)
        if conv:
            conv.items.extend(new_items + response["output"])
        return JSONResponse(response)

    def _file_search(self, body: dict, all_items: list[dict], new_items: list[dict]) -> dict | None:
        """With a file_search tool and a new user message: the search the model runs first
        (its query is the message without directives) and what it found."""
        tool = next((t for t in body.get("tools") or [] if t.get("type") == "file_search"), None)
        if tool is None or body.get("tool_choice") == "none" or any(i["type"] == "function_call_output"
                                                                   for i in new_items):
            return None
        if len(tool.get("vector_store_ids") or []) > MAX_SEARCHED_STORES:
            raise FakeAPIError(400, f"Invalid 'tools[].vector_store_ids': a maximum of {MAX_SEARCHED_STORES} "
                                    "vector stores is allowed.", param="tools", code="invalid_value")
        users = [item_text(i) for i in all_items if i["type"] == "message" and i["role"] == "user"]
        query = DIRECTIVE.sub("", users[-1] if users else "").strip()
        results = search_stores(self.fake, tool.get("vector_store_ids") or [], query,
                                tool.get("max_num_results") or 10)
        return {"query": query, "results": results}

    def _plan(self, body: dict, all_items: list[dict], new_items: list[dict]) -> Plan:
        tools = body.get("tools") or []
        functions = {t.get("name") for t in tools if t.get("type") == "function"}
        code_interpreter = any(t.get("type") == "code_interpreter" for t in tools)
        outputs = [i for i in new_items if i["type"] == "function_call_output"]
        known_calls = {i.get("call_id") for i in all_items if i.get("type") == "function_call"}
        for out in outputs:
            if out.get("call_id") not in known_calls:
                raise FakeAPIError(400, f"No tool call found for function call output with call_id "
                                        f"{out.get('call_id')}.", param="input")
        if outputs:
            return plan_reply("", functions, code_interpreter, [item_text(o) for o in outputs])
        user_texts = [item_text(i) for i in all_items if i["type"] == "message" and i["role"] == "user"]
        return plan_reply(user_texts[-1] if user_texts else "", functions, code_interpreter,
                          allow_tools=body.get("tool_choice", "auto") != "none")

    async def _stream(self, b: "_ResponseBuilder", conv: FakeConversation | None,
                      new_items: list[dict]) -> AsyncIterator[bytes]:
        yield b.event("response.created", response=b.final("in_progress", output=[]))
        yield b.event("response.in_progress", response=b.final("in_progress", output=[]))
        failing = b.model in (FAIL_MIDSTREAM, FAIL_MIDSTREAM_ERROR)
        for index, item in enumerate(b.items):
            async for chunk in b.stream_item(index, item, stop_after_deltas=2 if failing else None):
                yield chunk
            if failing:
                break
        if failing and conv:   # the server had taken the input before the model failed
            conv.items.extend(new_items)
        if b.model == FAIL_MIDSTREAM_ERROR:
            yield b.event("error", code="server_error", param=None,
                          message="The server had an error while processing your request.")
            return
        if failing:
            error = {"code": "server_error", "message": "The model failed to finish its response."}
            yield b.event("response.failed", response=b.final("failed", error=error))
            return
        response = b.final(b.status)
        if conv:   # the conversation keeps this turn's input and output items
            conv.items.extend(new_items + response["output"])
        yield b.event(f"response.{b.status}", response=response)


def _answer_from(results: list[dict], plan: Plan) -> tuple[Plan, list[dict]]:
    """The reply after a file search: the best passage's first sentence, citing its file (a
    `[[say X]]` directive's text instead, still citing it); with nothing found, "not covered"."""
    if plan.calls or plan.code:
        return plan, []
    if not results:
        return Plan(text="Your documents do not cover that."), []
    best = results[0]
    said = plan.text if not plan.text.startswith("You said: ") else ""
    text = said or f"According to {best['filename']}: {best['text'].split('. ')[0][:200].rstrip('.')}."
    return Plan(text=text), [{"type": "file_citation", "file_id": best["file_id"], "filename": best["filename"],
                              "index": len(text)}]


class _ResponseBuilder:
    """Builds one response's output items, its Response JSON and its SSE events."""

    def __init__(self, fake: "FakeOpenAI", body: dict, model: str, conv_id: str | None, plan: Plan,
                 search: dict | None, input_tokens: int, cap: int | None = None):
        self.fake, self.body, self.model, self.conv_id = fake, body, model, conv_id
        self.id = fake.new_id("resp")
        self.created_at = int(time.time())
        self.seq = 0
        self.input_tokens = input_tokens
        self.status = "completed"
        annotations: list[dict] = []
        if search is not None:
            plan, annotations = _answer_from(search["results"], plan)
        words = split_words(plan.text) if plan.text else []
        if cap is not None and len(words) > cap:   # cut at the token limit: text only, no calls
            plan = Plan(text="".join(words[:cap]), code=plan.code)
            self.status = "incomplete"
        include_logs = "code_interpreter_call.outputs" in (body.get("include") or [])
        self.items: list[dict] = []
        if search is not None:   # results only come back when asked for with `include`
            with_results = "file_search_call.results" in (body.get("include") or [])
            self.items.append({"id": fake.new_id("fs"), "type": "file_search_call", "status": "completed",
                               "queries": [search["query"]],
                               "results": [dict(r, attributes={}) for r in search["results"]] if with_results
                               else None})
        for run in plan.code:   # outputs are only returned when asked for with `include`
            self.items.append({"id": fake.new_id("ci"), "type": "code_interpreter_call", "status": "completed",
                               "code": run.code, "container_id": fake.new_id("cntr"),
                               "outputs": [{"type": "logs", "logs": run.logs}] if include_logs else None})
        if plan.text:
            self.items.append({"id": fake.new_id("msg"), "type": "message", "status": self.status,
                               "role": "assistant",
                               "content": [{"type": "output_text", "text": plan.text,
                                            "annotations": annotations if self.status == "completed" else [],
                                            "logprobs": []}]})
        for call in plan.calls:
            self.items.append({"id": fake.new_id("fc"), "type": "function_call", "status": "completed",
                               "call_id": fake.new_id("call"), "name": call.name, "arguments": call.arguments})

    def final(self, status: str, output: list | None = None, error: dict | None = None) -> dict:
        """The Response object as of `status`."""
        output = self.items if output is None else output
        out_tokens = sum(estimate_tokens(json.dumps(i)) for i in output)
        usage = None if status == "in_progress" else {
            "input_tokens": self.input_tokens, "output_tokens": out_tokens,
            "total_tokens": self.input_tokens + out_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0}}
        b = self.body
        return {"id": self.id, "object": "response", "created_at": self.created_at, "status": status,
                "background": False, "error": error,
                "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
                "instructions": b.get("instructions"), "max_output_tokens": b.get("max_output_tokens"),
                "model": self.model, "output": output, "parallel_tool_calls": True,
                "previous_response_id": None, "reasoning": {"effort": None, "summary": None},
                "store": True, "temperature": 1.0, "text": {"format": {"type": "text"}},
                "tool_choice": b.get("tool_choice", "auto"), "tools": b.get("tools") or [], "top_p": 1.0,
                "truncation": b.get("truncation", "disabled"), "usage": usage, "user": None,
                "metadata": b.get("metadata") or {},
                "conversation": {"id": self.conv_id} if self.conv_id else None,
                "completed_at": int(time.time()) if status == "completed" else None}

    def event(self, type_: str, **payload) -> bytes:
        data = {"type": type_, **payload, "sequence_number": self.seq}
        self.seq += 1
        return f"event: {type_}\ndata: {json.dumps(data)}\n\n".encode()

    async def _pause(self) -> None:
        if self.fake.delta_delay:
            await asyncio.sleep(self.fake.delta_delay)

    async def stream_item(self, index: int, item: dict, stop_after_deltas: int | None) -> AsyncIterator[bytes]:
        """Events for one output item; stops early (no .done events) after N deltas if asked."""
        ref = {"item_id": item["id"], "output_index": index}
        kind = item["type"]
        if kind == "message":
            text = item["content"][0]["text"]
            yield self.event("response.output_item.added", output_index=index,
                             item=dict(item, status="in_progress", content=[]))
            empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield self.event("response.content_part.added", **ref, content_index=0, part=empty_part)
            for n, word in enumerate(split_words(text)):
                if stop_after_deltas is not None and n >= stop_after_deltas:
                    return
                await self._pause()
                yield self.event("response.output_text.delta", **ref, content_index=0, delta=word, logprobs=[])
            for n, annotation in enumerate(item["content"][0]["annotations"]):
                yield self.event("response.output_text.annotation.added", **ref, content_index=0,
                                 annotation_index=n, annotation=annotation)
            yield self.event("response.output_text.done", **ref, content_index=0, text=text, logprobs=[])
            yield self.event("response.content_part.done", **ref, content_index=0, part=item["content"][0])
        elif kind == "function_call":
            yield self.event("response.output_item.added", output_index=index,
                             item=dict(item, status="in_progress", arguments=""))
            for piece in split_json(item["arguments"]):
                await self._pause()
                yield self.event("response.function_call_arguments.delta", **ref, delta=piece)
            yield self.event("response.function_call_arguments.done", **ref, name=item["name"],
                             arguments=item["arguments"])
        elif kind == "file_search_call":
            yield self.event("response.output_item.added", output_index=index,
                             item=dict(item, status="in_progress", results=None))
            for stage in ("in_progress", "searching", "completed"):
                yield self.event(f"response.file_search_call.{stage}", **ref)
        elif kind == "code_interpreter_call":
            yield self.event("response.output_item.added", output_index=index,
                             item=dict(item, status="in_progress", code="", outputs=None))
            yield self.event("response.code_interpreter_call.in_progress", **ref)
            for piece in split_words(item["code"]):
                yield self.event("response.code_interpreter_call_code.delta", **ref, delta=piece)
            yield self.event("response.code_interpreter_call_code.done", **ref, code=item["code"])
            yield self.event("response.code_interpreter_call.interpreting", **ref)
            yield self.event("response.code_interpreter_call.completed", **ref)
        yield self.event("response.output_item.done", output_index=index, item=item)
