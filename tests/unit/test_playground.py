"""The playground's panes against the fake OpenAI server: each pane's request names its own
model and instructions, panes stream at the same time, a failing pane leaves the others to
finish, and each pane keeps its own conversation."""
from __future__ import annotations

import os
import time
from datetime import date
from pathlib import Path

from studio.models import ModelChoice, load_catalog
from studio.playground import Pane, PaneResult, PaneRun, Waiting, run_panes, stream_panes
from studio.providers.compatible import CompatibleProvider
from studio.providers.local import LocalProvider
from studio.providers.openai_provider import OpenAIProvider
from studio.store import Actor
from studio.types import AssistantSpec, Sampling, TextDelta, Usage

ADA = Actor("ada")


def openai(fake) -> OpenAIProvider:
    return OpenAIProvider("sk-test-play", base_url=fake.base_url, default_model="gpt-5-mini")


def test_each_pane_request_names_its_own_model_and_prompt(fake):
    provider = openai(fake)
    panes = [Pane("openai", model, system_prompt=f"You are pane {i}.", sampling=Sampling(temperature=0.5 + i / 10))
             for i, model in enumerate(["gpt-4.1-mini", "gpt-4o", "gpt-5-mini"])]
    results = run_panes([PaneRun(p, provider) for p in panes], "Hello there", ADA, catalog=load_catalog())
    assert [r.reply.content for r in results] == ["You said: Hello there"] * 3
    sent = fake.requests_to("/v1/responses")
    assert len(sent) == 3
    for i, pane in enumerate(panes):
        mine = [r.body for r in sent if r.body.get("instructions") == f"You are pane {i}."]
        assert [b["model"] for b in mine] == [pane.model]
        assert mine[0]["temperature"] == pane.sampling.temperature
        assert results[i].stats.model == pane.model
    assert results[0].stats.cost is not None and results[0].stats.cost > 0   # gpt-4.1-mini has a price


def test_panes_stream_concurrently(fake):
    fake.delta_delay = 0.05     # "You said: <5 words>" is 7 deltas: about 0.35 s a reply
    provider = openai(fake)
    panes = [Pane("openai", "gpt-4.1-mini", system_prompt=f"p{i}") for i in range(3)]
    started = time.perf_counter()
    seen_first: dict[int, float] = {}
    for index, item in stream_panes([PaneRun(p, provider) for p in panes], "one two three four five", ADA):
        if isinstance(item, TextDelta):
            seen_first.setdefault(index, time.perf_counter() - started)
    wall = time.perf_counter() - started
    assert len(seen_first) == 3
    # every pane had its first words before any pane could have finished alone
    assert max(seen_first.values()) < 0.3
    assert wall < 0.35 * 3


def test_a_failing_pane_leaves_the_others_to_finish(fake):
    provider = openai(fake)
    panes = [Pane("openai", "gpt-4.1-mini"), Pane("openai", "no-such-model"), Pane("openai", "gpt-4o")]
    results = run_panes([PaneRun(p, provider) for p in panes], "Hi", ADA)
    assert results[0].reply.content == "You said: Hi" and results[2].reply.content == "You said: Hi"
    assert results[1].reply is None and "no-such-model" in results[1].error.message
    # the failed pane's conversation does not keep the unanswered message; the others keep both
    assert panes[1].thread.messages == []
    assert [m.role for m in panes[0].thread.messages] == ["user", "assistant"]


def test_each_pane_keeps_its_own_conversation(fake):
    provider = openai(fake)
    panes = [Pane("openai", "gpt-4.1-mini"), Pane("openai", "gpt-4o")]
    runs = [PaneRun(p, provider) for p in panes]
    run_panes(runs, "first", ADA)
    run_panes(runs, "second", ADA)
    assert panes[0].thread.provider_ref != panes[1].thread.provider_ref
    assert [m.content for m in panes[1].thread.messages] == ["first", "You said: first", "second", "You said: second"]


