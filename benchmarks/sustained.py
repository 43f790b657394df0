"""Sustained load and drain of embedded mode (issue #16): does the in-process worker keep a fair
share of the process while the API is busy, and how fast does the backlog drain afterwards?

The real `flowbuilder serve --embedded` runs in a temporary directory (its SQLite database,
keys and log there) on a free 127.0.0.1 port, pinned to the first CPU (this process, the load,
to the second, when there are two), with the execution rate limit raised through its settings
(`EXECUTION_RATE_PER_SECOND`, `EXECUTION_RATE_BURST`) so that the bucket never answers 429;
`MAX_QUEUED_EXECUTIONS` keeps its default. A dev token comes from `flowbuilder dev-token`.

- A: sustained load. The 3-node flow of the engine benchmark (trigger.manual -> data.set ->
  data.transform) is created through the API; then POST execute is sent open-loop at `--rate`
  requests per second for `--seconds`: each request has its time on a fixed schedule and goes
  out then, whatever the earlier ones are doing. At most `--max-in-flight` requests wait for
  their answers; a send whose turn comes while that many wait is not made and is counted
  (`not sent: in-flight cap`), as is a send that went out more than 100 ms after its time
  (`sent late`): the load asked for is then not the load given, and the report says so.
  Every `--interval` seconds: 202s (accepted) and refusals (503 `overloaded`, 429) per second,
  runs finished per second, the backlog (queued + running) and the server's RSS.
- B: idle drain (run first). A first start of the server takes `--drain-runs` runs (2,000)
  as fast as it answers, then stops, which keeps the runs still queued in its outbox; the
  measured server starts on the same directory, its relay sends them to its in-process
  queue, and the clock runs until the backlog is 0 (at most `--drain-timeout` seconds) with
  no API request at all: runs finished per second over that time is the worker's idle rate.
  The drain of what is left after A is timed too (its rate is another idle rate).
- `--api-concurrency N` sets the measured server's `MAX_CONCURRENT_API_REQUESTS` (the first
  start uses 64, to queue fast): a large N is the unbounded API of before #16.

Fair share: runs finished per second under load / the idle rate; issue #16's target is >= 0.5.

How runs are counted: from the server's SQLite file, opened read-only (`mode=ro`), with one
`GROUP BY status` over `executions` per sample. Not from `/metrics`: a scrape is answered by
the same event loop as the load, so under load its answer comes late by the time requests
wait there, which smears the samples in time, and the metrics have no count of runs waiting in
the in-process queue. The database is the record the API and the worker write (WAL mode, so a
reader never blocks them), and a read costs the server nothing but disk cache.

    python -m benchmarks.sustained --seconds 20 --rate 80     # alone; Markdown on stdout
    python -m benchmarks.sustained [DATABASE_URL] --markdown-out FILE   # as `make bench` runs it

`make bench` passes a Postgres URL like to its other sections; this benchmark ignores it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.procs import Server, cpu_seconds, pinned_server, rss_bytes

from support.processes import clean_env, free_port

FLOWBUILDER = str(Path(sys.executable).parent / "flowbuilder")
HUGE_RATE = "1000000000"
USER = "user_sustained_bench"
LATE_S = 0.1
QUEUE_CONCURRENCY = 32
TARGET_SHARE = 0.5
FINISHED = ("succeeded", "failed", "cancelled")
BACKLOG = ("queued", "running")
EXECUTE_BODY = b'{"input":{"n":7,"customer":"bench"}}'
WORKFLOW = {
    "name": "Sustained load",
    "description": "trigger.manual -> data.set -> data.transform (issue #16)",
    "definition": {
        "nodes": [
            {"id": "start", "type": "trigger.manual", "parameters": {}},
            {
                "id": "set",
                "type": "data.set",
                "parameters": {"value": {"step": 1, "n": "{{ input.n }}", "from": "{{ input }}"}},
            },
            {
                "id": "transform",
                "type": "data.transform",
                "parameters": {"expression": "{step: nodes.set.step, n: input.n}"},
            },
        ],
        "edges": [{"source": "start", "target": "set"}, {"source": "set", "target": "transform"}],
    },
}


def log(message: str) -> None:
    print(f"[sustained {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Sample:
    """The state at `t` seconds since the load began."""

    t: float
    sent: int
    accepted: int
    overloaded: int
    limited: int
    other: int
    finished: int
    backlog: int
    rss: int
    cpu: float  # the server's CPU seconds so far


@dataclass
class Load:
    """What the load generator did, counted as answers come in."""

    sent: int = 0
    not_sent: int = 0  # its turn came while max_in_flight requests waited
    late: int = 0  # went out more than LATE_S after its time
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # transport errors by kind
    latencies: list[float] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.statuses[202]

    @property
    def other(self) -> int:
        known = self.statuses[202] + self.statuses[503] + self.statuses[429]
        return sum(self.statuses.values()) - known + sum(self.errors.values())


class RunCounts:
    """Executions by status, read from the server's SQLite file without writing to it."""

    def __init__(self, database: Path) -> None:
        self._connection = sqlite3.connect(
            f"file:{database}?mode=ro", uri=True, check_same_thread=False
        )

    def read(self) -> tuple[int, int]:
        """(finished, backlog): runs ended, and runs queued or running."""
        rows = self._connection.execute(
            "SELECT status, count(*) FROM executions GROUP BY status"
        ).fetchall()
        counts = {str(status): int(n) for status, n in rows}
        return sum(counts.get(s, 0) for s in FINISHED), sum(counts.get(s, 0) for s in BACKLOG)

    def close(self) -> None:
        self._connection.close()


