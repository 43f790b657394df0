"""The report: machine facts, the tables (terminal and Markdown), and `docs/benchmarks.md`, whose
generated blocks sit between `<!-- bench:NAME:begin -->` and `<!-- bench:NAME:end -->` markers so
that hand-written sections (profiles, before/after notes) survive a new run."""

from __future__ import annotations

import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from benchmarks.load import Result, Scenario

TARGET_RATIO = 0.6
TARGET_TAIL = 4.0  # p99 <= 4 x p50
TARGET_RSS_MIB = 150.0

PACKAGES = ("litestar", "granian", "uvloop", "asyncpg", "sqlalchemy", "msgspec", "pyjwt", "dishka")


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f"{kib / 2**20:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": str(len(_affinity())),
        "cpu": model,
        "kernel": platform.release(),
        "memory": memory,
        "python": platform.python_version(),
    }


def _affinity() -> set[int]:
    import os

    return os.sched_getaffinity(0)


def versions(postgres: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    found["postgres"] = postgres
    try:
        wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)  # noqa: S607
        match = re.search(r"wrk (\S+)", wrk.stdout + wrk.stderr)
        found["wrk"] = match.group(1) if match else "?"
    except OSError:
        found["wrk"] = "?"
    return found


def git_revision(root: Path) -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],  # noqa: S607
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    except OSError:
        return "?"
    return f"{head or '?'}{' + uncommitted changes' if dirty else ''}"


# ---------------------------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------------------------


def _errors(result: Result) -> str:
    if result.failure:
        return "FAILED"
    parts = []
    if result.unexpected:
        others = ", ".join(f"{k}: {v}" for k, v in result.statuses.items() if v and k[0] != "2")
        parts.append(f"{result.unexpected} ({others})" if others else str(result.unexpected))
    if result.socket_errors:
        parts.append(f"{result.socket_errors} socket")
    return "; ".join(parts) or "0"


def app_table(scenarios: Sequence[Scenario], results: Mapping[str, Result]) -> list[list[str]]:
    rows = [["scenario", "req/s", "p50 ms", "p99 ms", "p99/p50", "errors", "CPU ms/req", "RSS MiB"]]
    for scenario in scenarios:
        r = results.get(scenario.key)
        if r is None:
            continue
        tail = r.p99_ms / r.p50_ms if r.p50_ms else 0.0
        rows.append(
            [
                scenario.label,
                f"{r.rps:,.0f}",
                f"{r.p50_ms:.2f}",
                f"{r.p99_ms:.2f}",
                f"{tail:.1f}",
                _errors(r),
                f"{r.cpu_ms_per_request:.3f}",
                f"{r.peak_rss_mib:.0f}",
            ]
        )
    return rows


def _ok(flag: bool) -> str:
    return "yes" if flag else "**no**"


def ratio_table(
    scenarios: Sequence[Scenario],
    ours: Mapping[str, Result],
    ceiling: Mapping[str, Result],
) -> list[list[str]]:
    rows = [
        [
            "scenario",
            "FlowBuilder req/s",
            "ceiling req/s",
            "ratio",
            f"≥ {TARGET_RATIO}×",
            "CPU/req vs ceiling",
            f"p99 ≤ {TARGET_TAIL:.0f}× p50",
            f"RSS ≤ {TARGET_RSS_MIB:.0f} MiB",
        ]
    ]
    for scenario in scenarios:
        a, b = ours.get(scenario.key), ceiling.get(scenario.key)
        if a is None or b is None:
            continue
        ratio = a.rps / b.rps if b.rps else 0.0
        cpu = a.cpu_ms_per_request / b.cpu_ms_per_request if b.cpu_ms_per_request else 0.0
        tail_ok = a.p50_ms > 0 and a.p99_ms <= TARGET_TAIL * a.p50_ms
        rows.append(
            [
                scenario.label,
                f"{a.rps:,.0f}",
                f"{b.rps:,.0f}",
                f"{ratio:.2f}×",
                _ok(ratio >= TARGET_RATIO and not a.failure and not a.unexpected),
                f"{cpu:.1f}×",
                _ok(tail_ok),
                _ok(a.peak_rss_mib <= TARGET_RSS_MIB),
            ]
        )
    return rows


def markdown(rows: list[list[str]]) -> str:
    header, *body = rows
    numeric = [i for i, cell in enumerate(body[0] if body else []) if _numeric(cell)]
    align = ["---:" if i in numeric else "---" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def _numeric(cell: str) -> bool:
    return bool(re.fullmatch(r"[\d,.]+(×)?", cell))


def plain(rows: list[list[str]]) -> str:
    widths = [max(len(row[i].replace("**", "")) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [c.replace("**", "") for c in row]
        lines.append(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# docs/benchmarks.md
# ---------------------------------------------------------------------------------------------

TEMPLATE = """# Benchmarks

`make bench` (that is, `.venv/bin/python -m benchmarks`) writes the generated blocks of this file;
text outside the `<!-- bench:... -->` markers is kept from run to run. Absolute figures drift
between machines and from run to run (10 to 20 % for the same scenario on a 2-core box); the
ratio to the ceiling app measured in the same run is what counts. The Scale, Engine and Sustained
sections come from `benchmarks/scale.py`, `benchmarks/engine.py` and `benchmarks/sustained.py`,
which `make bench` runs after the API part (`make bench BENCH_ARGS="--no-scale --no-engine
--no-sustained"` skips them; `--help` lists the options).

## API throughput: FlowBuilder against the raw ceiling

<!-- bench:api:begin -->
(not run yet)
<!-- bench:api:end -->

<!-- bench:scale:begin -->
## Scale

(not run yet: `benchmarks/scale.py` writes this section)
<!-- bench:scale:end -->

<!-- bench:engine:begin -->
## Engine

(not run yet: `benchmarks/engine.py` writes this section)
<!-- bench:engine:end -->

<!-- bench:sustained:begin -->
## Sustained load and drain, embedded mode (#16)

(not run yet: `benchmarks/sustained.py` writes this section)
<!-- bench:sustained:end -->

## Profiles and fixes (before / after)

Where a target is missed: the profile that shows why (py-spy or pyinstrument), the fix, and the
figures before and after it. Hand-written; `make bench` leaves this section alone.

(none yet)
"""


def update_doc(path: Path, blocks: Mapping[str, str]) -> None:
    """Replace the named generated blocks of `path` (created from TEMPLATE when missing)."""
    text = path.read_text() if path.exists() else TEMPLATE
    for name, content in blocks.items():
        begin, end = f"<!-- bench:{name}:begin -->", f"<!-- bench:{name}:end -->"
        block = f"{begin}\n{content.strip()}\n{end}"
        if begin in text and end in text:
            head, rest = text.split(begin, 1)
            _, tail = rest.split(end, 1)
            text = head + block + tail
        else:
            text = text.rstrip() + f"\n\n{block}\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
