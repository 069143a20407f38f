"""Worker processes that run tool functions, so a timeout can really stop a runaway tool.

A thread cannot be killed, and a tool that holds the GIL (a huge integer power,
a regex gone exponential) would freeze every session of the app. Each call
therefore goes to a worker process; a call past its timeout gets its worker
killed and replaced. A few workers are kept warm, so a call costs a pipe round
trip (well under a millisecond), not a process start (a fraction of a second).

A worker is a fresh interpreter started with `subprocess` (fork + exec), never a
plain fork of the app: the app is multithreaded, and a fork could copy a lock
that another thread holds. It is not a `multiprocessing` child either: those
re-import the app's main module (under `streamlit run`, all of Streamlit).

Functions are sent by reference (module and qualified name), so only plain
module-level functions can run here; `reference()` says which can.
"""
from __future__ import annotations

import atexit
import importlib
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable

try:
    import resource   # Unix only
except ImportError:   # pragma: no cover
    resource = None

log = logging.getLogger(__name__)

MAX_WORKERS = 8      # processes at once, across all sessions; more calls wait for a free one
KEEP_WARM = 2        # idle workers kept for the next call
MAX_RESULT_CHARS = 20_000   # a runaway result would flood the model's context
START_TIMEOUT = 30.0        # a worker not ready by then counts as broken (a loaded machine takes ~1 s)

# A worker's first lines: take the app's sys.path (so it imports what the app imports), then serve.
_BOOTSTRAP = """\
import sys
from multiprocessing.connection import Connection
inbox, outbox = Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
sys.path[:] = inbox.recv()
from studio.tools.workers import serve
serve(inbox, outbox)
"""


class WorkersUnavailable(RuntimeError):
    """No worker process could be started (the platform refuses new processes)."""


# --- what a worker does (also used for calls run in-process) ---------------------

def call_function(fn: Callable[..., Any], kwargs: dict[str, Any], tool_name: str) -> tuple[str, bool]:
    """(result text, is error) for `fn(**kwargs)`; never raises.

    The result is the function's return value, JSON-encoded unless it is a str,
    and cut at MAX_RESULT_CHARS.
    """
    try:
        value = fn(**kwargs)
    except (Exception, SystemExit) as exc:   # a tool calling sys.exit must not end the worker or app
        return _error_text(tool_name, exc), True
    try:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    except Exception as exc:
        return f"Error: {tool_name} returned a result that cannot be encoded: {exc}", True
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"... [truncated, {len(text)} characters in all]"
    return text, False


def _error_text(tool_name: str, exc: BaseException) -> str:
    # ValueError is how the built-ins report bad input; its message is already clear.
    if isinstance(exc, ValueError) and str(exc):
        return f"Error: {exc}"
    return f"Error: {tool_name} failed: {type(exc).__name__}: {exc}"


