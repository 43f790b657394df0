"""`make bench`: FlowBuilder's API against the raw ceiling app, same data, same load, one run.

1. A throwaway Postgres cluster (tests/support/postgres.py), a loopback JWKS server and RS256
   tokens (iss = the JWKS server's base URL, azp an authorized party), a moto SQS server in this
   process; `flowbuilder migrate`.
2. The seed (benchmarks/seed.py) through the API of a first `flowbuilder serve`; once its
   outbox has drained, the seeded database is copied (CREATE DATABASE ... TEMPLATE) for each
   app under test, so both start from identical data and fresh processes.
3. `flowbuilder serve` in its production configuration (Postgres, Clerk JWKS with iss and azp
   checks, SQS outbox, secrets in the database, a rate limit too large to trigger), pinned to
   CPU 0; each scenario under wrk pinned to CPU 1 (3 s warm-up, 10 s measured, 1 thread, 32
   connections). Then the same for the ceiling app (benchmarks/ceiling.py under granian).
4. The table, the ratios, and docs/benchmarks.md.

Scale, engine and sustained sections: when `benchmarks/scale.py` / `benchmarks/engine.py` /
`benchmarks/sustained.py` exist (and `--no-scale` / `--no-engine` / `--no-sustained` are not
given), each runs as `python -m benchmarks.<name> DATABASE_URL --markdown-out FILE`,
DATABASE_URL an empty database of this run's Postgres (the server's URL is also in the
environment as FLOWBUILDER_BENCH_POSTGRES_URL); the sustained section (embedded mode, its own
SQLite) gets no URL. FILE when the script wrote it, else its standard output, becomes that
section of docs/benchmarks.md. Each is bounded by `--section-timeout` (900 s).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import boto3  # type: ignore[import-untyped]
import httpx
from sqlalchemy.engine import make_url

from benchmarks import ROOT
from benchmarks.load import WRK_CONNECTIONS, WRK_THREADS, Result, Scenario, run_scenario
from benchmarks.procs import Server, pinned_server, tree_breakdown
from benchmarks.report import (
    TARGET_RATIO,
    TARGET_RSS_MIB,
    TARGET_TAIL,
    app_table,
    git_revision,
    machine,
    markdown,
    now_utc,
    plain,
    ratio_table,
    update_doc,
    versions,
)
from benchmarks.seed import EXECUTE_BODY, Seeded, seed, workflow_body

from support.jwks import JwksServer
from support.moto_server import MotoServer
from support.postgres import local_cluster
from support.processes import clean_env, free_port
from support.tokens import AUTHORIZED_PARTY, make_rsa_key, mint_token

BIN = Path(sys.executable).parent
FLOWBUILDER = str(BIN / "flowbuilder")
GRANIAN = str(BIN / "granian")
DOC = ROOT / "docs" / "benchmarks.md"
TOKEN_TTL_S = 3 * 3600
HUGE_RATE = "1000000000"
SECTION_TIMEOUT_S = 900
OUTBOX_WAIT_S = 10
LABELS = {
    "list_workflows": "GET /api/workflows?limit=20",
    "get_workflow": "GET /api/workflows/{id}",
    "create_workflow": "POST /api/workflows",
    "replace_workflow": "PUT /api/workflows/{id}",
    "execute_workflow": "POST /api/workflows/{id}/execute",
    "list_executions": "GET /api/executions?limit=20",
    "get_execution": "GET /api/executions/{id}",
}
RUN_ORDER = [
    "list_workflows",
    "get_workflow",
    "list_executions",
    "get_execution",
    "create_workflow",
    "replace_workflow",
    "execute_workflow",
]


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def dsn(url: str) -> str:
    """asyncpg's form of a SQLAlchemy database URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def flowbuilder_env(
    database_url: str, issuer: str, queue_url: str, sqs_endpoint: str, key: str
) -> dict[str, str]:
    url = make_url(database_url)
    env: dict[str, str] = clean_env(
        DB_HOST=str(url.host),
        DB_PORT=str(url.port),
        DB_NAME=str(url.database),
        DB_USER=str(url.username),
        DB_PASSWORD=url.password or "",
        DB_SSL_MODE="disable",
        CLERK_FRONTEND_URL=issuer,
        CLERK_AUTHORIZED_PARTIES=AUTHORIZED_PARTY,
        WORKFLOW_QUEUE_URL=queue_url,
        SQS_ENDPOINT_URL=sqs_endpoint,
        AWS_REGION="us-east-1",
        AWS_DEFAULT_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 (a dummy for moto)
        USE_DB_SECRETS="true",
        SECRETS_ENCRYPTION_KEY=key,
        IDEMPOTENCY_HMAC_KEY=base64.b64encode(secrets.token_bytes(32)).decode(),
        EXECUTION_RATE_PER_SECOND=HUGE_RATE,
        EXECUTION_RATE_BURST=HUGE_RATE,
        # The load comes from one user: lift their write rate and quotas (the checks still run).
        WRITE_RATE_PER_SECOND=HUGE_RATE,
        WRITE_RATE_BURST=HUGE_RATE,
        MAX_WORKFLOWS_PER_USER=HUGE_RATE,
        MAX_CREDENTIALS_PER_USER=HUGE_RATE,
    )
    return env


