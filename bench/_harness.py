"""What the browser benches share: a Streamlit server as a subprocess, accounts made through the
CLI, Debian's headless Chromium, and the in-page timers and waits.

Like tests/e2e: the app runs as `streamlit run` on 127.0.0.1 with a throw-away workspace, and
Chromium is /usr/bin/chromium launched directly (never `playwright install`).
"""
from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
PASSWORD = "bench-password-2718"
STARTUP_TIMEOUT_S = 60

# Settings a bench must not inherit from the shell (they would point the app elsewhere).
FOREIGN_SETTINGS = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "STUDIO_MODEL", "STUDIO_DATABASE_URL",
                    "STUDIO_PROVIDER", "STUDIO_DATA_DIR")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_env(workspace: Path, **settings: str) -> dict[str, str]:
    """The environment for the app and the CLI: this workspace and these settings only."""
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_SETTINGS}
    env.update(STUDIO_DATA_DIR=str(workspace), PYTHONUNBUFFERED="1", **settings)
    return env


class TempWorkspace:
    """A temporary folder (workspace, logs, scripts), removed on exit."""

    def __enter__(self) -> Path:
        self.path = Path(tempfile.mkdtemp(prefix="studio-bench-"))
        return self.path

    def __exit__(self, *exc) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


class StreamlitServer:
    """`streamlit run SCRIPT` on a free port of 127.0.0.1, from the repository root; stopped on exit."""

    def __init__(self, script: Path | str, env: dict[str, str], log_path: Path):
        self.script, self.env, self.log_path = str(script), env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "StreamlitServer":
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", self.script, "--server.headless", "true",
             "--server.port", str(self.port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while not self._healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.__exit__()
                raise RuntimeError(f"streamlit {self.script} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.2)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as response:
                return response.read().decode().strip() == "ok"
        except OSError:
            return False

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def __exit__(self, *exc) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def add_users(names: list[str], env: dict[str, str]) -> None:
    """Create accounts the way an admin would script it: `python -m studio users add NAME`,
    the password on stdin. One at a time: each command rewrites the users store."""
    for name in names:
        done = subprocess.run([sys.executable, "-m", "studio", "users", "add", name], cwd=ROOT, env=env,
                              input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"`python -m studio users add {name}` failed ({done.returncode}): "
                               f"{done.stderr.strip() or done.stdout.strip()}")


def list_accounts(env: dict[str, str]) -> list[str]:
    """The account names `python -m studio users list` prints (one per line, name first)."""
    done = subprocess.run([sys.executable, "-m", "studio", "users", "list"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"`python -m studio users list` failed ({done.returncode}): {done.stderr.strip()}")
    return [line.split()[0] for line in done.stdout.splitlines() if line.strip()]


def machine_note() -> str:
    """CPUs and load average: the benches share the machine with whatever else runs on it."""
    one, five, _ = os.getloadavg()
    return f"{os.cpu_count()} CPUs, load average {one:.1f} (1 min), {five:.1f} (5 min)"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): a value that was actually measured."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


# --- in the page -------------------------------------------------------------------------

# Notes when the page last sent anything to the app (a rerun request) over Streamlit's websocket,
# and when a component (an iframe: the login cookie manager) first appeared.
TRACK_RERUN_REQUESTS_JS = """
(() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (...args) {
    window.__lastRerunRequest = performance.now();
    return send.apply(this, args);
  };
  const watch = new MutationObserver(() => {
    if (document.querySelector('iframe')) { window.__componentAt = performance.now(); watch.disconnect(); }
  });
  watch.observe(document, {subtree: true, childList: true});
})();
"""
# True once the component has reported to the app (its rerun request) after it appeared.
COMPONENT_REPORTED_JS = """() => window.__componentAt !== undefined
    && (window.__lastRerunRequest || 0) > window.__componentAt"""

# Resolves once no script run is in progress (no "Running..." status widget) and the page has
# asked for no rerun for `quiet` ms: the login cookie component asks for one of its own right
# after a page load, and a message sent just then is lost (see DESIGN.md, gotchas).
SETTLED_JS = """(quiet) => {
    const now = performance.now();
    if (document.querySelector('[data-testid="stStatusWidget"]')) { window.__idleSince = undefined; return false; }
    if (window.__idleSince === undefined) window.__idleSince = now;
    return now - Math.max(window.__idleSince, window.__lastRerunRequest || 0) >= quiet;
}"""
RESET_SETTLED_JS = "() => { window.__idleSince = undefined; }"

LOGIN_FORM = '[data-testid="stForm"]:has-text("Log in")'
CHAT_INPUT = '[data-testid="stChatInput"] textarea'
USER_MESSAGES = '[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarUser"])'
ASSISTANT_MESSAGES = '[data-testid="stChatMessage"]:has([data-testid="stChatMessageAvatarAssistant"])'
# What a failed page run or turn shows: a traceback, an error box, or a warning (e.g. "no reply yet").
PROBLEMS = ('[data-testid="stException"], [data-testid="stAlertContentError"], '
            '[data-testid="stAlertContentWarning"]')


def cpu_seconds_by_process(servers: dict[str, int]) -> dict[str, float]:
    """CPU time used so far by each named server process (name -> pid), by the browser (every
    other process this bench started: Chromium and Playwright's driver) and by this process (the
    bench itself and the fake OpenAI server's thread)."""
    import psutil

    def used(process: psutil.Process) -> float:
        try:
            times = process.cpu_times()
        except psutil.Error:   # a renderer that just closed
            return 0.0
        return times.user + times.system

    me = psutil.Process()
    names = {pid: name for name, pid in servers.items()}
    totals = {**{name: 0.0 for name in servers}, "browser": 0.0, "bench + fake": used(me)}
    for child in me.children(recursive=True):
        totals[names.get(child.pid, "browser")] += used(child)
    return totals