# ---------------------------------------------------------------------------------------------
# The load
# ---------------------------------------------------------------------------------------------


async def _one(client: httpx.AsyncClient, path: str, load: Load) -> None:
    started = time.monotonic()
    try:
        response = await client.post(path, content=EXECUTE_BODY)
    except httpx.HTTPError as error:
        load.errors[type(error).__name__] += 1
        return
    load.statuses[response.status_code] += 1
    load.latencies.append(time.monotonic() - started)


async def _send_on_schedule(
    client: httpx.AsyncClient, path: str, load: Load, rate: float, seconds: float, cap: int
) -> None:
    """Open loop: request i goes out at start + i / rate, unless `cap` wait for answers."""
    in_flight: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    total = int(rate * seconds)
    for i in range(total):
        due = started + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        elif -delay > LATE_S:
            load.late += 1
        if len(in_flight) >= cap:
            load.not_sent += 1
            continue
        load.sent += 1
        task = asyncio.create_task(_one(client, path, load))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)


async def _sample(counts: RunCounts, load: Load, pid: int, t0: float) -> Sample:
    finished, backlog = await asyncio.to_thread(counts.read)
    rss = await asyncio.to_thread(rss_bytes, pid)
    cpu = await asyncio.to_thread(cpu_seconds, pid)
    return Sample(
        round(time.monotonic() - t0, 2),
        load.sent,
        load.accepted,
        load.statuses[503],
        load.statuses[429],
        load.other,
        finished,
        backlog,
        rss,
        cpu,
    )


async def _sampling(
    counts: RunCounts, load: Load, pid: int, t0: float, interval: float, into: list[Sample]
) -> None:
    while True:
        await asyncio.sleep(max(0.0, t0 + len(into) * interval - time.monotonic()))
        into.append(await _sample(counts, load, pid, t0))


@dataclass
class Outcome:
    """Everything the report says."""

    args: dict[str, Any]
    load: Load
    under_load: list[Sample]
    idle: list[Sample]  # B: the drain of the runs kept from the first start, API idle
    idle_drained: bool
    drain: list[Sample]  # after A
    drained: bool
    rss_start: int
    rss_peak: int
    rss_end: int
    cpu: str


def _client(server: Server, token: str, cap: int) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=cap, max_keepalive_connections=min(cap, 64))
    timeout = httpx.Timeout(30.0, connect=10.0)
    return httpx.AsyncClient(
        base_url=server.base_url, headers=headers, limits=limits, timeout=timeout
    )


async def queue_runs(server: Server, token: str, runs: int) -> tuple[str, int]:
    """Create the workflow and request `runs` runs of it, 32 at a time: (its execute path, the
    202s). The worker runs some meanwhile; the server then stops, which keeps the rest."""
    async with _client(server, token, QUEUE_CONCURRENCY) as client:
        created = await client.post("/api/workflows", content=json.dumps(WORKFLOW))
        if created.status_code != 201:
            raise RuntimeError(f"creating the workflow: {created.status_code} {created.text}")
        path = f"/api/workflows/{created.json()['id']}/execute"
        load = Load()
        batch = iter(range(runs))

        async def sender() -> None:
            for _ in batch:
                await _one(client, path, load)

        await asyncio.gather(*(sender() for _ in range(QUEUE_CONCURRENCY)))
        if load.accepted != runs:
            raise RuntimeError(f"queueing runs: {dict(load.statuses)} {dict(load.errors)}")
    return path, load.accepted