def test_an_assistant_pane_uses_the_assistant(fake):
    provider = openai(fake)
    spec = AssistantSpec(name="Sam", instructions="Sign every reply -Sam", provider="openai", model="gpt-4o",
                         owner="ada")
    results = run_panes([PaneRun(Pane("openai", assistant=spec), provider)], "Hi", ADA)
    body = fake.last("/v1/responses").body
    assert body["model"] == "gpt-4o" and body["instructions"].startswith("Sign every reply -Sam")
    assert results[0].stats.model == "gpt-4o"


def test_compatible_pane_sends_sampling_and_seed(fake):
    provider = CompatibleProvider(base_url=fake.base_url, api_key="sk-x", default_model="gpt-4.1-mini")
    pane = Pane("compatible", "gpt-4o", sampling=Sampling(temperature=0.2, top_p=0.5, max_tokens=3, seed=42))
    result = run_panes([PaneRun(pane, provider)], "a b c d e f", ADA)[0]
    body = fake.last("/v1/chat/completions").body
    assert (body["model"], body["temperature"], body["top_p"], body["seed"]) == ("gpt-4o", 0.2, 0.5, 42)
    assert body["max_completion_tokens"] == 3
    assert result.reply.cut_off


def test_local_panes_take_turns_and_say_so():
    local = LocalProvider(Path(os.environ["STUDIO_MODEL_CACHE"]), max_new_tokens=8)
    panes = [Pane("local", sampling=Sampling(seed=1)), Pane("local", sampling=Sampling(seed=1))]
    items = list(stream_panes([PaneRun(p, local) for p in panes], "Say hi", ADA))
    waiting = [i for i, item in items if isinstance(item, Waiting)]
    assert waiting == [1]
    results = {i: item for i, item in items if isinstance(item, PaneResult)}
    assert results[0].reply.content and results[1].reply.content == results[0].reply.content   # same seed
    assert results[1].stats.waited_s >= results[0].stats.total_s * 0.9


def test_model_shutdown_flags_and_prices():
    catalog = load_catalog()
    today = date(2026, 11, 24)
    assert catalog.shutdown("ft:gpt-4o-mini-2024-07-18:org::abc") == date(2027, 1, 14)
    assert catalog.shutdown("gpt-4.1-nano-2025-04-14") == date(2026, 10, 23)
    assert catalog.shutdown("gpt-5-mini") is None and catalog.shutdown("gpt-4o-mini-tts") is None
    assert ModelChoice("openai", "gpt-4o", shutdown_date=date(2027, 1, 14)).status(today) == "retiring"
    assert ModelChoice("openai", "gpt-4", shutdown_date=date(2026, 10, 23)).status(today) == "shut down"
    assert "shut down" in ModelChoice("openai", "gpt-4", shutdown_date=date(2026, 10, 23)).warning(today)
    assert catalog.price("gpt-4o-mini-2024-07-18").input_per_million == 0.15
    assert catalog.price("ft:gpt-4o-mini-2024-07-18:org::abc").input_per_million == 0.3
    assert catalog.price("gpt-4.1-nano") is None      # not gpt-4.1's price
    assert catalog.price("smollm2-135m-instruct:ft:abc").cost(Usage(100, 100)) == 0.0


def test_a_turn_left_behind_by_a_newer_one_changes_nothing(fake):
    fake.delta_delay = 0.05
    provider = openai(fake)
    pane = Pane("openai", "gpt-4.1-mini")
    run_panes([PaneRun(pane, provider)], "first", ADA)
    stream = stream_panes([PaneRun(pane, provider)], "second message here", ADA)
    for _index, item in stream:
        if isinstance(item, TextDelta):
            break
    stream.close()       # the page reran mid-reply
    fake.delta_delay = 0.0
    run_panes([PaneRun(pane, provider)], "third", ADA)
    time.sleep(0.5)      # the abandoned worker notices the stop and ends
    assert [m.content for m in pane.thread.messages] == ["first", "You said: first", "third", "You said: third"]