def reference(fn: Callable[..., Any]) -> tuple[str, str] | None:
    """(module, qualified name) by which a worker can import `fn`, or None.

    None for lambdas, closures, methods and functions of `__main__`: those run
    in-process instead.
    """
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", "")
    if not module_name or module_name == "__main__" or not qualname or "<" in qualname:
        return None
    obj: Any = sys.modules.get(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return (module_name, qualname) if obj is fn else None


def _resolve(module_name: str, qualname: str) -> Callable[..., Any]:
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def serve(inbox: Connection, outbox: Connection) -> None:
    """A worker's loop.

    It says "ready" once; then for each job (module, qualname, tool name, kwargs, timeout)
    it says "started" when the function is loaded and about to run (the
    caller's timeout starts there), then sends (result text, is error).
    """
    _exit_with_parent()
    outbox.send("ready")
    threading.Thread(target=_warm_caches, name="warm-caches", daemon=True).start()
    while True:
        try:
            job = inbox.recv()
        except (EOFError, OSError, KeyboardInterrupt):   # the app went away
            return
        except Exception as exc:   # arguments that do not unpickle here
            reply = (f"Error: could not read the tool's arguments: {type(exc).__name__}: {exc}", True)
        else:
            if job is None:
                return
            module_name, qualname, tool_name, kwargs, timeout = job
            try:
                fn = _resolve(module_name, qualname)   # a first import can be slow: not part of the timeout
            except Exception as exc:
                reply = (f"Error: could not load tool {tool_name!r}: {type(exc).__name__}: {exc}", True)
            else:
                try:
                    outbox.send("started")
                except (OSError, ValueError):
                    return
                _limit_cpu(timeout)
                reply = call_function(fn, kwargs, tool_name)
        try:
            outbox.send(reply)
        except (OSError, ValueError):
            return


def _warm_caches() -> None:
    """Build what a first call would otherwise wait for (pint's unit registry takes ~1 s)."""
    try:
        from studio.tools.units import _units
        _units()
    except Exception:   # the call that needs it reports the problem
        pass


def _limit_cpu(timeout: float) -> None:
    """Let the kernel end this worker if the call burns CPU well past its timeout.

    The app kills a worker at the timeout; this covers an app that died first,
    while a tool held the GIL (then the watch thread below cannot run either).
    """
    if resource is None:
        return
    used = resource.getrusage(resource.RUSAGE_SELF)
    seconds = math.ceil(used.ru_utime + used.ru_stime + timeout) + 5
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard == resource.RLIM_INFINITY or seconds <= hard:
        resource.setrlimit(resource.RLIMIT_CPU, (seconds, hard))


def _exit_with_parent() -> None:
    """End this worker if the app dies without stopping it (e.g. killed while a tool loops)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


# --- the pool, in the app's process -------------------------------------------------

class _Worker:
    """One worker process and the two pipes to it."""

    def __init__(self) -> None:
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", _BOOTSTRAP, str(child_reads), str(child_writes)],
                pass_fds=(child_reads, child_writes), stdin=subprocess.DEVNULL)
        except BaseException:
            for fd in (child_reads, parent_writes, parent_reads, child_writes):
                os.close(fd)
            raise
        os.close(child_reads)
        os.close(child_writes)
        self.send = Connection(parent_writes, readable=False)
        self.receive = Connection(parent_reads, writable=False)
        try:
            self.send.send([os.getcwd() if not entry else entry for entry in sys.path])
            if not self.receive.poll(START_TIMEOUT) or self.receive.recv() != "ready":
                raise OSError(f"the worker was not ready within {START_TIMEOUT:g} s")
        except (OSError, EOFError) as exc:
            self.stop(kill=True)
            raise OSError(f"the worker did not start ({exc})") from None

    def stop(self, kill: bool) -> None:
        """End the worker: at once (kill), or by closing its pipe (it exits when idle)."""
        if kill:
            try:
                self.process.kill()
            except OSError:
                pass
        for conn in (self.send, self.receive):
            conn.close()
        if kill:   # reap it now; one asked to exit is reaped by subprocess later
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("tool worker %s did not exit after kill", self.process.pid)


class WorkerPool:
    """Worker processes shared by every session; thread-safe.

    Use the module's `POOL`; `run()` is the whole interface.
    """

    def __init__(self, size: int = MAX_WORKERS, keep_warm: int = KEEP_WARM) -> None:
        self.size, self.keep_warm = size, keep_warm
        self._changed = threading.Condition()
        self._idle: list[_Worker] = []
        self._live = 0      # idle + busy + starting
        self._warming = 0   # being started by warm_up, not yet idle

    def run(self, ref: tuple[str, str], tool_name: str, kwargs: dict[str, Any],
            timeout: float) -> tuple[str, bool] | None:
        """Run the function `ref` names in a worker; (text, is error), or None past `timeout`.

        The timeout counts the function's own run: a worker still running then
        is killed (and replaced in the background). Waiting for a free worker
        takes at most `timeout` too; starting one, and importing the function's
        module, at most START_TIMEOUT each.
        Raises WorkersUnavailable when no worker can be started.
        """
        job = (ref[0], ref[1], tool_name, kwargs, timeout)
        worker = self._checkout(time.monotonic() + timeout)
        if worker is None:
            return None
        healthy = False
        try:
            try:
                worker.send.send(job)
            except (OSError, ValueError):   # it died while idle: once more with a fresh one
                self._checkin(worker, healthy=False)
                worker = None
                worker = self._checkout(time.monotonic() + timeout)
                if worker is None:
                    return None
                worker.send.send(job)
            if not worker.receive.poll(START_TIMEOUT):
                log.warning("tool %s did not load within %g s; its worker process was stopped",
                            tool_name, START_TIMEOUT)
                return None
            reply = worker.receive.recv()
            if reply == "started":
                if not worker.receive.poll(timeout):
                    log.warning("tool %s ran past its %g s timeout; its worker process was stopped",
                                tool_name, timeout)
                    return None
                reply = worker.receive.recv()
            healthy = True
            return reply
        except (EOFError, OSError):
            try:
                code = worker.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                code = None
            return f"Error: tool {tool_name!r} stopped unexpectedly (worker exit code {code})", True
        finally:
            if worker is not None:
                self._checkin(worker, healthy)

    @property
    def processes(self) -> int:
        """Worker processes alive now (idle, busy or starting)."""
        return self._live

    def warm_up(self) -> None:
        """Start the warm workers in the background, so that the next call does not wait."""
        with self._changed:
            if self._warm_enough():
                return
        threading.Thread(target=self._refill, name="tool-worker-start", daemon=True).start()

    def stop_idle(self) -> None:
        """End the idle workers (busy ones end when their call returns)."""
        with self._changed:
            idle, self._idle = self._idle, []
            self._live -= len(idle)
            self._changed.notify_all()
        for worker in idle:
            worker.stop(kill=False)

    def _start(self) -> _Worker:
        try:
            return _Worker()
        except Exception as exc:
            raise WorkersUnavailable(f"cannot start a tool worker process: {exc}") from exc

    def _checkout(self, deadline: float) -> _Worker | None:
        with self._changed:
            while not self._idle and self._live >= self.size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            if self._idle:
                return self._idle.pop()
            self._live += 1
        try:
            return self._start()
        except BaseException:
            with self._changed:
                self._live -= 1
                self._changed.notify()
            raise

    def _checkin(self, worker: _Worker, healthy: bool) -> None:
        keep = healthy and worker.process.poll() is None
        with self._changed:
            if keep and len(self._idle) < self.keep_warm:
                self._idle.append(worker)
                self._changed.notify()
                return
            self._live -= 1
            self._changed.notify()
        worker.stop(kill=not healthy)
        if not healthy:
            self.warm_up()   # replace it while the model reads the error

    def _warm_enough(self) -> bool:   # called with the lock held
        return len(self._idle) + self._warming >= self.keep_warm or self._live >= self.size

    def _refill(self) -> None:
        while True:
            with self._changed:
                if self._warm_enough():
                    return
                self._live += 1
                self._warming += 1
            try:
                worker = self._start()
            except WorkersUnavailable as exc:
                with self._changed:
                    self._live -= 1
                    self._warming -= 1
                    self._changed.notify()
                log.warning("%s", exc)
                return
            with self._changed:
                self._warming -= 1
                self._idle.append(worker)
                self._changed.notify()


POOL = WorkerPool()
atexit.register(POOL.stop_idle)
