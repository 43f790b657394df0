"""The real `flowbuilder` command as child processes, for end-to-end tests."""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.engine import make_url

from support.tokens import AUTHORIZED_PARTY, SigningKey, mint_token

FLOWBUILDER = str(Path(sys.executable).with_name("flowbuilder"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**overrides: str) -> dict[str, str]:
    """The parent's environment without any FlowBuilder setting, plus `overrides`."""
    names = (
        "DB_",
        "DATABASE_URL",
        "CLERK_",
        "WORKFLOW_QUEUE_URL",
        "SQS_",
        "AWS_",
        "USE_DB_SECRETS",
        "SECRETS_",
        "HTTP_NODE_",
        "EXECUTION_RATE",
        "WRITE_RATE",
        "MAX_",
        "RUN_TIMEOUT",
        "VERSIONS_KEPT",
        "EXPRESSION_TIMEOUT_S",
        "FLOWBUILDER_",
        "IDEMPOTENCY_",
        "LOG_FORMAT",
        "METRICS_",
        "SHUTDOWN_GRACE",
        "SCHEDULE_",
        "PROMETHEUS_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(names)}
    env.update(overrides)
    return env


def run(
    args: list[str], env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FLOWBUILDER, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass
class Serving:
    """A running `flowbuilder serve`: its URL, its process and its log."""

    base: str
    process: subprocess.Popen[bytes]
    log: Path


@contextmanager
def serving(
    args: list[str], env: Mapping[str, str], port: int, cwd: Path | None = None
) -> Iterator[Serving]:
    """`flowbuilder <args>` until it answers /health/live; stopped with SIGTERM afterwards
    (unless the test stopped it itself)."""
    log = (cwd or Path.cwd()) / f"server-{port}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [FLOWBUILDER, *args], env=dict(env), cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}:\n{log.read_text()}")
            try:
                if httpx.get(f"{base}/health/live", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield Serving(base, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def server(
    args: list[str], env: Mapping[str, str], port: int, cwd: Path | None = None
) -> Iterator[str]:
    """`flowbuilder <args>` until it answers /health/live, as its URL; SIGTERM afterwards."""
    with serving(args, env, port, cwd) as running:
        yield running.base


def seed_env(database_url: str, frontend_url: str, **extra: str) -> dict[str, str]:
    """A production environment: the seed's variables, and a Secrets Manager prefix of the
    test's own (as each deployment has), since serve requires one when USE_DB_SECRETS=false."""
    url = make_url(database_url)
    settings = {
        "DB_HOST": str(url.host),
        "DB_PORT": str(url.port),
        "DB_NAME": str(url.database),
        "DB_USER": str(url.username),
        "DB_PASSWORD": url.password or "",
        "DB_SSL_MODE": "disable",
        "CLERK_FRONTEND_URL": frontend_url,
        "CLERK_AUTHORIZED_PARTIES": AUTHORIZED_PARTY,
        "WORKFLOW_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/000000000000/flowbuilder",
        "IDEMPOTENCY_HMAC_KEY": base64.b64encode(os.urandom(32)).decode(),
        "SECRETS_PREFIX": f"flowbuilder-e2e/{uuid.uuid4().hex}/",
        # Every stop of a worker waits for its last long poll: short ones keep the suite short.
        "WORKER_POLL_S": "1",
    }
    return clean_env(**{**settings, **extra})


def bearer(key: SigningKey, issuer: str, user: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(key, sub=user, iss=issuer, **claims)}"}


@contextmanager
def worker(
    args: list[str], env: Mapping[str, str], cwd: Path, name: str = "worker"
) -> Iterator[Path]:
    """`flowbuilder worker <args>` until its log says it started; SIGTERM afterwards, then a
    wait for it to finish its runs in progress. Yields the path of its log (stdout + stderr)."""
    with _workers([name], args, env, cwd) as logs:
        yield logs[0]


def workers(
    count: int, args: list[str], env: Mapping[str, str], cwd: Path, name: str = "worker"
) -> AbstractContextManager[list[Path]]:
    """`count` x `flowbuilder worker <args>`, logs `<name>-<i>.log`, each until its log says it
    started. Stopped together: SIGTERM to every one first, then the waits, so that their last
    long polls (up to 10 s each) end side by side, not one after another."""
    return _workers([f"{name}-{index}" for index in range(count)], args, env, cwd)


@contextmanager
def _workers(
    names: list[str], args: list[str], env: Mapping[str, str], cwd: Path
) -> Iterator[list[Path]]:
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for name in names:
            log = cwd / f"{name}.log"
            with log.open("w") as out:
                process = subprocess.Popen(
                    [FLOWBUILDER, "worker", *args],
                    env=dict(env),
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append(process)
            logs.append(log)
            _wait_for_start(process, log)
        yield logs
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=40)  # the worker gives runs in progress 25 s to finish
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for_start(process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while "worker started" not in log.read_text():
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode}:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"worker did not start:\n{log.read_text()}")
        time.sleep(0.1)