async def _drain(
    counts: RunCounts, load: Load, pid: int, t0: float, timeout_s: float
) -> tuple[list[Sample], bool]:
    """Samples every 0.5 s until the backlog is 0 (True) or `timeout_s` has passed (False)."""
    samples = [await _sample(counts, load, pid, t0)]
    started = samples[0].t
    while samples[-1].backlog and samples[-1].t - started < timeout_s:
        await asyncio.sleep(0.5)
        samples.append(await _sample(counts, load, pid, t0))
    return samples, samples[-1].backlog == 0


async def measure(
    server: Server, token: str, database: Path, path: str, args: argparse.Namespace
) -> Outcome:
    assert server.sampler is not None
    counts = RunCounts(database)
    try:
        log("B. drain of the runs kept from the first start")
        t0 = time.monotonic()
        idle, idle_drained = await _drain(counts, Load(), server.pid, t0, args.drain_timeout)
        server.sampler.reset_window()
        rss_start = rss_bytes(server.pid)
        load, samples = Load(), list[Sample]()
        log(f"A. load: {args.rate}/s for {args.seconds} s (at most {args.max_in_flight} waiting)")
        async with _client(server, token, args.max_in_flight) as client:
            t0 = time.monotonic()
            sampler = asyncio.create_task(
                _sampling(counts, load, server.pid, t0, args.interval, samples)
            )
            await _send_on_schedule(client, path, load, args.rate, args.seconds, args.max_in_flight)
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        samples.append(await _sample(counts, load, server.pid, t0))
        log(f"load over after {samples[-1].t:.1f} s; draining (at most {args.drain_timeout} s)")
        drain, drained = await _drain(counts, load, server.pid, t0, args.drain_timeout)
    finally:
        counts.close()
    return Outcome(
        args=vars(args),
        load=load,
        under_load=samples,
        idle=idle,
        idle_drained=idle_drained,
        drain=drain,
        drained=drained,
        rss_start=rss_start,
        rss_peak=server.sampler.window_peak,
        rss_end=rss_bytes(server.pid),
        cpu=_cpu_model(),
    )


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------


def _mib(value: int) -> str:
    return f"{value / 2**20:.0f}"


def _per_s(now: Sample, before: Sample, attribute: str) -> str:
    span = now.t - before.t
    if span <= 0:
        return "-"
    return f"{(getattr(now, attribute) - getattr(before, attribute)) / span:.1f}"


