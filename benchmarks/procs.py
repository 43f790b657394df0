"""Server processes for the benchmark: start pinned, wait until they answer, measure the CPU time
and resident memory of their process tree, stop them; and a moto server in a process of its own."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from benchmarks import TESTS

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 15.0


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (field 3 onwards)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text.rsplit(")", 1)[1].split()


def process_tree(root: int) -> list[int]:
    """`root` and every descendant alive now."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU time of the tree (reaped children included), in seconds."""
    ticks = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += sum(int(fields[i]) for i in (11, 12, 13, 14))
    return ticks / CLOCK_TICKS


def rss_bytes(root: int) -> int:
    """Resident set size of the tree now."""
    total = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[21]) * PAGE_SIZE
    return total


def tree_breakdown(root: int) -> list[str]:
    """One line per process of the tree: pid, name, RSS now and its peak (VmHWM), in MiB."""
    lines = []
    for pid in process_tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        hwm = int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
        name = fields.get("Name", "?").strip()
        lines.append(f"pid {pid} {name}: RSS {rss:.0f} MiB (peak {hwm:.0f} MiB)")
    return lines


class RssSampler:
    """Samples a process tree's RSS every `interval` seconds from a thread; `peak` is the
    largest sample since start (or since the last `reset_window`, for `window_peak`)."""

    def __init__(self, root: int, interval: float = 0.1) -> None:
        self._root, self._interval = root, interval
        self._stop = threading.Event()
        self.peak = 0
        self.window_peak = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> RssSampler:
        self._thread.start()
        return self

    def reset_window(self) -> None:
        self.window_peak = rss_bytes(self._root)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = rss_bytes(self._root)
            self.peak = max(self.peak, value)
            self.window_peak = max(self.window_peak, value)
            self._stop.wait(self._interval)


@dataclass
class Server:
    """One server process (the root of its tree) and its log."""

    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    sampler: RssSampler | None = field(default=None, repr=False)
    stop_seconds: float = 0.0  # from SIGTERM to exit
    killed: bool = False  # it did not exit within STOP_TIMEOUT_S of SIGTERM

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.contextmanager
def pinned_server(
    name: str,
    command: Sequence[str],
    env: Mapping[str, str],
    port: int,
    log: Path,
    *,
    cpu: str | None,
    ready: Callable[[httpx.Client], bool],
    cwd: Path | None = None,
) -> Iterator[Server]:
    """Start `command` (pinned to `cpu` with taskset when given) until `ready` says so; yield
    it with an RSS sampler running; stop it with SIGTERM (then SIGKILL of its group)."""
    argv = [*(["taskset", "-c", cpu] if cpu is not None else []), *command]
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (our own fixed commands)
            argv,
            env=dict(env),
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(base_url=server.base_url, timeout=2) as client:
            while True:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with {process.returncode}:\n{server.log_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    if ready(client):
                        break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not start:\n{server.log_tail()}")
                time.sleep(0.1)
        server.sampler = RssSampler(process.pid).start()
        yield server
    finally:
        if server.sampler is not None:
            server.sampler.stop()
        server.stop_seconds, server.killed = _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> tuple[float, bool]:
    time.sleep(1)  # let the requests in flight when wrk stopped finish
    started, killed = time.monotonic(), False
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    elapsed = time.monotonic() - started
    # Whatever the server forked and left behind in its own session (group = its pid).
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return elapsed, killed


@contextlib.contextmanager
def moto_process() -> Iterator[str]:
    """A moto server in a process of its own, yielding its endpoint URL: in the benchmark's
    process, moto's threads would take the GIL from the code being measured."""
    script = (
        "import sys; from support.moto_server import MotoServer; "
        "print(MotoServer().start(), flush=True); sys.stdin.read()"
    )
    process = subprocess.Popen(  # noqa: S603 (our own interpreter)
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(TESTS)},
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait()
