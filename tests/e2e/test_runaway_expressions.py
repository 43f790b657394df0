"""A runaway expression in one user's run, in a real `flowbuilder serve --embedded`: it is
stopped with its own error, another user's run beside it succeeds, and the server stays live."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import httpx

from support.processes import clean_env, free_port, run, server

STAGES = 30
BLOW_UP = "input" + " | {a: @, b: @}" * STAGES
"""Each stage doubles the output's JSON (JMESPath shares references, JSON does not): about
2**30 copies of `{}`, which the engine must refuse long before it has built them."""

TIME_BOMB = "length([" + ", ".join(["input.xs"] * 200) + "][*][?@ < `0`][])"
"""Two million comparisons that build nothing (with 10,000 numbers in `xs`): about 14 s of
work, which only the expression deadline ends (EXPRESSION_TIMEOUT_S, 1 s here)."""

LIVE_WITHIN_S = 0.1
"""The issue's bound for /health/live while a runaway run is being stopped."""
STALLED_S = 0.5
"""No probe may take this long, whatever the test machine's load (before the bounds, the server
stopped answering at all)."""


def dev_token(cwd: Path, user: str) -> dict[str, str]:
    result = run(["dev-token", "--user", user], clean_env(), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {"Authorization": f"Bearer {result.stdout.strip()}"}


def one_node_workflow(name: str, node: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "definition": {
            "nodes": [{"id": "start", "type": "trigger.manual"}, node],
            "edges": [{"source": "start", "target": node["id"]}],
        },
    }


def test_runaway_expressions_fail_alone_while_another_users_run_succeeds_and_the_server_is_live(
    tmp_path: Path,
) -> None:
    port = free_port()
    alice, bob = dev_token(tmp_path, "alice"), dev_token(tmp_path, "bob")
    blow_up = {"id": "blow", "type": "data.transform", "parameters": {"expression": BLOW_UP}}
    bomb = {"id": "bomb", "type": "data.transform", "parameters": {"expression": TIME_BOMB}}
    greet = {"id": "greet", "type": "data.set", "parameters": {"value": "hi {{ input.name }}"}}
    latencies: list[float] = []

    with (
        server(
            ["serve", "--embedded", "--port", str(port)],
            clean_env(EXPRESSION_TIMEOUT_S="1"),
            port,
            cwd=tmp_path,
        ) as base,
        httpx.Client(base_url=base, timeout=10) as http,
    ):

        def execute(who: dict[str, str], workflow: dict[str, Any], data: Any) -> str:
            created = http.post("/api/workflows", json=workflow, headers=who)
            queued = http.post(
                f"{created.headers['location']}/execute", json={"input": data}, headers=who
            )
            assert queued.status_code == 202, queued.text
            return str(queued.headers["location"])

        runs = {
            "blow": (alice, execute(alice, one_node_workflow("blow-up", blow_up), {})),
            "bomb": (
                alice,
                execute(alice, one_node_workflow("bomb", bomb), {"xs": list(range(10_000))}),
            ),
            "greet": (bob, execute(bob, one_node_workflow("greet", greet), {"name": "Bob"})),
        }
        executions: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            started = time.monotonic()
            with contextlib.suppress(httpx.TimeoutException):
                http.get("/health/live", timeout=5)
            latencies.append(time.monotonic() - started)
            executions = {
                name: http.get(location, headers=who).json()
                for name, (who, location) in runs.items()
            }
            if all(e["status"] not in ("queued", "running") for e in executions.values()):
                break
            time.sleep(0.02)

    assert executions["greet"]["status"] == "succeeded"
    assert executions["greet"]["steps"][1]["output"] == "hi Bob"
    assert executions["greet"]["finished_at"] < executions["bomb"]["finished_at"]
    assert executions["blow"]["status"] == "failed"
    assert executions["blow"]["error"]["code"] == "output_too_large"
    assert executions["blow"]["error"]["node_id"] == "blow"
    assert executions["bomb"]["status"] == "failed"
    assert executions["bomb"]["error"] == {
        "code": "expression_timeout",
        "message": "The node's expressions did not finish within 1 s.",
        "node_id": "bomb",
    }
    assert len(latencies) >= 5, "the runs ended too soon to probe the server while they ran"
    slowest = sorted(latencies)
    assert slowest[int(0.9 * len(slowest))] < LIVE_WITHIN_S, slowest[-5:]
    assert slowest[-1] < STALLED_S, slowest[-5:]