def ceiling_env(database_url: str, jwks_url: str, issuer: str) -> dict[str, str]:
    env: dict[str, str] = clean_env(
        CEILING_DSN=dsn(database_url),
        CEILING_JWKS_URL=jwks_url,
        CEILING_ISSUER=issuer,
        CEILING_AUTHORIZED_PARTIES=AUTHORIZED_PARTY,
        EXECUTION_RATE_PER_SECOND=HUGE_RATE,
        EXECUTION_RATE_BURST=HUGE_RATE,
        WRITE_RATE_PER_SECOND=HUGE_RATE,
        WRITE_RATE_BURST=HUGE_RATE,
        MAX_WORKFLOWS_PER_USER=HUGE_RATE,
        PYTHONPATH=str(ROOT),
    )
    return env


def _cpus() -> tuple[str | None, str | None]:
    """(server CPU, wrk CPU): 0 and 1 when there are two CPUs to pin to."""
    available = sorted(os.sched_getaffinity(0))
    if len(available) >= 2:
        return str(available[0]), str(available[1])
    log("fewer than 2 CPUs: server and wrk are not pinned apart")
    return None, None


@contextlib.contextmanager
def flowbuilder_server(
    name: str, env: Mapping[str, str], workdir: Path, cpu: str | None
) -> Iterator[Server]:
    port = free_port()
    with pinned_server(
        name,
        [FLOWBUILDER, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env,
        port,
        workdir / f"{name}.log",
        cpu=cpu,
        ready=lambda client: client.get("/health/ready").status_code == 200,
        cwd=workdir,
    ) as server:
        yield server


@contextlib.contextmanager
def ceiling_server(
    name: str, env: Mapping[str, str], workdir: Path, cpu: str | None, token: str
) -> Iterator[Server]:
    port = free_port()
    command = [
        GRANIAN,
        "--interface",
        "asgi",
        "--loop",
        "uvloop",
        "--workers",
        "1",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--working-dir",
        str(ROOT),
        "benchmarks.ceiling:app",
    ]
    auth = {"Authorization": f"Bearer {token}"}
    with pinned_server(
        name,
        command,
        env,
        port,
        workdir / f"{name}.log",
        cpu=cpu,
        ready=lambda client: client.get("/api/workflows", headers=auth).status_code == 200,
        cwd=ROOT,
    ) as server:
        yield server


# ---------------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------------


async def _admin(server_url: str, *statements: str) -> list[Any]:
    connection = await asyncpg.connect(dsn(server_url))
    try:
        return [await connection.fetch(statement) for statement in statements]
    finally:
        await connection.close()


def _on_database(server_url: str, database: str) -> str:
    return make_url(server_url).set(database=database).render_as_string(hide_password=False)


async def _wait_outbox_empty(database_url: str, timeout_s: float) -> int:
    """Wait for the seed server's relay to deliver the outbox; the rows left over."""
    deadline = time.monotonic() + timeout_s
    connection = await asyncpg.connect(dsn(database_url))
    try:
        while True:
            left = int(await connection.fetchval("SELECT count(*) FROM outbox"))
            if left == 0 or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)
    finally:
        await connection.close()


