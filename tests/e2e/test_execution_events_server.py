"""Following a run over Server-Sent Events from a real embedded server and its worker, with a
reconnection in the middle of the run."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import httpx

from support.processes import clean_env, free_port, run, server


def dev_token(cwd: Path, user: str) -> dict[str, str]:
    result = run(["dev-token", "--user", user], clean_env(), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return {"Authorization": f"Bearer {result.stdout.strip()}"}


def read_events(response: httpx.Response, until: int | None = None) -> list[dict[str, Any]]:
    """Events of an open stream, up to and including the one with id `until` (else to the end)."""
    events: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if fields:
            events.append({**fields, "data": json.loads(fields["data"])})
            if until is not None and int(fields["id"]) >= until:
                return events
            fields = {}
    return events


def test_a_followed_run_reconnected_mid_way_shows_every_event_exactly_once(
    tmp_path: Path,
) -> None:
    port = free_port()
    alice = dev_token(tmp_path, "alice")
    delay = {"type": "util.delay", "parameters": {"seconds": 0.4}}
    nodes = [{"id": "start", "type": "trigger.manual"}]
    nodes += [{"id": f"wait{i}", **delay} for i in range(4)]
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]

    with server(
        ["serve", "--embedded", "--port", str(port)], clean_env(), port, cwd=tmp_path
    ) as base:
        created = httpx.post(
            f"{base}/api/workflows",
            json={"name": "slow", "definition": {"nodes": nodes, "edges": edges}},
            headers=alice,
        )
        url = f"{base}{created.headers['location']}"
        execution = httpx.post(f"{url}/execute", headers=alice).json()
        events_url = f"{base}/api/executions/{execution['id']}/events"
        with httpx.stream("GET", events_url, headers=alice, timeout=30) as first:
            before = read_events(first, until=3)  # running, start's start and end, wait0 starts
        last = before[-1]["id"]
        with httpx.stream(
            "GET", events_url, headers={**alice, "Last-Event-ID": last}, timeout=30
        ) as second:
            after = read_events(second)
        final = httpx.get(f"{base}/api/executions/{execution['id']}", headers=alice).json()

    events = before + after
    assert [int(e["id"]) for e in events] == list(range(len(events))), "no repeat, no gap"
    steps = [(e["data"]["node_id"], e["data"]["status"]) for e in events if e["event"] == "step"]
    assert steps == [(node["id"], status) for node in nodes for status in ("running", "succeeded")]
    assert [e["event"] for e in events][-2:] == ["status", "end"]
    assert events[-2]["data"] == {"status": "succeeded"}
    assert final["status"] == "succeeded"
    assert len(after) > 2, "the reconnection happened while the run was still going"
