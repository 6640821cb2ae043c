"""Helpers for tests that drive the real web UI: `dagster dev` in its own process group on a free port, a
Dagster instance read from the same DAGSTER_HOME, and headless Debian Chromium through Playwright (never a
downloaded browser)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import yaml

T = TypeVar("T")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 never goes through a proxy


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dagster_binary() -> str:
    candidate = Path(sys.executable).with_name("dagster")
    if candidate.is_file():
        return str(candidate)
    found = shutil.which("dagster")
    if not found:
        raise RuntimeError(f"no dagster executable next to {sys.executable} or on PATH")
    return found


def workspace_location_name(workspace_yaml: Path) -> str:
    """The code location name the UI uses in its URLs (location_name, else the module name)."""
    entry = yaml.safe_load(workspace_yaml.read_text())["load_from"][0]
    (spec,) = entry.values()
    if isinstance(spec, str):  # `python_module: package.module`
        return spec
    return spec.get("location_name") or spec.get("module_name") or spec.get("python_file")


def wait_until(probe: Callable[[], T], timeout: float, what: str, interval: float = 2.0,
               describe: Callable[[], str] | None = None) -> T:
    """Call `probe` until it returns something truthy; fail with `what` (and `describe()`) after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = describe() if describe else ""
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{extra}")
        time.sleep(interval)


def _default_interrupt_signals() -> None:
    """Dagster maps SIGTERM to its SIGINT handling; a runner that started us in the background may have left
    SIGINT ignored, which Python (and so every Dagster process) would inherit. Restore the defaults."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class DagsterDev:
    """`dagster dev -w workspace.yaml` as a subprocess in its own process group, output kept in a log file."""

    def __init__(self, cwd: Path, env: dict[str, str], log_path: Path, port: int | None = None):
        self.cwd, self.env, self.log_path = cwd, env, log_path
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._log = None
        self.stop_signal: str | None = None  # the last signal stop() had to send (SIGKILL: SIGTERM was not enough)
        self.stop_seconds: float | None = None

    def start(self) -> "DagsterDev":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [dagster_binary(), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=self.cwd, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # own session and process group: stopped as a whole, never by name
            preexec_fn=_default_interrupt_signals,
        )
        return self

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no dagster dev output)"
        return "--- dagster dev output (tail) ---\n" + text[-chars:]

    def wait_ready(self, timeout: float = 150.0) -> None:
        def answers() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"dagster dev exited with {self.proc.returncode}\n{self.log_tail()}")
            try:
                with _NO_PROXY.open(self.base_url + "/server_info", timeout=5) as response:
                    return response.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                return False

        wait_until(answers, timeout, f"the webserver at {self.base_url}/server_info", interval=1.0,
                   describe=self.log_tail)

    def _group_alive(self, pgid: int) -> bool:
        self.proc.poll()  # reap our own child so a zombie does not count as alive
        try:
            os.killpg(pgid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM to the whole group, SIGKILL to whatever is left after `grace` seconds."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session: the group id is the leader's pid
        started = time.monotonic()
        try:
            for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 10.0)):
                if not self._group_alive(pgid):
                    break
                try:
                    os.killpg(pgid, sig)
                except ProcessLookupError:
                    break
                self.stop_signal = sig.name
                deadline = time.monotonic() + wait
                while time.monotonic() < deadline and self._group_alive(pgid):
                    time.sleep(0.25)
            self.stop_seconds = time.monotonic() - started
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        finally:
            if self._log is not None:
                self._log.close()


@contextmanager
def running_dagster_dev(cwd: Path, env: dict[str, str], log_path: Path, ready_timeout: float = 150.0) -> Iterator[DagsterDev]:
    server = DagsterDev(cwd, env, log_path).start()
    try:
        server.wait_ready(ready_timeout)
        yield server
    finally:
        server.stop()


@contextmanager
def chromium_context(profile_dir: Path, viewport: dict | None = None):
    """A fresh persistent Chromium context on Debian's /usr/bin/chromium (Playwright never downloads one)."""
    from playwright.sync_api import sync_playwright

    profile_dir.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile_dir), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            viewport=viewport or {"width": 1600, "height": 1300},
        )
        try:
            yield context
        finally:
            context.close()
