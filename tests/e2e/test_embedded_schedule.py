"""A schedule in embedded mode, as the README's first session shows it: the server's own
scheduler starts an active workflow on its times; after a restart it goes on from the book it
kept in SQLite, the times it missed while down (due more than 10 s before it ran) skipped;
deactivated, it stops."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from support.processes import clean_env, free_port, run, server


def dev_token(cwd: Path, user: str) -> dict[str, str]:
    result = run(["dev-token", "--user", user], clean_env(), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {"Authorization": f"Bearer {result.stdout.strip()}"}


def runs_of(base: str, workflow_id: str, auth: dict[str, str]) -> list[dict[str, Any]]:
    listed = httpx.get(f"{base}/api/workflows/{workflow_id}/executions?limit=100", headers=auth)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["items"])


def test_an_embedded_schedule_runs_skips_what_it_missed_while_down_and_stops_when_off(
    tmp_path: Path,
) -> None:
    port = free_port()
    args = ["serve", "--embedded", "--port", str(port)]
    env = clean_env(SCHEDULE_MIN_INTERVAL_S="1")
    alice = dev_token(tmp_path, "alice")
    body = {
        "name": "Every second",
        "definition": {
            "nodes": [
                {"id": "tick", "type": "trigger.schedule", "parameters": {"every_s": 1}},
                {"id": "note", "type": "data.set", "parameters": {"value": "{{ input }}"}},
            ],
            "edges": [{"source": "tick", "target": "note"}],
        },
    }

    with server(args, env, port, cwd=tmp_path) as base:
        workflow_id = httpx.post(f"{base}/api/workflows", json=body, headers=alice).json()["id"]
        activated = httpx.post(f"{base}/api/workflows/{workflow_id}/activate", headers=alice)
        time.sleep(3)
        before_stop = runs_of(base, workflow_id, alice)
    time.sleep(12)  # down, still active: more than the 10 s a time may be late
    restarting = datetime.now(UTC)
    with server(args, env, port, cwd=tmp_path) as base:
        time.sleep(3)
        httpx.post(f"{base}/api/workflows/{workflow_id}/deactivate", headers=alice)
        time.sleep(1.5)  # a run started just before the switch may still finish
        final = runs_of(base, workflow_id, alice)
        time.sleep(2)
        later = runs_of(base, workflow_id, alice)
        one = httpx.get(f"{base}/api/executions/{final[0]['id']}", headers=alice).json()

    assert activated.status_code == 200
    assert len(before_stop) >= 2
    times = sorted(datetime.fromisoformat(r["scheduled_for"]) for r in final)
    assert len(set(times)) == len(times), "a scheduled time ran twice"
    assert {r["trigger"] for r in final} == {"schedule"}
    assert {r["status"] for r in final} == {"succeeded"}
    last_before = max(datetime.fromisoformat(r["scheduled_for"]) for r in before_stop)
    after = [t for t in times if t > last_before]
    # The seconds missed while down did not run: the first run after the restart is seconds
    # after the last one before it (at most the last 10 s before its first tick ran, late);
    # from there on every second ran.
    assert after[0] - last_before > timedelta(seconds=2), (last_before, after)
    assert after == [after[0] + timedelta(seconds=i) for i in range(len(after))]
    assert after[-1] > restarting
    assert [s["output"] for s in one["steps"]] == [
        {"scheduled_for": one["scheduled_for"].replace(".000000Z", "Z")}
    ] * 2
    assert len(later) == len(final), "switched off: nothing more"