def _cpu_share(now: Sample, before: Sample) -> str:
    span = now.t - before.t
    return f"{100 * (now.cpu - before.cpu) / span:.0f}" if span > 0 else "-"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table: the first column (a label) left-aligned, the figures right."""
    align = ["---", *("---:" for _ in header[1:])]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _rate(samples: list[Sample]) -> tuple[float, float, float]:
    """(runs finished per second, seconds, server CPU %) from the first sample to the last."""
    first, last = samples[0], samples[-1]
    span = last.t - first.t
    if span <= 0:
        return 0.0, 0.0, 0.0
    return (last.finished - first.finished) / span, span, 100 * (last.cpu - first.cpu) / span


def figures(outcome: Outcome) -> dict[str, float]:
    """The headline numbers: rates under load, the idle rate, the fair-share ratio."""
    first, last = outcome.under_load[0], outcome.under_load[-1]
    span = max(last.t - first.t, 1e-9)
    finished_under_load, _, cpu_under_load = _rate(outcome.under_load)
    idle, idle_s, idle_cpu = _rate(outcome.idle)
    after, after_s, _ = _rate(outcome.drain)
    return {
        "accepted_per_s": (last.accepted - first.accepted) / span,
        "refused_per_s": (last.overloaded + last.limited - first.overloaded - first.limited) / span,
        "finished_per_s_under_load": finished_under_load,
        "idle_runs": float(outcome.idle[0].backlog),
        "idle_s": idle_s,
        "idle_per_s": idle,
        "share": finished_under_load / idle if idle > 0 else 0.0,
        "backlog_at_end_of_load": float(outcome.drain[0].backlog),
        "drain_after_load_s": after_s,
        "drain_after_load_per_s": after,
        "cpu_pct_under_load": cpu_under_load,
        "cpu_pct_idle_drain": idle_cpu,
    }


def _drained(samples: list[Sample], drained: bool) -> str:
    seconds = samples[-1].t - samples[0].t
    if drained:
        return f"{samples[0].backlog:,} runs drained in {seconds:.1f} s"
    return f"{samples[-1].backlog:,} of {samples[0].backlog:,} still waiting after {seconds:.0f} s"


def markdown(outcome: Outcome) -> str:
    a, load, f = outcome.args, outcome.load, figures(outcome)
    samples = outcome.under_load
    rows = [
        [
            f"{now.t:.1f}",
            _per_s(now, before, "accepted"),
            _per_s(now, before, "overloaded"),
            _per_s(now, before, "limited"),
            _per_s(now, before, "finished"),
            f"{now.backlog:,}",
            _mib(now.rss),
            _cpu_share(now, before),
        ]
        for before, now in itertools.pairwise(samples)
    ]
    latencies = sorted(load.latencies)
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else 0.0
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0.0
    share_ok = "holds" if f["share"] >= TARGET_SHARE else "**MISSED**"
    bound = a["api_concurrency"] if a["api_concurrency"] is not None else "its default"
    lines = [
        "## Sustained load and drain, embedded mode (#16)",
        "",
        f"`benchmarks/sustained.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}:"
        " `flowbuilder serve --embedded` (SQLite, in-process queue and worker of concurrency 4)"
        f" pinned to one CPU, the load from another ({outcome.cpu}); a 3-node flow"
        " (trigger.manual -> data.set -> data.transform); execution rate limit raised,"
        f" `MAX_QUEUED_EXECUTIONS` at its default, `MAX_CONCURRENT_API_REQUESTS` {bound}."
        " Runs counted from the SQLite file, read-only.",
        "",
        f"- B, idle drain: {a['drain_runs']:,} runs requested, then the server restarted (a"
        " stop keeps the in-process queue in the outbox); from the restart, nothing but the"
        " worker (and the relay) runs until the backlog is 0: the worker's idle rate.",
        f"- A, sustained load: POST execute open-loop at {a['rate']:g}/s for {a['seconds']:g} s"
        f" (at most {a['max_in_flight']} waiting for answers), sampled every"
        f" {a['interval']:g} s; then the drain of what is left.",
        "",
        "### A. Under load",
        "",
        *_table(
            [
                "s",
                "accepted/s",
                "503 overloaded/s",
                "429/s",
                "finished/s",
                "backlog (queued + running)",
                "RSS MiB",
                "server CPU %",
            ],
            rows,
        ),
        "",
        *_table(
            ["total", "value"],
            [
                ["execute requests due", f"{int(a['rate'] * a['seconds']):,}"],
                ["sent", f"{load.sent:,}"],
                ["not sent (in-flight cap)", f"{load.not_sent:,}"],
                [f"sent more than {LATE_S * 1000:.0f} ms late", f"{load.late:,}"],
                ["accepted (202)", f"{load.accepted:,}"],
                ["refused 503 overloaded", f"{load.statuses[503]:,}"],
                ["refused 429", f"{load.statuses[429]:,}"],
                ["other answers and errors", f"{load.other:,}"],
                ["execute latency p50 / p99 ms", f"{p50:.0f} / {p99:.0f}"],
                ["accepted/s under load", f"{f['accepted_per_s']:.1f}"],
                ["finished/s under load", f"{f['finished_per_s_under_load']:.1f}"],
                ["server CPU % under load", f"{f['cpu_pct_under_load']:.0f}"],
                ["backlog when the load ended", f"{f['backlog_at_end_of_load']:,.0f}"],
                [
                    "its drain (API idle)",
                    f"{_drained(outcome.drain, outcome.drained)},"
                    f" {f['drain_after_load_per_s']:.1f} runs/s",
                ],
            ],
        ),
        "",
        "### B. Idle drain and fair share",
        "",
        *_table(
            [
                "idle drain",
                "idle rate (runs/s)",
                "server CPU % idle",
                "finished/s under load",
                "fair share",
                f"target ≥ {TARGET_SHARE}",
            ],
            [
                [
                    _drained(outcome.idle, outcome.idle_drained),
                    f"{f['idle_per_s']:.1f}",
                    f"{f['cpu_pct_idle_drain']:.0f}",
                    f"{f['finished_per_s_under_load']:.1f}",
                    f"{f['share']:.2f}",
                    share_ok,
                ]
            ],
        ),
        "",
        *_table(
            ["RSS MiB, start of A", "peak (A and its drain)", "end"],
            [[_mib(outcome.rss_start), _mib(outcome.rss_peak), _mib(outcome.rss_end)]],
        ),
        "",
    ]
    if load.errors:
        lines += [
            "Transport errors: " + ", ".join(f"{k} {v}" for k, v in load.errors.items()) + ".",
            "",
        ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{os.cpu_count()} CPUs, {line.split(':', 1)[1].strip()}"
    return f"{os.cpu_count()} CPUs"


def _cpus() -> tuple[str | None, set[int] | None]:
    """(the server's CPU, this process's CPUs): apart when there are two or more."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        return None, None
    return str(available[0]), set(available[1:])