async def _finish_seed(database_url: str) -> dict[str, int]:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        await connection.execute("DELETE FROM outbox")  # delivered or not, not the apps' work
        await connection.execute("VACUUM ANALYZE")
        counts = {}
        for table in ("workflows", "workflow_versions", "executions", "workflow_tags"):
            counts[table] = int(await connection.fetchval(f"SELECT count(*) FROM {table}"))  # noqa: S608
        return counts
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------------------------


def scenarios(seeded: Seeded) -> list[Scenario]:
    workflow = seeded.heavy_workflows[0]
    put_targets = tuple(f"/api/workflows/{w}" for w in seeded.heavy_workflows[10:26])
    return [
        Scenario(
            "list_workflows",
            "GET /api/workflows?limit=20",
            "GET",
            ("/api/workflows?limit=20",),
            200,
        ),
        Scenario(
            "get_workflow", "GET /api/workflows/{id}", "GET", (f"/api/workflows/{workflow}",), 200
        ),
        Scenario(
            "create_workflow",
            "POST /api/workflows",
            "POST",
            ("/api/workflows",),
            201,
            workflow_body("Created by wrk", ["bench", "created"]),
        ),
        Scenario(
            "replace_workflow",
            "PUT /api/workflows/{id}",
            "PUT",
            put_targets,
            200,
            workflow_body("Replaced by wrk", ["bench", "replaced"]),
        ),
        Scenario(
            "execute_workflow",
            "POST /api/workflows/{id}/execute",
            "POST",
            (f"/api/workflows/{workflow}/execute",),
            202,
            EXECUTE_BODY,
        ),
        Scenario(
            "list_executions",
            "GET /api/executions?limit=20",
            "GET",
            ("/api/executions?limit=20",),
            200,
        ),
        Scenario(
            "get_execution",
            "GET /api/executions/{id}",
            "GET",
            (f"/api/executions/{seeded.heavy_executions[0]}",),
            200,
        ),
    ]


def smoke(server: Server, plan: list[Scenario], token: str) -> list[str]:
    """One request per scenario before the load: the status and the body's shape."""
    problems = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.base_url, timeout=10) as client:
        for scenario in plan:
            response = client.request(
                scenario.method, scenario.paths[0], content=scenario.body, headers=headers
            )
            if response.status_code != scenario.expected:
                problems.append(
                    f"{server.name} {scenario.label}: {response.status_code} "
                    f"(expected {scenario.expected}): {response.text[:300]}"
                )
                continue
            body = response.json()
            keys = {"items", "next_cursor"} if "?" in scenario.paths[0] else {"id"}
            if not keys <= set(body):
                problems.append(f"{server.name} {scenario.label}: body lacks {keys - set(body)}")
            elif "items" in body and len(body["items"]) != 20:
                problems.append(f"{server.name} {scenario.label}: {len(body['items'])} items")
    return problems


def bench_server(
    server: Server,
    plan: list[Scenario],
    token: str,
    workdir: Path,
    args: argparse.Namespace,
    wrk_cpu: str | None,
) -> dict[str, Result]:
    results: dict[str, Result] = {}
    # Writes last, execute last of all: the outbox it fills is relayed by FlowBuilder's server
    # in the background, which would otherwise eat into the scenarios that follow.
    order = sorted(plan, key=lambda s: RUN_ORDER.index(s.key) if s.key in RUN_ORDER else 99)
    for scenario in order:
        result = run_scenario(
            server,
            scenario,
            token,
            workdir,
            warmup_s=args.warmup,
            duration_s=args.duration,
            wrk_cpu=wrk_cpu,
        )
        results[scenario.key] = result
        log(
            f"{server.name:<11} {scenario.label:<34} {result.rps:8,.0f} req/s  "
            f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms  "
            f"cpu {result.cpu_ms_per_request:.3f} ms/req  rss {result.peak_rss_mib:.0f} MiB  "
            f"statuses {result.statuses}{'  FAILED: ' + result.failure if result.failure else ''}"
        )
    return results


def _server_log_problems(server: Server) -> list[str]:
    """The distinct WARNING/ERROR/CRITICAL messages of a server's log, with their counts."""
    try:
        text = server.log.read_text(errors="replace")
    except OSError:
        return []
    seen: dict[str, int] = {}
    for line in text.splitlines():
        match = re.search(r" (WARNING|ERROR|CRITICAL) (\S+) request_id=\S+ (.*)", line)
        if match:
            message = f"{match.group(1)} {match.group(2)}: {match.group(3)[:160]}"
            seen[message] = seen.get(message, 0) + 1
        elif line.startswith(("Traceback", "[ERROR]", "[CRITICAL]")):
            seen[line[:160]] = seen.get(line[:160], 0) + 1
    return [f"{message} (×{count})" for message, count in seen.items()]


