"""Tool calls run in worker processes: a timeout really stops a runaway tool, and the app stays responsive."""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest

from studio.tools import BUILTIN_TOOLS, get_tools, run_tool_call, run_tool_calls, tool_from_function
from studio.tools.workers import KEEP_WARM, POOL, reference
from studio.types import ToolCall

# Tools live at module level, as the app's do: a worker process imports them by name.


def spin(pid_file: str) -> str:
    """Loop forever (pure Python)."""
    Path(pid_file).write_text(str(os.getpid()))
    while True:
        pass


def hold_gil() -> int:
    """A long computation in C that never lets another thread of its process run."""
    return sum(range(10 ** 15))


def nap(label: str, seconds: float) -> str:
    time.sleep(seconds)
    return label


def whoami() -> int:
    return os.getpid()


def die(code: int) -> str:
    os._exit(code)


def quit_politely() -> str:
    raise SystemExit(3)


def timed_nap(seconds: float) -> list[float]:
    """Sleep; say when the nap began and ended (wall clock, comparable across processes)."""
    began = time.time()
    time.sleep(seconds)
    return [began, time.time()]


TOOLS = [tool_from_function(fn) for fn in (spin, hold_gil, nap, whoami, die, quit_politely, timed_nap)]
CALCULATOR = BUILTIN_TOOLS["calculator"]


@pytest.fixture(autouse=True)
def warm_pool():
    """Start from warm workers, so no bound below depends on how fast a process starts."""
    run_tool_calls([ToolCall("whoami", {}), ToolCall("nap", {"label": "", "seconds": 0.2})], TOOLS)
    yield


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_module_level_tools_run_in_another_process_and_closures_in_this_one():
    assert reference(spin) == (__name__, "spin")
    assert reference(lambda: 1) is None

    def local() -> int:
        return os.getpid()
    assert reference(local) is None
    worker_pid = int(run_tool_call(ToolCall("whoami", {}), TOOLS).result)
    assert worker_pid != os.getpid()
    assert int(run_tool_call(ToolCall("local", {}), [tool_from_function(local)]).result) == os.getpid()


def test_a_runaway_tool_is_stopped_at_the_timeout_and_the_next_call_works(tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    call = run_tool_call(ToolCall("spin", {"pid_file": str(pid_file)}), TOOLS, timeout=1.0)
    elapsed = time.monotonic() - started
    assert call.error and "timed out after 1 s" in call.result
    assert 1.0 <= elapsed < 4.0, elapsed       # about the timeout: not the 10 s default, not forever
    assert not _alive(int(pid_file.read_text()))   # the process that looped is gone
    after = run_tool_call(ToolCall("calculator", {"expression": "6 * 7"}), [CALCULATOR])
    assert (after.result, after.error) == ("42", False)


def test_a_tool_holding_the_gil_does_not_freeze_the_app():
    ticks = 0
    stop = threading.Event()

    def tick():   # stands for every other session of the app
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0.01)

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        call = run_tool_call(ToolCall("hold_gil", {}), TOOLS, timeout=1.0)
    finally:
        stop.set()
        ticker.join()
    assert call.error and "timed out" in call.result
    assert ticks > 10, ticks   # about 100 when nothing blocks; 0 if the tool ran in this process


def test_parallel_calls_in_order_with_one_timing_out():
    calls = [ToolCall("nap", {"label": "slow", "seconds": 30}),
             ToolCall("nap", {"label": "first", "seconds": 0.5}),
             ToolCall("nap", {"label": "second", "seconds": 0.5}),
             ToolCall("calculator", {"expression": "2 ** 10"})]
    started = time.monotonic()
    done = run_tool_calls(calls, [*TOOLS, CALCULATOR], timeout=1.5)
    elapsed = time.monotonic() - started
    assert done is calls or done == calls
    assert done[0].error and "timed out" in done[0].result
    assert [c.result for c in done[1:]] == ["first", "second", "1024"]
    assert not any(c.error for c in done[1:])
    assert elapsed < 5.0, elapsed   # the 30 s nap was cut off


def test_a_crashing_worker_is_an_error_and_is_replaced():
    died = run_tool_call(ToolCall("die", {"code": 7}), TOOLS)
    assert died.error and "stopped unexpectedly" in died.result and "7" in died.result
    exited = run_tool_call(ToolCall("quit_politely", {}), TOOLS)
    assert exited.error and "SystemExit" in exited.result
    assert run_tool_call(ToolCall("nap", {"label": "fine", "seconds": 0}), TOOLS).result == "fine"


def test_many_sessions_at_once_share_the_workers():
    results: dict[int, str] = {}

    def session(n: int) -> None:
        call = run_tool_call(ToolCall("calculator", {"expression": f"{n} * 3"}), [CALCULATOR])
        results[n] = call.result

    threads = [threading.Thread(target=session, args=(n,)) for n in range(24)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: str(n * 3) for n in range(24)}


def test_one_batch_of_slow_calls_leaves_workers_for_other_sessions():
    batch = [ToolCall("timed_nap", {"seconds": 2.0}) for _ in range(POOL.size)]
    done = threading.Thread(target=run_tool_calls, args=(batch, TOOLS), kwargs={"timeout": 5.0})
    done.start()
    try:
        time.sleep(0.5)   # the batch has taken what it may
        other = run_tool_call(ToolCall("calculator", {"expression": "1 + 1"}), [CALCULATOR], timeout=1.0)
    finally:
        done.join()
    assert (other.result, other.error) == ("2", False)   # not "timed out" waiting for a free worker
    naps = [json.loads(c.result) for c in batch]
    assert not any(c.error for c in batch)                 # the rest of the batch waited its turn
    most_at_once = max(sum(began <= moment < ended for began, ended in naps) for moment, _ in naps)
    assert most_at_once == POOL.size // 2


def test_idle_workers_stop_and_come_back():
    POOL.stop_idle()
    assert POOL.processes == 0
    assert run_tool_call(ToolCall("calculator", {"expression": "1 + 1"}), [CALCULATOR]).result == "2"


def test_warming_up_again_and_again_keeps_only_a_few_processes():
    POOL.stop_idle()
    for _ in range(20):   # every turn with tools asks for warm workers
        get_tools(["calculator"])
    give_up = time.monotonic() + 60
    while POOL.processes and len(POOL._idle) < KEEP_WARM and time.monotonic() < give_up:
        time.sleep(0.1)
    time.sleep(0.5)
    assert POOL.processes == KEEP_WARM
