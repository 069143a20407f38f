"""Do 20 users signed in at once get their own replies, no errors, and turns nearly as fast as one
user alone?

Starts the fake OpenAI server (tests/fakes) with a fixed delay before each streamed word, and the
app (`streamlit run app.py`) on the `compatible` provider pointed at it, in a throw-away workspace
whose accounts are made with `python -m studio users add`. Each user is a separate Streamlit
session over the app's own websocket, speaking the browser client's protocol (bench/_wsclient.py):
20 headless Chromium tabs on a 2-core machine took most of the CPU from the server they measured.
  1. alone: one user signs in through the login form and sends `--solo-turns` messages, one
     after the other;
  2. together: `--users` users sign in at once, then all send `--turns` messages at the same time.
Each message carries a token unique to its user and turn; the fake echoes it back. A turn is
timed from sending the message until the whole reply has arrived (no cursor); between turns a user
waits for the page to finish its runs, then one second (as a browser test settles).

Counts errors (a turn that fails or times out, an error or warning box, a traceback on the page or
in the server log) and leaks (a token of one user ever received by another user's session, or
stored in another user's thread), and compares p95 turn time together vs alone (goal: at most
1.5x). Exits non-zero only if the bench itself crashes, not on a missed goal.

    .venv/bin/python bench/concurrent_users.py [--users 20] [--turns 3] [--solo-turns 10] [--delta-ms 50]
"""
from __future__ import annotations

import argparse
import asyncio
import re
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import (PASSWORD, StreamlitServer, TempWorkspace, add_users, app_env,   # noqa: E402
                            cpu_seconds_by_process, list_accounts, machine_note, percentile)
from bench._wsclient import SessionError, StreamlitSession, chat_state, text_state, trigger_state   # noqa: E402
from studio.store import Actor, Store   # noqa: E402
from tests.fakes.fake_openai import FakeOpenAI   # noqa: E402
from components.transcript import RECENT   # noqa: E402  (the chat page's own limit)

MODEL = "gpt-4.1-mini"     # one the fake serves; set so the app does not ask /v1/models each turn
GOAL = 1.5
TURN_TIMEOUT_S = 60
SIGN_IN_TIMEOUT_S = 180
SETTLE_S = 1.0
TOKEN = re.compile(r"tok(\d{2})u\d+t[0-9a-f]{6}")
CURSOR = "▌"
PLACEHOLDER = "Message Comment responder…"   # the demo assistant's chat input
RESULTS = Path(__file__).resolve().parent / "results"   # the server log of the last run (git-ignored)


@dataclass
class User:
    index: int
    name: str
    turn_ms: list[float] = field(default_factory=list)     # sent -> the whole reply received
    first_ms: list[float] = field(default_factory=list)    # sent -> its first words received
    sent_tokens: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sign_in_ms: float | None = None   # "Log in" sent -> the chat input received
    leaks: list[str] = field(default_factory=list)
    session: StreamlitSession | None = None


def message_for(user: User, turn: int) -> tuple[str, str]:
    """(message, token): the token comes first so the thread title (first 60 characters) keeps it."""
    token = f"tok{user.index:02d}u{turn}t{secrets.token_hex(3)}"
    return f"{token} from {user.name} turn {turn}, please echo this back to me", token


def problems_shown(session: StreamlitSession) -> list[str]:
    """Error and warning boxes and tracebacks on the page after its last run."""
    shown = [f"traceback: {e[:160]}" for e in session.exceptions]
    for alert in session.of_kind("alert"):
        if alert.format in (alert.ERROR, alert.WARNING):
            shown.append(alert.body.strip()[:160])
    return shown


