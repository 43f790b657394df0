"""`flowbuilder serve` stopping on SIGTERM, as ECS stops a task: it takes no new connection,
finishes the requests in flight within SHUTDOWN_GRACE_S, cuts the rest, and shuts the
application down properly either way; an embedded server's interrupted run runs again after
the restart. (A worker process stopping is in test_executions_processes.py.)"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support.factories import make_workflow_body
from support.processes import clean_env, free_port, run, serving


def dev_token(cwd: Path) -> dict[str, str]:
    token = run(["dev-token", "--user", "alice"], clean_env(), cwd=cwd).stdout.strip()
    return {"Authorization": f"Bearer {token}"}


def slow_upload(
    base: str, auth: dict[str, str], seconds: float, started: threading.Event
) -> Future[httpx.Response | Exception]:
    """A workflow created with a body that takes `seconds` to arrive; `started` is set once
    the server has its first part, so the request is in flight."""
    body = httpx.Request("POST", "/", json=make_workflow_body()).read()

    def parts() -> Iterator[bytes]:
        yield body[:10]
        started.set()
        time.sleep(seconds)
        yield body[10:]

    def send() -> httpx.Response | Exception:
        try:
            return httpx.post(
                f"{base}/api/workflows",
                content=parts(),
                headers={**auth, "Content-Type": "application/json"},
                timeout=30,
            )
        except httpx.HTTPError as exc:
            return exc

    return ThreadPoolExecutor(max_workers=1).submit(send)


def test_at_sigterm_a_request_within_the_grace_period_finishes_and_a_longer_one_is_cut(
    tmp_path: Path,
) -> None:
    port, auth = free_port(), dev_token(tmp_path)
    env = clean_env(SHUTDOWN_GRACE_S="3")
    short, long = threading.Event(), threading.Event()

    with serving(["serve", "--embedded", "--port", str(port)], env, port, tmp_path) as server:
        finishing = slow_upload(server.base, auth, 1.0, short)
        outlasting = slow_upload(server.base, auth, 6.0, long)
        assert short.wait(10)
        assert long.wait(10)
        time.sleep(0.2)  # the server has read their first parts
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base}/health/live", timeout=2)
        server.process.wait(timeout=20)
        exited_after = time.monotonic() - signalled
        finished, cut = finishing.result(timeout=30), outlasting.result(timeout=30)

    assert isinstance(finished, httpx.Response), finished
    assert finished.status_code == 201, finished.text
    assert not (isinstance(cut, httpx.Response) and cut.status_code == 201)
    assert server.process.returncode == 0
    assert 2.5 < exited_after < 5.5, "the grace period decided when it stopped"
    log = server.log.read_text()
    assert "2 request(s) in flight get 3 s" in log
    assert "1 request(s) cut short after the grace period" in log
    assert log.rstrip().endswith("stopped"), "the application's shutdown ran to its end"


def test_an_embedded_run_interrupted_by_a_stop_runs_again_after_the_restart(
    tmp_path: Path,
) -> None:
    ports, auth = (free_port(), free_port()), dev_token(tmp_path)
    env = clean_env(SHUTDOWN_GRACE_S="1")
    workflow = {
        "name": "Slow",
        "definition": {
            "nodes": [
                {"id": "start", "type": "trigger.manual"},
                {"id": "wait", "type": "util.delay", "parameters": {"seconds": 3}},
            ],
            "edges": [{"source": "start", "target": "wait"}],
        },
    }

    with serving(
        ["serve", "--embedded", "--port", str(ports[0])], env, ports[0], tmp_path
    ) as server:
        created = httpx.post(f"{server.base}/api/workflows", json=workflow, headers=auth)
        queued = httpx.post(f"{server.base}{created.headers['location']}/execute", headers=auth)
        location = queued.headers["location"]
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.base}{location}", headers=auth).json()["status"] != "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    first_log = server.log.read_text()
    with serving(
        ["serve", "--embedded", "--port", str(ports[1])], env, ports[1], tmp_path
    ) as server:
        released = httpx.get(f"{server.base}{location}", headers=auth).json()
        deadline = time.monotonic() + 20
        while (finished := httpx.get(f"{server.base}{location}", headers=auth).json())[
            "status"
        ] != "succeeded":
            assert time.monotonic() < deadline, finished
            time.sleep(0.1)

    assert released["status"] in ("queued", "running")
    assert finished["attempt"] == 1
    assert [(s["node_id"], s["status"]) for s in finished["steps"]] == [
        ("start", "succeeded"),
        ("wait", "succeeded"),
    ]
    assert "1 queued execution(s) kept in the outbox for the next start" in first_log