def _env(**extra: str) -> dict[str, str]:
    return clean_env(
        EXECUTION_RATE_PER_SECOND=HUGE_RATE,
        EXECUTION_RATE_BURST=HUGE_RATE,
        LOG_FORMAT="text",
        **extra,
    )


def _embedded(
    name: str, env: dict[str, str], workdir: Path, cpu: str | None
) -> contextlib.AbstractContextManager[Server]:
    port = free_port()
    return pinned_server(
        name,
        [FLOWBUILDER, "serve", "--embedded", "--port", str(port)],
        env,
        port,
        workdir / f"{name}.log",
        cpu=cpu,
        ready=lambda client: client.get("/health/ready").status_code == 200,
        cwd=workdir,
    )


def run(args: argparse.Namespace) -> Outcome:
    workdir = Path(tempfile.mkdtemp(prefix="flowbuilder-sustained-"))
    log(f"working directory (database, keys, server logs): {workdir}")
    token = subprocess.run(  # noqa: S603 (our own command)
        [FLOWBUILDER, "dev-token", "--user", USER, "--ttl", "7200"],
        env=_env(),
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    server_cpu, own_cpus = _cpus()
    if own_cpus is not None:
        os.sched_setaffinity(0, own_cpus)
    # The first start only requests the runs of B, as fast as it takes them.
    with _embedded(
        "queueing", _env(MAX_CONCURRENT_API_REQUESTS="64"), workdir, server_cpu
    ) as first:
        log(f"requesting {args.drain_runs} runs for B")
        path, _ = asyncio.run(queue_runs(first, token, args.drain_runs))
    bound = (
        {}
        if args.api_concurrency is None
        else {"MAX_CONCURRENT_API_REQUESTS": str(args.api_concurrency)}
    )
    with _embedded("measured", _env(**bound), workdir, server_cpu) as server:
        database = workdir / ".flowbuilder" / "flowbuilder.db"
        return asyncio.run(measure(server, token, database, path, args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.sustained",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("database_url", nargs="?", help="ignored (embedded mode uses SQLite)")
    parser.add_argument("--rate", type=float, default=100.0, help="execute requests per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between samples")
    parser.add_argument(
        "--max-in-flight", type=int, default=256, help="requests waiting for answers at most"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="longest wait for the backlog"
    )
    parser.add_argument(
        "--drain-runs", type=int, default=2000, help="runs requested for the idle drain (B)"
    )
    parser.add_argument(
        "--api-concurrency",
        type=int,
        help="MAX_CONCURRENT_API_REQUESTS of the measured server (default: its default)",
    )
    parser.add_argument("--markdown-out", type=Path, help="write the section here too")
    parser.add_argument("--json-out", type=Path, help="the samples and totals as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if not (0 < args.rate <= 2000 and 0 < args.seconds <= 60 and args.max_in_flight > 0):
        raise SystemExit("--rate must be in (0, 2000], --seconds in (0, 60], --max-in-flight > 0")
    if not 0 < args.drain_runs <= 10_000:
        raise SystemExit("--drain-runs must be in (0, 10000]")
    outcome = run(args)
    text = markdown(outcome)
    print(text)
    if args.markdown_out is not None:
        args.markdown_out.write_text(text)
    if args.json_out is not None:
        args.json_out.write_text(
            json.dumps(
                {
                    "figures": figures(outcome),
                    "samples": [vars(s) for s in outcome.under_load],
                    "drain": [vars(s) for s in outcome.drain],
                    "idle": [vars(s) for s in outcome.idle],
                },
                indent=2,
                default=str,
            )
        )
    f = figures(outcome)
    log(
        f"accepted {f['accepted_per_s']:.1f}/s, finished {f['finished_per_s_under_load']:.1f}/s"
        f" under load; idle {f['idle_per_s']:.1f}/s; fair share {f['share']:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