async def sign_in(url: str, user: User) -> bool:
    """Open a session (what loading the page does) and log in through the form."""
    user.session = session = StreamlitSession(url)
    try:
        await session.connect()
        await session.idle(SIGN_IN_TIMEOUT_S)
        username, password = session.find("text_input", "Username"), session.find("text_input", "Password")
        button = session.find("button", "Log in")
        if not (username and password and button):
            raise SessionError("no login form")
        sent = time.perf_counter()
        await session.rerun([text_state(username, user.name), text_state(password, PASSWORD),
                             trigger_state(button)])
        await session.wait_for(lambda s: s.find("chat_input", PLACEHOLDER) is not None, SIGN_IN_TIMEOUT_S)
        user.sign_in_ms = (time.perf_counter() - sent) * 1000
        await session.idle(SIGN_IN_TIMEOUT_S)
        if shown := problems_shown(session):
            raise SessionError(f"the page shows: {' | '.join(shown)}")
        return True
    except Exception as exc:   # counted, and this user sends nothing
        user.errors.append(f"{user.name} could not sign in: {type(exc).__name__}: {exc}")
        return False


def reply_state(session: StreamlitSession, expected: str) -> str:
    """"done" when the last markdown element is the whole reply, "started" when it is part of
    it (streaming, with the cursor), else ""."""
    texts = session.markdown()
    last = " ".join(texts[-1].split()) if texts else ""
    if last == expected:
        return "done"
    if last.endswith(CURSOR) and expected.startswith(last[:-1].strip()) and last[:-1].strip():
        return "started"
    return ""


async def one_turn(user: User, turn: int) -> None:
    """Send one message; time it; record what went wrong, if anything."""
    session = user.session
    text, token = message_for(user, turn)
    user.sent_tokens.append(token)
    box = session.find("chat_input", PLACEHOLDER)
    if box is None:
        user.errors.append(f"{user.name}, turn {turn}: no chat input on the page")
        return
    expected = "You said: " + text
    sent = time.perf_counter()
    await session.rerun([chat_state(box, text)])
    try:
        first = await session.wait_for(lambda s: reply_state(s, expected) != "", TURN_TIMEOUT_S)
        done = await session.wait_for(lambda s: reply_state(s, expected) == "done", TURN_TIMEOUT_S)
        await session.idle(TURN_TIMEOUT_S)
    except SessionError as exc:
        user.errors.append(f"{user.name}, turn {turn}: no complete reply: {exc}")
        return
    user.turn_ms.append((done - sent) * 1000)
    user.first_ms.append((first - sent) * 1000)
    for problem in problems_shown(session):
        user.errors.append(f"{user.name}, turn {turn}: the page shows: {problem}")
    await asyncio.sleep(SETTLE_S)