async def _outbox_backlog(database_url: str) -> int:
    connection = await asyncpg.connect(dsn(database_url))
    try:
        return int(await connection.fetchval("SELECT count(*) FROM outbox"))
    finally:
        await connection.close()


# ---------------------------------------------------------------------------------------------
# Scale, engine and sustained sections
# ---------------------------------------------------------------------------------------------

NO_DATABASE = {"sustained"}  # embedded mode: a SQLite file of its own, no Postgres


def run_section(
    name: str, database_url: str | None, workdir: Path, env: Mapping[str, str], timeout_s: int
) -> str | None:
    """Run benchmarks/<name>.py if present (with `database_url` as its argument when given);
    its Markdown, or None when it does not exist."""
    if not (ROOT / "benchmarks" / f"{name}.py").exists():
        log(f"benchmarks/{name}.py not present: its section keeps its placeholder")
        return None
    out = workdir / f"{name}.md"
    base = [sys.executable, "-m", f"benchmarks.{name}", *([database_url] if database_url else [])]
    log(f"running benchmarks/{name}.py (at most {timeout_s} s)")
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603 (our own module)
            [*base, "--markdown-out", str(out)],
            cwd=ROOT,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode == 2 and "unrecognized arguments" in done.stderr:
            remaining = max(60, timeout_s - int(time.monotonic() - started))
            done = subprocess.run(  # noqa: S603 (our own module)
                base,
                cwd=ROOT,
                env=dict(env),
                capture_output=True,
                text=True,
                timeout=remaining,
                check=False,
            )
    except subprocess.TimeoutExpired:
        return f"`benchmarks/{name}.py` did not finish within {timeout_s} s in this run."
    (workdir / f"{name}.log").write_text(done.stdout + "\n" + done.stderr)
    elapsed = time.monotonic() - started
    log(f"benchmarks/{name}.py exited with {done.returncode} after {elapsed:.0f} s")
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).splitlines()[-15:])
        return f"`benchmarks/{name}.py` failed (exit {done.returncode}):\n\n```\n{tail}\n```"
    text = out.read_text() if out.exists() and out.read_text().strip() else done.stdout
    if not text.lstrip().startswith("#"):
        text = f"## {name.title()}\n\n{text}"
    return text


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="measured seconds per scenario")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per scenario")
    parser.add_argument(
        "--only", nargs="*", default=None, help="scenario keys to run (default: all)"
    )
    parser.add_argument("--no-ceiling", action="store_true", help="skip the ceiling app")
    for name in ("scale", "engine", "sustained"):
        parser.add_argument(
            f"--with-{name}",
            action=argparse.BooleanOptionalAction,
            default=True,
            help=f"run benchmarks/{name}.py when present (default: yes)",
        )
        parser.add_argument(f"--no-{name}", dest=f"with_{name}", action="store_false")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks.md")
    parser.add_argument(
        "--render",
        metavar="RESULTS_JSON",
        help="only rewrite the API section of docs/benchmarks.md from an earlier run's results",
    )
    parser.add_argument(
        "--section-timeout",
        type=int,
        default=SECTION_TIMEOUT_S,
        help="scale/engine/sustained time bound",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.render:
        return render(Path(args.render), args)
    started = time.monotonic()
    load_before = _loadavg()
    server_cpu, wrk_cpu = _cpus()
    workdir = Path(tempfile.mkdtemp(prefix="flowbuilder-bench-"))
    log(f"working directory (logs, wrk scripts, results.json): {workdir}")
    key = make_rsa_key("bench-key")
    users = ["user_bench_heavy", *(f"user_bench_{i}" for i in range(1, 5))]
    with contextlib.ExitStack() as stack:
        jwks = stack.enter_context(JwksServer(key))
        issuer = jwks.url.split("/.well-known/", 1)[0]
        expires = int(time.time()) + TOKEN_TTL_S
        tokens = {
            user: mint_token(key, sub=user, iss=issuer, azp=AUTHORIZED_PARTY, exp=expires)
            for user in users
        }
        heavy_token = tokens[users[0]]
        moto = stack.enter_context(MotoServer())
        sqs = boto3.client(
            "sqs",
            endpoint_url=moto.url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 (a dummy for moto)
        )
        queue_url = sqs.create_queue(QueueName="flowbuilder-bench")["QueueUrl"]
        log("starting Postgres")
        pg_server = stack.enter_context(local_cluster())
        pg_version = asyncio.run(_admin(pg_server, "SHOW server_version"))[0][0][0]
        asyncio.run(_admin(pg_server, "CREATE DATABASE bench_seed"))
        secrets_key = "bench:" + base64.b64encode(secrets.token_bytes(32)).decode()

        def env_for(database: str) -> dict[str, str]:
            return flowbuilder_env(
                _on_database(pg_server, database), issuer, queue_url, moto.url, secrets_key
            )

        migrate = subprocess.run(  # noqa: S603 (our own command)
            [FLOWBUILDER, "migrate"],
            env=env_for("bench_seed"),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if migrate.returncode != 0:
            raise SystemExit(f"flowbuilder migrate failed:\n{migrate.stderr}")

        log("seeding through the API")
        seed_started = time.monotonic()
        with flowbuilder_server("seed", env_for("bench_seed"), workdir, server_cpu) as seeder:
            seeded = asyncio.run(seed(seeder.base_url, tokens, users[0]))
            left = asyncio.run(
                _wait_outbox_empty(_on_database(pg_server, "bench_seed"), OUTBOX_WAIT_S)
            )
        counts = asyncio.run(_finish_seed(_on_database(pg_server, "bench_seed")))
        seed_s = time.monotonic() - seed_started
        log(f"seeded in {seed_s:.0f} s: {counts}; outbox rows left undelivered: {left}")
        asyncio.run(
            _admin(
                pg_server,
                "CREATE DATABASE bench_flowbuilder TEMPLATE bench_seed",
                "CREATE DATABASE bench_ceiling TEMPLATE bench_seed",
            )
        )

        plan = scenarios(seeded)
        if args.only:
            plan = [s for s in plan if s.key in args.only]
        problems: list[str] = []
        results: dict[str, dict[str, Result]] = {}
        peaks: dict[str, float] = {}
        log_problems: dict[str, list[str]] = {}
        backlog: dict[str, int] = {}
        breakdown: dict[str, list[str]] = {}

        log("FlowBuilder: `flowbuilder serve`")
        with flowbuilder_server(
            "flowbuilder", env_for("bench_flowbuilder"), workdir, server_cpu
        ) as server:
            problems += smoke(server, plan, heavy_token)
            results["flowbuilder"] = bench_server(server, plan, heavy_token, workdir, args, wrk_cpu)
            assert server.sampler is not None
            peaks["flowbuilder"] = server.sampler.peak / 2**20
            breakdown["flowbuilder"] = tree_breakdown(server.pid)
            fb_url = _on_database(pg_server, "bench_flowbuilder")
            backlog["at_end"] = asyncio.run(_outbox_backlog(fb_url))
            time.sleep(5)
            backlog["5_s_later"] = asyncio.run(_outbox_backlog(fb_url))
            log(f"FlowBuilder's outbox backlog after the run: {backlog}")
        log_problems["flowbuilder"] = _server_log_problems(server)
        if server.killed:
            problems.append(
                f"`flowbuilder serve` did not exit within {server.stop_seconds:.0f} s of SIGTERM"
                " (killed)"
            )

        if not args.no_ceiling:
            log("ceiling: benchmarks/ceiling.py under granian")
            env = ceiling_env(_on_database(pg_server, "bench_ceiling"), jwks.url, issuer)
            with ceiling_server("ceiling", env, workdir, server_cpu, heavy_token) as server:
                problems += smoke(server, plan, heavy_token)
                results["ceiling"] = bench_server(server, plan, heavy_token, workdir, args, wrk_cpu)
                assert server.sampler is not None
                peaks["ceiling"] = server.sampler.peak / 2**20
                breakdown["ceiling"] = tree_breakdown(server.pid)
            log_problems["ceiling"] = _server_log_problems(server)
            if server.killed:
                problems.append("the ceiling did not exit on SIGTERM (killed)")
        api_s = time.monotonic() - started

        sections: dict[str, str] = {}
        section_env = {**os.environ, "FLOWBUILDER_BENCH_POSTGRES_URL": pg_server}
        # The sustained load and the engine first: their rates would otherwise share the CPUs
        # with the checkpoints and autovacuum that follow the scale benchmark's million-row load.
        for name, wanted in (
            ("sustained", args.with_sustained),
            ("engine", args.with_engine),
            ("scale", args.with_scale),
        ):
            if wanted:
                url = None
                if name not in NO_DATABASE:
                    database = f"bench_{name}"
                    asyncio.run(_admin(pg_server, "CHECKPOINT", f"CREATE DATABASE {database}"))
                    url = _on_database(pg_server, database)
                text = run_section(name, url, workdir, section_env, args.section_timeout)
                if text is not None:
                    sections[name] = text

    total_s = time.monotonic() - started
    facts = {
        "date": now_utc(),
        "machine": machine(),
        "versions": versions(pg_version),
        "revision": git_revision(ROOT),
        "seed": {"counts": counts, "seconds": round(seed_s, 1), "outbox_left": left},
        "api_seconds": round(api_s, 1),
        "total_seconds": round(total_s, 1),
        "problems": problems,
        "server_log_errors": log_problems,
        "peak_rss_mib": peaks,
        "outbox_backlog": backlog,
        "loadavg": {"start": load_before, "end": _loadavg()},
        "duration": args.duration,
        "warmup": args.warmup,
        "process_tree": breakdown,
    }
    (workdir / "results.json").write_text(
        json.dumps(
            {
                **facts,
                "results": {
                    app: {k: r.as_json() for k, r in by.items()} for app, by in results.items()
                },
            },
            indent=2,
        )
    )
    block = api_markdown(plan, results, facts, args)
    print()
    print_terminal(plan, results, facts)
    if not args.no_doc:
        update_doc(DOC, {"api": block, **sections})
        log(f"wrote {DOC.relative_to(ROOT)}")
    log(f"done in {total_s:.0f} s (API part {api_s:.0f} s); raw results in {workdir}")
    return 0


def render(path: Path, args: argparse.Namespace) -> int:
    """Rewrite the API section (and print the tables) from a results.json of an earlier run."""
    saved = json.loads(path.read_text())
    results = {
        app: {key: Result(**value) for key, value in by.items()}
        for app, by in saved.pop("results").items()
    }
    keys = [key for key in LABELS if any(key in by for by in results.values())]
    plan = [Scenario(key, LABELS[key], "GET", ("/",), 200) for key in keys]
    args.duration = saved.get("duration", args.duration)
    args.warmup = saved.get("warmup", args.warmup)
    print_terminal(plan, results, saved)
    update_doc(DOC, {"api": api_markdown(plan, results, saved, args)})
    log(f"rewrote the API section of {DOC.relative_to(ROOT)} from {path}")
    return 0


def print_terminal(
    plan: list[Scenario], results: Mapping[str, Mapping[str, Result]], facts: Mapping[str, Any]
) -> None:
    for app in results:
        print(f"{app}:")
        print(plain(app_table(plan, results[app])))
        print()
    if "ceiling" in results and "flowbuilder" in results:
        print("FlowBuilder / ceiling:")
        print(plain(ratio_table(plan, results["flowbuilder"], results["ceiling"])))
        print()
    for problem in facts["problems"]:
        print(f"PROBLEM: {problem}")
    for app, messages in facts["server_log_errors"].items():
        for message in messages:
            print(f"{app} log: {message}")


def api_markdown(
    plan: list[Scenario],
    results: Mapping[str, Mapping[str, Result]],
    facts: Mapping[str, Any],
    args: argparse.Namespace,
) -> str:
    m, v = facts["machine"], facts["versions"]
    seed_counts = facts["seed"]["counts"]
    lines = [
        f"Latest run: **{facts['date']}**, revision `{facts['revision']}`, command `make bench`"
        f" (`.venv/bin/python -m benchmarks`), {facts['total_seconds']:.0f} s in all"
        f" ({facts['api_seconds']:.0f} s for this section).",
        "",
        f"- Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, kernel {m['kernel']},"
        f" Python {m['python']}; load average {facts['loadavg']['start']} when the run began,"
        f" {facts['loadavg']['end']} when it ended (other work on the machine skews figures).",
        "- Versions: " + ", ".join(f"{name} {version}" for name, version in v.items()) + ".",
        f"- Load: `taskset -c 1 wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} -d{args.duration}s"
        f" --latency` after a {args.warmup} s warm-up run of the same script, loopback only;"
        " the server under test pinned with `taskset -c 0` (FlowBuilder: one process, granian"
        " embedded; ceiling: granian with one worker process), uvloop;"
        " Postgres (a throwaway local cluster: fsync and synchronous_commit off) unpinned.",
        f"- Data, seeded through FlowBuilder's API and copied (CREATE DATABASE ... TEMPLATE) for"
        f" each app so both start identical: {seed_counts['workflows']} workflows of 5 nodes"
        f" (200 for the heavy user, 50 each for four more) and {seed_counts['executions']}"
        " executions of the heavy user, left `queued` (no worker runs); every request is the"
        " heavy user's. PUT rotates over 16 workflows without `If-Match`; execute runs one"
        " runnable workflow.",
        "- FlowBuilder: `flowbuilder serve` in production configuration: Postgres, Clerk JWT"
        " verification against the loopback JWKS with `iss` and `azp` checked, the SQS outbox"
        " (relayed by the server to a moto SQS server), `USE_DB_SECRETS=true`, rate limit set"
        " too high to trigger.",
        "- Ceiling: `benchmarks/ceiling.py`, raw ASGI + asyncpg pool (10), the same SQL in the"
        " fewest statements (one per GET; the same inserts/updates in one transaction for"
        " POST/PUT/execute, the rate-limit bucket as one UPSERT), the same RS256 verification"
        " with pyjwt, msgspec JSON; it writes the outbox row but relays nothing.",
        "- CPU ms/req: user + system time of the server's process tree during the measured run,"
        " over the requests completed. RSS: peak of the tree, sampled every 100 ms.",
        "",
    ]
    for app in results:
        title = "FlowBuilder" if app == "flowbuilder" else "Ceiling (raw ASGI + asyncpg)"
        peak = facts["peak_rss_mib"].get(app, 0.0)
        lines += [f"### {title}", "", markdown(app_table(plan, results[app])), ""]
        tree = "; ".join(facts["process_tree"].get(app, [])) or "-"
        lines += [
            f"Peak RSS of the server process tree over the whole run: {peak:.0f} MiB"
            f" (at the end: {tree}).",
            "",
        ]
    if "ceiling" in results and "flowbuilder" in results:
        lines += [
            "### FlowBuilder / ceiling",
            "",
            f"Targets: every endpoint ≥ {TARGET_RATIO}× the ceiling's req/s, p99 ≤"
            f" {TARGET_TAIL:.0f}× p50, server RSS under load ≤ {TARGET_RSS_MIB:.0f} MiB.",
            "",
            markdown(ratio_table(plan, results["flowbuilder"], results["ceiling"])),
            "",
        ]
    notes = list(facts["problems"])
    for app, messages in facts["server_log_errors"].items():
        notes += [f"{app}'s log: `{message}`" for message in messages]
    if facts["seed"]["outbox_left"]:
        notes.append(
            f"{facts['seed']['outbox_left']} outbox rows of the seed were not yet relayed"
            f" {OUTBOX_WAIT_S} s after seeding; they were deleted before the copies were made"
        )
    backlog = facts["outbox_backlog"]
    if backlog:
        lines += [
            f"FlowBuilder's outbox backlog (rows not yet relayed to SQS) when the run ended:"
            f" {backlog.get('at_end', 0):,}, and 5 s later {backlog.get('5_s_later', 0):,}"
            f" (a drain of {(backlog.get('at_end', 0) - backlog.get('5_s_later', 0)) / 5:.0f}"
            " rows/s with the server otherwise idle).",
            "",
        ]
    lines += [
        "Reading the figures: the relay sends up to ten outbox rows per SendMessageBatch call,"
        " here to moto, which answers slowly and slows further as its in-memory queue grows;"
        " so the backlog and its drain rate say little about real SQS, only that the relay"
        " does not keep up with the execute scenario here. The RSS check counts the whole"
        " process tree: `flowbuilder serve` is one process (granian's embedded server), the"
        " ceiling a granian supervisor and its worker.",
        "",
    ]
    lines += ["Problems seen in this run:", ""]
    lines += [f"- {note}" for note in notes] or ["- none"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
