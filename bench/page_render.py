"""How long after a reload can a signed-in user type into the chat page, next to a hello-world
Streamlit page served the same way?

Seeds a 50-message thread in a throw-away workspace through the engine's Store, starts the app
(`streamlit run app.py`, provider `compatible` on the fake OpenAI server) and a one-line
Streamlit page (one st.write, one st.chat_input) the same way, signs in through the login form on
`/?thread=ID` in headless Chromium, then reloads the pages in turn (interleaved, alternating the
order). Each reload is timed in the page, from the start of the navigation until the chat input
is enabled; the bench then types into it to check it takes the text. Also shown: when the page
last changed (informational).

For reference a third page is timed the same way: Streamlit alone drawing the same messages the
chat page draws, in a bare two-page st.navigation app (no sidebar, login or database), to tell
the framework's own cost from the app's.

Prints the medians and the ratio app/hello (goal: at most 1.5x). Exits non-zero only if the
bench itself crashes, not on a missed goal.

    .venv/bin/python bench/page_render.py [--reloads 7] [--messages 50]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import (CHAT_INPUT, CHROMIUM, CHROMIUM_ARGS, LOGIN_FORM, PASSWORD, PROBLEMS,   # noqa: E402
                            RESET_SETTLED_JS, SETTLED_JS, TRACK_RERUN_REQUESTS_JS, StreamlitServer,
                            TempWorkspace, add_users, app_env, cpu_seconds_by_process, list_accounts,
                            machine_note)
from studio.store import Actor, Store   # noqa: E402
from studio.types import Message, Thread   # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI   # noqa: E402
from components.transcript import RECENT  # noqa: E402  (the chat page's own limit)

MODEL = "gpt-4.1-mini"
USER = "reader"
GOAL = 1.5
TIMEOUT_MS = 60_000
HELLO_PAGE = 'import streamlit as st\n\nst.write("Hello, world")\nst.chat_input("Say something")\n'
# For reference, not the goal: what Streamlit alone takes for the same transcript, i.e. a bare
# two-page st.navigation app whose default page draws a title, the chat input and the messages
# the chat page draws (the same texts), with no sidebar, login or database.
FLOOR_PAGE = """import json
import streamlit as st

st.set_page_config(layout="wide")
MESSAGES = json.loads(%r)


def chat():
    st.title("Comment responder")
    st.chat_input("Say something")
    for role, text in MESSAGES:
        with st.chat_message(role):
            st.markdown(text)


