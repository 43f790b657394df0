"""Profile FlowBuilder's request path in-process: `python -m benchmarks.profile`.

The API app is built as `flowbuilder serve` builds it (production settings: Postgres, Clerk
JWKS over HTTP, the SQS outbox to a moto server, database secrets) and called directly as an
ASGI app, one request at a time on uvloop, so the figures are the app's own cost per request
with no HTTP parsing and no server: the part of `make bench`'s CPU per request that this code
can change. Each scenario starts once the relay (it runs in this process) has drained the outbox.

    python -m benchmarks.profile                       # every scenario, mean µs per request
    python -m benchmarks.profile get_workflow -n 3000 --profiler cprofile
    python -m benchmarks.profile replace_workflow --profiler pyinstrument
    python -m benchmarks.profile create_workflow --statements  # SQL statements per request
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import cProfile
import io
import logging
import os
import pstats
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import boto3  # type: ignore[import-untyped]
import httpx
import uvloop
from sqlalchemy import event
from sqlalchemy.engine import Engine

from benchmarks.procs import moto_process
from benchmarks.run import dsn, flowbuilder_env
from benchmarks.seed import EXECUTE_BODY, workflow_body

from support.jwks import JwksServer
from support.postgres import create_database, local_cluster
from support.tokens import AUTHORIZED_PARTY, make_rsa_key, mint_token

ASGIApp = Any  # Litestar, called with hand-made scope, receive and send


class Call:
    """One prepared request, replayable against the ASGI app with almost no harness cost."""

    def __init__(self, method: str, path: str, token: str, body: bytes = b"") -> None:
        path, _, query = path.partition("?")
        headers = [(b"host", b"127.0.0.1"), (b"authorization", f"Bearer {token}".encode())]
        if body:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        self.body = body
        self.status = 0

    async def __call__(self, app: ASGIApp) -> int:
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.sleep(3600)
            sent = True
            return {"type": "http.request", "body": self.body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]

        await app(dict(self.scope, state={}), receive, send)
        return self.status


async def _lifespan(app: ASGIApp) -> tuple[asyncio.Queue[dict[str, Any]], asyncio.Task[Any]]:
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task: asyncio.Task[Any] = asyncio.create_task(
        app({"type": "lifespan", "state": {}}, inbox.get, outbox.put)
    )
    await inbox.put({"type": "lifespan.startup"})
    message = await outbox.get()
    if message["type"] != "lifespan.startup.complete":
        raise SystemExit(f"start-up failed: {message}")
    return inbox, task


async def _seed(app: Any, token: str) -> tuple[list[str], list[str]]:
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        workflows = []
        for i in range(40):
            body = workflow_body(f"Profiled {i}", ["bench", f"g{i % 5}"])
            answer = await client.post("/api/workflows", content=body, headers=headers)
            answer.raise_for_status()
            workflows.append(answer.json()["id"])
        executions = []
        for workflow in workflows[:20]:
            for _ in range(5):
                answer = await client.post(
                    f"/api/workflows/{workflow}/execute", content=EXECUTE_BODY, headers=headers
                )
                answer.raise_for_status()
                executions.append(answer.json()["id"])
    return workflows, executions


def _scenarios(token: str, workflows: list[str], executions: list[str]) -> dict[str, list[Call]]:
    body = workflow_body("Replaced by the profiler", ["bench", "replaced"])
    return {
        "list_workflows": [Call("GET", "/api/workflows?limit=20", token)],
        "get_workflow": [Call("GET", f"/api/workflows/{workflows[0]}", token)],
        "create_workflow": [
            Call("POST", "/api/workflows", token, workflow_body("Created", ["bench"]))
        ],
        "replace_workflow": [
            Call("PUT", f"/api/workflows/{w}", token, body) for w in workflows[10:26]
        ],
        "execute_workflow": [
            Call("POST", f"/api/workflows/{workflows[0]}/execute", token, EXECUTE_BODY)
        ],
        "list_executions": [Call("GET", "/api/executions?limit=20", token)],
        "get_execution": [Call("GET", f"/api/executions/{executions[0]}", token)],
    }


async def _drive(app: ASGIApp, calls: list[Call], n: int) -> tuple[float, float]:
    """Mean wall-clock and CPU seconds per request over `n` requests, one at a time."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for i in range(n):
        call = calls[i % len(calls)]
        status = await call(app)
        if status >= 400:
            raise SystemExit(f"{call.scope['method']} {call.scope['path']} answered {status}")
    return (time.perf_counter() - started) / n, (time.process_time() - cpu_started) / n


