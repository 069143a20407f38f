"""Chat Completions (`POST /v1/chat/completions`), streamed as chunks ending in `data: [DONE]`.

Parallel tool calls stream like the real API: per call, a first chunk with index, id, type
and name, then argument fragments carrying only the index. Model "fail-midstream" sends a
few content chunks and then drops the connection. A reply longer than the request's
max_completion_tokens (or max_tokens, or the fake's output_token_limit), counted in words,
is cut there with finish_reason "length".
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from tests.fakes.fake_openai.brain import Plan, estimate_tokens, plan_reply, split_json, split_words
from tests.fakes.fake_openai.errors import FakeAPIError
from tests.fakes.fake_openai.server import FAIL_MIDSTREAM, FAIL_MIDSTREAM_ERROR

if TYPE_CHECKING:
    from tests.fakes.fake_openai.server import FakeOpenAI


class StreamCut(Exception):
    """Raised inside a streaming body: uvicorn then aborts the connection mid-response."""


def routes(fake: "FakeOpenAI") -> list[Route]:
    """The Starlette routes, bound to `fake`'s state."""

    async def create(request: Request):
        body = await fake.begin(request) or {}
        model = fake.check_model(body.get("model"))
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise FakeAPIError(400, "Invalid 'messages': empty array. Expected an array with minimum "
                                    "length 1.", param="messages")
        fake.check_length(sum(len(_text(m)) for m in messages), "messages")
        plan = _plan(body, messages)
        cap = fake.cap_for(body.get("max_completion_tokens", body.get("max_tokens")))
        words = split_words(plan.text) if plan.text else []
        cut = cap is not None and len(words) > cap
        if cut:   # the limit comes before any tool call would
            plan = Plan(text="".join(words[:cap]))
        chat_id = f"chatcmpl-{fake.new_id('c')[2:]}"
        calls = [{"id": fake.new_id("call"), "type": "function",
                  "function": {"name": c.name, "arguments": c.arguments}} for c in plan.calls]
        prompt_tokens = sum(estimate_tokens(_text(m)) for m in messages)
        completion_tokens = estimate_tokens(plan.text + json.dumps(calls))
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens}
        finish = "length" if cut else "tool_calls" if calls else "stop"
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            chunks = _chunks(fake, chat_id, model, plan.text, calls, finish, usage if include_usage else None)
            return StreamingResponse(chunks, media_type="text/event-stream")
        message = {"role": "assistant", "content": plan.text or None, "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = calls
        return JSONResponse({"id": chat_id, "object": "chat.completion", "created": int(time.time()),
                             "model": model, "system_fingerprint": "fp_fake", "usage": usage,
                             "choices": [{"index": 0, "message": message, "logprobs": None,
                                          "finish_reason": finish}]})

    return [Route("/v1/chat/completions", create, methods=["POST"])]


def _text(message: dict) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return content


def _plan(body: dict, messages: list[dict]) -> Plan:
    tools = body.get("tools") or []
    functions = {(t.get("function") or {}).get("name") for t in tools if t.get("type") == "function"}
    if messages[-1].get("role") == "tool":
        # Every tool message must answer a tool_call of the assistant message before it.
        last_assistant = max(i for i, m in enumerate(messages) if m.get("role") == "assistant")
        asked = {c.get("id") for c in messages[last_assistant].get("tool_calls") or []}
        results = [m for m in messages[last_assistant + 1:] if m.get("role") == "tool"]
        for m in results:
            if m.get("tool_call_id") not in asked:
                raise FakeAPIError(400, "Invalid parameter: messages with role 'tool' must be a response "
                                        "to a preceeding message with 'tool_calls'.", param="messages")
        return plan_reply("", functions, False, [_text(m) for m in results])
    users = [_text(m) for m in messages if m.get("role") == "user"]
    return plan_reply(users[-1] if users else "", functions, False,
                      allow_tools=body.get("tool_choice", "auto") != "none")


async def _chunks(fake: "FakeOpenAI", chat_id: str, model: str, text: str, calls: list[dict],
                  finish: str, usage: dict | None) -> AsyncIterator[bytes]:
    created = int(time.time())

    def chunk(delta: dict | None, finish_reason: str | None = None, **extra) -> bytes:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None,
                                             "finish_reason": finish_reason}]
        data = {"id": chat_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_fake", "choices": choices, **extra}
        return f"data: {json.dumps(data)}\n\n".encode()

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    for n, word in enumerate(split_words(text) if text else []):
        if model in (FAIL_MIDSTREAM, FAIL_MIDSTREAM_ERROR) and n == 2:
            raise StreamCut("fail-midstream: dropping the connection")
        if fake.delta_delay:
            await asyncio.sleep(fake.delta_delay)
        yield chunk({"content": word})
    for index, call in enumerate(calls):
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"], "arguments": ""}}]})
        for piece in split_json(call["function"]["arguments"]):
            if fake.delta_delay:
                await asyncio.sleep(fake.delta_delay)
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, finish)
    if usage is not None:
        yield chunk(None, usage=usage)
    yield b"data: [DONE]\n\n"