st.navigation([st.Page(chat, title="Chat", default=True), st.Page(lambda: None, title="Other", url_path="other")]).run()
"""
CHAT_MESSAGE = '[data-testid="stChatMessage"]'

# Runs in every page before Streamlit's own code. performance.now() counts from the start of the
# navigation (the reload), so the times below include fetching the page and opening the websocket.
PAGE_PROBES_JS = TRACK_RERUN_REQUESTS_JS + """
(() => {
  window.__usableAt = null;
  window.__lastChange = 0;
  const observer = new MutationObserver(() => {
    const now = performance.now();
    window.__lastChange = now;
    if (window.__usableAt !== null) return;
    const box = document.querySelector('%s');
    if (box && !box.disabled && !box.readOnly) window.__usableAt = now;
  });
  observer.observe(document, {subtree: true, childList: true, attributes: true, characterData: true});
})();
""" % CHAT_INPUT

COMMENTS = [
    "Loved the part on train/test splits, it finally clicked for me!",
    "Could you do a follow-up on cross-validation with time series?",
    "The audio was a bit quiet around minute twelve.",
    "Why did you scale the features before the split and not after?",
    "Great pacing. Which library did you use for the charts?",
]
REPLIES = [
    "So glad it clicked! Splitting **before** you look at the data keeps the test set honest, "
    "and it is a habit worth keeping in every project. -Sam",
    "Great idea. Time series need a *forward-chaining* split instead of shuffled folds:\n\n"
    "1. train on the past,\n2. validate on the next window,\n3. slide forward and repeat.\n\n"
    "I'll cover `TimeSeriesSplit` next month. -Sam",
    "Thanks for flagging that, I'll fix the levels in the next upload and re-export this one. -Sam",
    "Good catch: the scaler should be fit on the training set only, then applied to the test set, "
    "otherwise the test statistics leak into training. I'll pin a correction. -Sam",
    "Thank you! The charts are plain `matplotlib` with a custom style sheet; I'll share it in the "
    "description. -Sam",
]


def transcript(messages: int) -> list[tuple[str, str]]:
    """(role, text) of the seeded thread's messages, alternating comments and replies."""
    return [("user", f"{COMMENTS[(n // 2) % len(COMMENTS)]} (comment {n // 2 + 1})") if n % 2 == 0
            else ("assistant", REPLIES[(n // 2) % len(REPLIES)]) for n in range(messages)]


def seed_thread(database_url: str, messages: int) -> str:
    """A thread of `messages` alternating comments and replies for USER; returns its id."""
    store = Store(database_url)
    actor = Actor(USER)
    store.seed_demo_assistant(actor)
    spec = store.list_assistants(actor)[0]
    thread = Thread(owner=USER, assistant_id=spec.id, provider="compatible",
                    title=f"Comments, {messages} messages")
    thread.messages = [Message(role, text) for role, text in transcript(messages)]
    store.save_thread(thread, actor)
    stored = len(store.get_thread(thread.id, actor).messages)
    store.engine.dispose()
    if stored != messages:
        raise RuntimeError(f"seeded {messages} messages but the store holds {stored}")
    return thread.id


def settle(page, quiet_ms: int = 1000) -> None:
    page.evaluate(RESET_SETTLED_JS)
    page.wait_for_function(SETTLED_JS, arg=quiet_ms, polling=100, timeout=TIMEOUT_MS)


def sign_in(page, thread_id: str) -> None:
    page.goto(f"/?thread={thread_id}")
    form = page.locator(LOGIN_FORM)
    form.wait_for()
    settle(page)
    form.get_by_label("Username").fill(USER)
    form.get_by_label("Password", exact=True).fill(PASSWORD)
    form.get_by_role("button", name="Log in").click()
    page.locator(CHAT_INPUT).wait_for()
    settle(page)


def timed_reload(page, expected_messages: int) -> tuple[float, float, list[str]]:
    """Reload; return (ms until the chat input was enabled, ms until the page last changed,
    problems seen)."""
    page.reload(wait_until="commit")
    page.wait_for_function("() => window.__usableAt !== null", polling=50, timeout=TIMEOUT_MS)
    usable_ms = page.evaluate("() => window.__usableAt")
    problems = []
    box = page.locator(CHAT_INPUT)
    box.press_sequentially("hi")   # usable means it takes typing, too
    if box.input_value() != "hi":
        problems.append(f"the chat input did not take typing (holds {box.input_value()!r})")
    box.fill("")
    settle(page)
    last_change_ms = page.evaluate("() => window.__lastChange")
    shown = page.locator(CHAT_MESSAGE).count()
    drawn = min(expected_messages, RECENT)   # a long thread draws its latest messages, the rest on request
    if shown != drawn:
        problems.append(f"{shown} messages shown after the reload, not {drawn}")
    if expected_messages > RECENT and not page.get_by_role(
            "button", name=f"Show {expected_messages - RECENT} earlier messages").count():
        problems.append("no button to show the earlier messages")
    if page.locator(LOGIN_FORM).count():
        problems.append("the reload showed the login form")
    problems += [f"the page shows: {t.strip()[:160]}" for t in page.locator(PROBLEMS).all_inner_texts()]
    return usable_ms, last_change_ms, problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reloads", type=int, default=7, help="measured reloads of each page")
    parser.add_argument("--messages", type=int, default=50, help="messages in the chat page's thread")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"{CHROMIUM} is missing: this bench needs Debian's chromium (scripts/setup.sh --dev)",
              file=sys.stderr)
        return 2
    from playwright.sync_api import sync_playwright

    started = time.perf_counter()
    print(f"machine at the start: {machine_note()}")
    times: dict[str, list[tuple[float, float]]] = {"chat page": [], "hello world": [], "bare same": []}
    cpu: dict[str, dict[str, float]] = {name: {} for name in times}   # CPU seconds over all reloads
    problems: list[str] = []
    with TempWorkspace() as tmp, FakeOpenAI() as fake:
        workspace = tmp / "workspace"
        env = app_env(workspace, STUDIO_PROVIDER="compatible", OPENAI_BASE_URL=fake.base_url,
                      OPENAI_API_KEY="sk-bench", STUDIO_MODEL=MODEL)
        add_users(["benchadmin", USER], env)   # the first account is the admin; USER is a plain user
        thread_id = seed_thread(f"sqlite:///{workspace / 'studio.db'}", args.messages)
        hello_script = tmp / "hello.py"
        hello_script.write_text(HELLO_PAGE)
        floor_script = tmp / "bare.py"
        floor_script.write_text(FLOOR_PAGE % json.dumps(transcript(args.messages)[-RECENT:]))
        with StreamlitServer("app.py", env, tmp / "app.log") as app, \
                StreamlitServer(hello_script, env, tmp / "hello.log") as hello, \
                StreamlitServer(floor_script, env, tmp / "bare.log") as floor, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                pages = {}
                for name, url in (("chat page", app.url), ("hello world", hello.url), ("bare same", floor.url)):
                    context = browser.new_context(base_url=url, viewport={"width": 1400, "height": 900})
                    context.set_default_timeout(TIMEOUT_MS)
                    context.add_init_script(PAGE_PROBES_JS)
                    pages[name] = context.new_page()
                sign_in(pages["chat page"], thread_id)
                pages["hello world"].goto("/")
                pages["bare same"].goto("/")
                expected = {"chat page": args.messages, "hello world": 0, "bare same": min(args.messages, RECENT)}
                for name, page in pages.items():   # warm-up (browser cache, first imports), not counted
                    timed_reload(page, expected[name])
                print(f"signed in, {args.messages}-message thread in the URL; measuring {args.reloads} "
                      f"reloads of each page, interleaved")
                servers = {"chat page": app.process.pid, "hello world": hello.process.pid,
                           "bare same": floor.process.pid}
                for i in range(args.reloads):
                    order = list(pages) if i % 2 == 0 else list(pages)[::-1]
                    for name in order:
                        before = cpu_seconds_by_process(servers)
                        usable, last_change, seen = timed_reload(pages[name], expected[name])
                        after = cpu_seconds_by_process(servers)
                        for process in ("browser", name):   # the other server is idle meanwhile
                            key = "server" if process == name else process
                            cpu[name][key] = cpu[name].get(key, 0.0) + after[process] - before[process]
                        times[name].append((usable, last_change))
                        problems += [f"{name}, reload {i + 1}: {p}" for p in seen]
            finally:
                browser.close()
            tracebacks = app.log().count("Traceback (most recent call last)")
        if tracebacks:
            problems.append(f"{tracebacks} traceback(s) in the app's server log")
        if USER not in list_accounts(env):
            problems.append(f"the account {USER!r} is gone after the run")

    print(f"\nreload -> chat input enabled (ms), medians of {args.reloads}; last change = when the page "
          "stopped changing")
    print(f"  {'page':<12} {'usable':>8} {'min':>7} {'max':>7} {'last change':>12}   "
          f"{'CPU ms a reload: server':>23} {'browser':>8}")
    med = {}
    for name, runs in times.items():
        usable = [u for u, _ in runs]
        med[name] = statistics.median(usable)
        print(f"  {name:<12} {med[name]:>8.0f} {min(usable):>7.0f} {max(usable):>7.0f} "
              f"{statistics.median(c for _, c in runs):>12.0f}   "
              f"{cpu[name]['server'] * 1000 / len(runs):>23.0f} {cpu[name]['browser'] * 1000 / len(runs):>8.0f}")
    ratio = med["chat page"] / med["hello world"]
    print(f"ratio chat page/hello world: {ratio:.2f} ({'ok' if ratio <= GOAL else f'ABOVE GOAL {GOAL}'})")
    print(f"for reference: bare same/hello world {med['bare same'] / med['hello world']:.2f} (Streamlit alone "
          f"drawing the same {min(args.messages, RECENT)} messages in a two-page app); "
          f"chat page/bare same {med['chat page'] / med['bare same']:.2f}")
    print(f"problems: {len(problems)}")
    for problem in problems[:20]:
        print(f"  - {problem}")
    print(f"\nfinished in {time.perf_counter() - started:.1f} s; machine: {machine_note()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