@contextlib.contextmanager
def _counting_statements() -> Iterator[collections.Counter[str]]:
    """Count the SQL statements the app sends (through SQLAlchemy), by their opening words:
    the deterministic half of a request's cost, which a busy machine does not blur."""
    seen: collections.Counter[str] = collections.Counter()

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen[" ".join(statement.split())[:100]] += 1

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


async def _outbox_drained(dsn: str) -> None:
    """Wait until the relay has sent every outbox row: it runs in this process, and its work
    would otherwise be counted against the next scenario's requests."""
    connection = await asyncpg.connect(dsn)
    try:
        while await connection.fetchval("SELECT count(*) FROM outbox"):  # noqa: ASYNC110 (polls the database)
            await asyncio.sleep(0.2)
    finally:
        await connection.close()


async def _profile(args: argparse.Namespace, env: dict[str, str], log: Any) -> None:
    os.environ.clear()
    os.environ.update(env)
    from flowbuilder_http.app import app_from_environment

    app = app_from_environment()
    # The access log goes where a server's stderr would; here, nowhere, at the same cost.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log)
    inbox, task = await _lifespan(app)
    try:
        token = os.environ["PROFILE_TOKEN"]
        workflows, executions = await _seed(app, token)
        plan = _scenarios(token, workflows, executions)
        chosen = args.scenario or list(plan)
        for name in chosen:
            calls = plan[name]
            await _outbox_drained(os.environ["PROFILE_DSN"])
            await _drive(app, calls, max(args.requests // 10, 50))  # warm-up
            if args.profiler == "cprofile":
                profiler = cProfile.Profile()
                profiler.enable()
                mean = await _drive(app, calls, args.requests)
                profiler.disable()
                if args.save:
                    profiler.dump_stats(args.save)
                out = io.StringIO()
                stats = pstats.Stats(profiler, stream=out).sort_stats(args.sort)
                stats.print_stats(args.lines)
                print(out.getvalue())
            elif args.profiler == "pyinstrument":
                from pyinstrument import Profiler

                with Profiler(interval=0.0002, async_mode="enabled") as sampler:
                    mean = await _drive(app, calls, args.requests)
                print(sampler.output_text(unicode=True, color=False, show_all=False))
            elif args.statements:
                with _counting_statements() as seen:
                    mean = await _drive(app, calls, args.requests)
                for text, times in seen.most_common():
                    print(f"  {times / args.requests:5.2f} per request  {text}")
            else:
                mean = await _drive(app, calls, args.requests)
            wall, cpu = mean
            print(
                f"{name:18s} {wall * 1e6:6.0f} µs/request, {cpu * 1e6:6.0f} µs CPU "
                f"(over {args.requests} requests)"
            )
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile", description=__doc__)
    parser.add_argument("scenario", nargs="*", help="scenario names (default: all)")
    parser.add_argument("-n", "--requests", type=int, default=2000)
    parser.add_argument("--profiler", choices=["none", "cprofile", "pyinstrument"], default="none")
    parser.add_argument("--sort", default="tottime", help="cProfile sort key")
    parser.add_argument("--lines", type=int, default=40, help="cProfile lines to print")
    parser.add_argument(
        "--statements", action="store_true", help="count SQL statements per request instead"
    )
    parser.add_argument("--save", help="write the cProfile stats to this file (pstats format)")
    args = parser.parse_args(argv)
    key = make_rsa_key("profile-key")
    with contextlib.ExitStack() as stack:
        jwks = stack.enter_context(JwksServer(key))
        issuer = jwks.url.split("/.well-known/", 1)[0]
        token = mint_token(
            key, sub="user_profile", iss=issuer, azp=AUTHORIZED_PARTY, exp=int(time.time()) + 3600
        )
        moto_url = stack.enter_context(moto_process())
        sqs = boto3.client(
            "sqs",
            endpoint_url=moto_url,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",  # noqa: S106 (a dummy for moto)
        )
        queue_url = sqs.create_queue(QueueName="flowbuilder-profile")["QueueUrl"]
        server = stack.enter_context(local_cluster())
        database_url = asyncio.run(create_database(server, "profile"))
        secrets_key = "profile:" + base64.b64encode(secrets.token_bytes(32)).decode()
        env = flowbuilder_env(database_url, issuer, queue_url, moto_url, secrets_key)
        env["PROFILE_TOKEN"] = token
        env["PROFILE_DSN"] = dsn(database_url)
        from flowbuilder_adapters.sql.migrate import upgrade

        asyncio.run(upgrade(database_url))
        log = stack.enter_context(Path(os.devnull).open("w"))
        uvloop.run(_profile(args, env, log))  # the server's loop
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