def check_page(user: User, owners: dict[str, str]) -> None:
    """Tokens of other users received by this session at any moment; own messages and replies
    still on the page after the last run."""
    seen = {m.group(0) for text in user.session.texts_seen for m in TOKEN.finditer(text)}
    for token in sorted(seen - set(user.sent_tokens)):
        user.leaks.append(f"{user.name}'s page showed {token} (sent by {owners.get(token, 'nobody')})")
    page = "\n".join(user.session.markdown())
    shown = user.sent_tokens[-(RECENT // 2):]   # a long thread shows its latest messages
    missing = [t for t in shown if page.count(t) < 2]   # the message and its echo
    if missing:
        user.errors.append(f"{user.name}'s page lacks the message or reply of {', '.join(missing)}")


async def run_user(user: User, turns: int, start: asyncio.Event) -> None:
    await start.wait()
    for turn in range(1, turns + 1):
        try:
            await one_turn(user, turn)
        except Exception as exc:
            user.errors.append(f"{user.name}, turn {turn}: {type(exc).__name__}: {str(exc).splitlines()[0]}")


def check_store(database_url: str, users: list[User], owners: dict[str, str]) -> tuple[list[str], list[str]]:
    """(errors, leaks) from the database: every thread holds only its owner's tokens, every reply
    echoes the message before it, every sent message was stored."""
    errors, leaks = [], []
    store = Store(database_url)
    stored: set[str] = set()
    by_name = {u.name: u for u in users}
    checker = Actor("bench-check", admin=True)
    for listed in store.list_threads(checker, everyone=True):
        thread = store.get_thread(listed.id, checker)
        for message in thread.messages:
            for token in [m.group(0) for m in TOKEN.finditer(message.content)]:
                if owners.get(token) != thread.owner:
                    leaks.append(f"thread {thread.id} of {thread.owner} holds {token} "
                                 f"(sent by {owners.get(token, 'nobody')})")
                if message.role == "user":
                    stored.add(token)
        for question, answer in zip(thread.messages[::2], thread.messages[1::2], strict=False):
            if answer.role != "assistant" or answer.content.strip() != "You said: " + question.content.strip():
                errors.append(f"thread {thread.id}: reply {answer.content[:60]!r} does not answer "
                              f"{question.content[:60]!r}")
        if len(thread.messages) % 2:
            errors.append(f"thread {thread.id}: the last message has no reply")
    for user in users:   # each user's own list holds only their threads
        foreign = [t.id for t in store.list_threads(Actor(user.name)) if t.owner != user.name]
        if foreign:
            leaks.append(f"{user.name}'s thread list holds {foreign}")
    lost = [t for t in owners if t not in stored and owners[t] in by_name]
    if lost:
        errors.append(f"{len(lost)} sent message(s) not stored: {', '.join(sorted(lost)[:5])}")
    store.engine.dispose()
    return errors, leaks


async def bench(args) -> int:
    solo = User(0, "solo")
    crowd = [User(i, f"bench{i:02d}") for i in range(1, args.users + 1)]
    started = time.perf_counter()
    print(f"machine at the start: {machine_note()}")
    with TempWorkspace() as tmp, FakeOpenAI(delta_delay=args.delta_ms / 1000) as fake:
        workspace = tmp / "workspace"
        env = app_env(workspace, STUDIO_PROVIDER="compatible", OPENAI_BASE_URL=fake.base_url,
                      OPENAI_API_KEY="sk-bench", STUDIO_MODEL=MODEL)
        # An admin first (the first account always is one), so every bench user is a plain user.
        add_users(["benchadmin", solo.name] + [u.name for u in crowd], env)
        print(f"{len(crowd) + 2} accounts made with `python -m studio users add` "
              f"({time.perf_counter() - started:.1f} s)")
        words = len(message_for(solo, 1)[0].split()) + 2
        print(f"fake server: {args.delta_ms:g} ms before each of {words} words a reply "
              f"(>= {words * args.delta_ms / 1000:.2f} s a turn)")
        with StreamlitServer("app.py", env, tmp / "streamlit.log") as app:
            everyone = [solo, *crowd]
            try:
                # 1. One user alone (the first turn warms the app up and is not counted).
                if not await sign_in(app.url, solo):
                    log = app.log()
                    raise RuntimeError(f"the solo user could not sign in: {solo.errors}" + (
                        "\nserver log:\n" + _first_traceback(log) if "Traceback" in log else ""))
                await one_turn(solo, 0)   # warm-up, not counted
                solo.turn_ms, solo.first_ms = [], []
                cpu = cpu_seconds_by_process({"app server": app.process.pid})
                await run_user(solo, args.solo_turns, _started())
                solo_cpu = _used_since(cpu, app)
                print(f"alone: {len(solo.turn_ms)} turns measured")

                # 2. Everyone at once: sign in together, then send together.
                t0 = time.perf_counter()
                signed_in = await asyncio.gather(*(sign_in(app.url, u) for u in crowd))
                active = [u for u, ok in zip(crowd, signed_in, strict=True) if ok]
                print(f"together: {len(active)}/{len(crowd)} signed in at once "
                      f"({time.perf_counter() - t0:.1f} s)")
                go = asyncio.Event()
                tasks = [asyncio.create_task(run_user(u, args.turns, go)) for u in active]
                cpu, t0 = cpu_seconds_by_process({"app server": app.process.pid}), time.perf_counter()
                go.set()
                await asyncio.gather(*tasks)
                crowd_cpu, crowd_wall = _used_since(cpu, app), time.perf_counter() - t0
                owners = {t: u.name for u in everyone for t in u.sent_tokens}
                for user in [solo, *active]:
                    check_page(user, owners)
            finally:
                await asyncio.gather(*(u.session.close() for u in everyone if u.session), return_exceptions=True)
            server_log = app.log()
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "concurrent_users-server.log").write_text(server_log)   # kept for a look after the run
        store_errors, store_leaks = check_store(f"sqlite:///{workspace / 'studio.db'}", [solo, *crowd], owners)
        accounts_left = list_accounts(env)

    report(args, solo, crowd, solo_cpu, crowd_cpu, crowd_wall, store_errors, store_leaks, server_log,
           accounts_left)
    print(f"\nfinished in {time.perf_counter() - started:.1f} s; machine: {machine_note()}")
    return 0


def _first_traceback(log: str, lines: int = 12) -> str:
    block = log[log.index("Traceback (most recent call last)"):].splitlines()
    end = next((i for i, line in enumerate(block[1:], 1) if line and not line.startswith(" ")), len(block) - 1)
    return "\n".join("      " + line for line in block[max(0, end + 1 - lines):end + 1])


def _used_since(before: dict[str, float], app: StreamlitServer) -> dict[str, float]:
    now = cpu_seconds_by_process({"app server": app.process.pid})
    return {k: now[k] - before.get(k, 0.0) for k in now}


def _started() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


def report(args, solo: User, crowd: list[User], solo_cpu: dict, crowd_cpu: dict, crowd_wall: float,
           store_errors: list[str], store_leaks: list[str], server_log: str, accounts_left: list[str]) -> None:
    together = [ms for u in crowd for ms in u.turn_ms]
    together_first = [ms for u in crowd for ms in u.first_ms]
    errors = [e for u in [solo, *crowd] for e in u.errors] + store_errors
    tracebacks = server_log.count("Traceback (most recent call last)")
    if tracebacks:
        errors.append(f"{tracebacks} traceback(s) in the server log; the first ends:\n"
                      + _first_traceback(server_log))
    leaks = [leak for u in crowd for leak in u.leaks] + store_leaks
    expected_accounts = {"benchadmin", solo.name, *(u.name for u in crowd)}
    missing_accounts = sorted(expected_accounts - set(accounts_left))

    print("\nturn time, message sent -> whole reply received (ms); CPU seconds per turn by process")
    print(f"  {'':<18} {'turns':>5} {'1st words':>9} {'median':>7} {'p95':>7} {'max':>7}   "
          f"{'app':>5} {'clients + fake':>14}")
    for label, values, first, cpu in (("1 user alone", solo.turn_ms, solo.first_ms, solo_cpu),
                                      (f"{len(crowd)} users at once", together, together_first, crowd_cpu)):
        if not values:
            print(f"  {label:<18} {0:>5}")
            continue
        per_turn = {k: v / len(values) for k, v in cpu.items()}
        print(f"  {label:<18} {len(values):>5} {statistics.median(first):>9.0f} "
              f"{statistics.median(values):>7.0f} {percentile(values, 95):>7.0f} {max(values):>7.0f}   "
              f"{per_turn['app server']:>5.2f} {per_turn['bench + fake']:>14.2f}")
    if together:
        print(f"  together: {len(together)} turns in {crowd_wall:.1f} s ({len(together) / crowd_wall:.2f} turns/s)")
    signed = [u.sign_in_ms for u in crowd if u.sign_in_ms is not None]
    if solo.sign_in_ms is not None and signed:
        print(f"sign-in, 'Log in' sent -> chat input received (ms): alone {solo.sign_in_ms:.0f}; "
              f"{len(signed)} at once: "
              f"median {statistics.median(signed):.0f}, max {max(signed):.0f}")
    if solo.turn_ms and together:
        ratio = percentile(together, 95) / percentile(solo.turn_ms, 95)
        verdict = "ok" if ratio <= GOAL else f"ABOVE GOAL {GOAL}"
        print(f"ratio p95 together/alone: {ratio:.2f} ({verdict})")
    print(f"errors: {len(errors)} (goal 0)")
    for e in errors[:20]:
        print(f"  - {e}")
    print(f"seen by the wrong user: {len(leaks)} (goal 0)")
    for leak in leaks[:20]:
        print(f"  - {leak}")
    print(f"accounts after the run: {len(expected_accounts) - len(missing_accounts)}/{len(expected_accounts)}"
          + (f" (missing: {', '.join(missing_accounts)})" if missing_accounts else ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=20, help="users signed in at once")
    parser.add_argument("--turns", type=int, default=3, help="messages each of them sends")
    parser.add_argument("--solo-turns", type=int, default=10, help="measured messages of the user alone")
    parser.add_argument("--delta-ms", type=float, default=50.0, help="fake server delay before each word")
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
