"""Fixtures for the provider contract tests: one fake OpenAI server, one case per provider.

To put another provider under the same contract, add a factory to CASES. What a turn gave
the model is read from the fake server's requests, or, for the embedded model (no server
behind it, `fake=None`), from the chat messages its provider handed to generation. Tests
that provoke server errors skip without a server; tests needing tools skip on the
provider's capabilities.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest

from studio.providers.base import Provider
from studio.providers.compatible import CompatibleProvider, clear_models_cache
from studio.providers.local import LocalProvider
from studio.providers.openai_provider import OpenAIProvider
from tests.fakes.fake_openai import FakeOpenAI, RecordedRequest

API_KEY = "sk-test-contract-S3CRET-0123456789"


@dataclass
class ProviderCase:
    """A provider under test, how to build variants of it, and how to read what it sent."""
    name: str
    factory: Callable[..., Provider]       # factory(**overrides) -> a fresh provider
    fake: FakeOpenAI | None = None         # the server behind it, None if there is none
    endpoint: str = ""                     # the path its turns are POSTed to
    api_key: str = API_KEY                 # must never appear in an error message
    made: list[Provider] = field(default_factory=list)
    generated: list[list[dict]] = field(default_factory=list)   # local: chat messages generated from

    def make(self, **overrides: Any) -> Provider:
        """A fresh provider (with e.g. api_key= or base_url= overridden); closed after the test."""
        provider = self.factory(**overrides)
        self.made.append(provider)
        return provider

    def close(self) -> None:
        for provider in self.made:   # their SDK clients hold pooled connections
            client = getattr(provider, "client", None)
            if client is not None:
                client.close()

    def turn_requests(self) -> list[RecordedRequest]:
        return self.fake.requests_to(self.endpoint, "POST") if self.fake else []

    def system_prompt(self, request: RecordedRequest) -> str:
        """The system prompt a turn request carried."""
        body = request.body
        if "instructions" in body:
            return body.get("instructions") or ""
        first = (body.get("messages") or [{}])[0]
        return first.get("content", "") if first.get("role") == "system" else ""

    def last_prompt(self) -> str:
        """The system prompt of the last turn, from the server's request or the local model's input."""
        if self.fake:
            return self.system_prompt(self.turn_requests()[-1])
        first = self.generated[-1][0]
        return first["content"] if first["role"] == "system" else ""

    def last_chat(self) -> list[dict]:
        """The chat messages (system prompt excluded) an app-kept-history turn sent to the model."""
        messages = self.turn_requests()[-1].body["messages"] if self.fake else self.generated[-1]
        return [m for m in messages if m["role"] != "system"]

    def tool_names(self, request: RecordedRequest) -> list[str]:
        """Names (or hosted types) of the tools offered in a turn request."""
        names = []
        for tool in request.body.get("tools") or []:
            if tool.get("type") == "function":
                names.append(tool.get("name") or (tool.get("function") or {}).get("name"))
            else:
                names.append(tool["type"])
        return names


def _openai(fake: FakeOpenAI) -> ProviderCase:
    def make(**overrides: Any) -> Provider:
        args = dict(api_key=API_KEY, base_url=fake.base_url, max_retries=2, timeout=10)
        return OpenAIProvider(**{**args, **overrides})
    return ProviderCase("openai", make, fake, "/v1/responses")


def _compatible(fake: FakeOpenAI) -> ProviderCase:
    def make(**overrides: Any) -> Provider:
        args = dict(base_url=fake.base_url, api_key=API_KEY, default_model="gpt-4.1-mini",
                    max_retries=2, timeout=10)
        return CompatibleProvider(**{**args, **overrides})
    return ProviderCase("compatible", make, fake, "/v1/chat/completions")


def _local(fake: FakeOpenAI) -> ProviderCase:
    # The embedded model itself: no server behind it. Its input is recorded where it is handed
    # to generation, the same place whatever the history or instructions.
    def make(**overrides: Any) -> Provider:
        provider = LocalProvider(Path(os.environ["STUDIO_MODEL_CACHE"]),
                                 max_new_tokens=overrides.get("max_new_tokens", 16))
        generate = provider.generate

        def recording_generate(messages: list[dict], *args, **kwargs):
            case.generated.append(messages)
            return generate(messages, *args, **kwargs)
        provider.generate = recording_generate
        return provider
    case = ProviderCase("local", make, None, "")
    return case


CASES: dict[str, Callable[[FakeOpenAI], ProviderCase]] = {
    "openai": _openai, "compatible": _compatible, "local": _local}


@pytest.fixture(scope="session")
def fake_server():
    """One fake OpenAI server for the whole session (state is reset per test by `fake`)."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeOpenAI):
    fake_server.reset()
    clear_models_cache()   # compatible providers reuse /v1/models answers across instances
    yield fake_server
    fake_server.reset()
    clear_models_cache()


@pytest.fixture(params=list(CASES))
def case(request, fake: FakeOpenAI):
    case = CASES[request.param](fake)
    yield case
    case.close()


@pytest.fixture
def provider(case: ProviderCase) -> Provider:
    return case.make()


@pytest.fixture
def case_for(fake: FakeOpenAI):
    """For provider-specific tests: case_for("compatible")."""
    made: list[ProviderCase] = []

    def build(name: str) -> ProviderCase:
        made.append(CASES[name](fake))
        return made[-1]
    yield build
    for case in made:
        case.close()
