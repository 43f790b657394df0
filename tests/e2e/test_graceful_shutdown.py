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
from typing import Any

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


def wait_for_exit(process: Any, seconds: float) -> float:
    """How long the process took to exit after now; fails past `seconds`."""
    started = time.monotonic()
    process.wait(timeout=seconds)
    return time.monotonic() - started


def test_a_request_in_flight_at_sigterm_is_finished_and_no_new_one_is_taken(
    tmp_path: Path,
) -> None:
    port, auth = free_port(), dev_token(tmp_path)
    env = clean_env(SHUTDOWN_GRACE_S="20")
    in_flight = threading.Event()

    with serving(["serve", "--embedded", "--port", str(port)], env, port, tmp_path) as server:
        answer = slow_upload(server.base, auth, 2.0, in_flight)
        assert in_flight.wait(10)
        time.sleep(0.2)  # the server has read the first part
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{server.base}/health/live", timeout=2)
        response = answer.result(timeout=30)
        exited_after = wait_for_exit(server.process, 15)

    assert isinstance(response, httpx.Response), response
    assert response.status_code == 201, response.text
    assert server.process.returncode == 0
    assert exited_after < 10, "it waited for the request, not for the grace period"
    log = server.log.read_text()
    assert "1 request(s) in flight get 20 s" in log
    assert "cut short" not in log


def test_a_request_past_the_grace_period_is_cut_and_the_server_still_stops_cleanly(
    tmp_path: Path,
) -> None:
    port, auth = free_port(), dev_token(tmp_path)
    env = clean_env(SHUTDOWN_GRACE_S="1")
    in_flight = threading.Event()

    with serving(["serve", "--embedded", "--port", str(port)], env, port, tmp_path) as server:
        answer = slow_upload(server.base, auth, 8.0, in_flight)
        assert in_flight.wait(10)
        time.sleep(0.2)
        server.process.send_signal(signal.SIGTERM)
        exited_after = wait_for_exit(server.process, 15)
        response = answer.result(timeout=30)

    assert not (isinstance(response, httpx.Response) and response.status_code == 201)
    assert server.process.returncode == 0
    assert exited_after < 6, "the grace period, not the request, decided when it stopped"
    log = server.log.read_text()
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
