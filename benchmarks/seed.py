"""The benchmark's data, created through the API: one heavy user with 200 workflows of 5 nodes
(trigger.manual + 4 data.set, chained) and 2,000 executions (10 per workflow, left `queued`: no
worker runs), and four more users with 50 workflows each."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import httpx

HEAVY_WORKFLOWS = 200
HEAVY_EXECUTIONS = 2_000
OTHER_USERS = 4
OTHER_WORKFLOWS = 50
CONCURRENCY = 16

T = TypeVar("T")


def definition(label: str = "bench") -> dict[str, Any]:
    """A runnable 5-node chain: a manual trigger and four `data.set` nodes."""
    nodes: list[dict[str, Any]] = [{"id": "start", "type": "trigger.manual", "parameters": {}}]
    edges: list[dict[str, str]] = []
    previous = "start"
    for index in range(1, 5):
        node_id = f"set_{index}"
        nodes.append(
            {
                "id": node_id,
                "type": "data.set",
                "parameters": {"value": {"step": index, "label": label, "from": "{{ input }}"}},
                "position": {"x": 240 * index, "y": 80},
            }
        )
        edges.append({"source": previous, "target": node_id})
        previous = node_id
    return {"nodes": nodes, "edges": edges}


def workflow_body(name: str, tags: list[str]) -> bytes:
    body = {
        "name": name,
        "description": "A benchmark workflow",
        "tags": tags,
        "definition": definition(name),
    }
    return json.dumps(body, separators=(",", ":")).encode()


EXECUTE_BODY = b'{"input":{"order":42,"customer":"bench"}}'


@dataclass
class Seeded:
    """What the scenarios need from the seed."""

    heavy_user: str
    users: list[str]
    heavy_workflows: list[str] = field(default_factory=list)
    heavy_executions: list[str] = field(default_factory=list)
    other_workflows: int = 0


async def _gather_limited(jobs: list[Callable[[], Awaitable[T]]]) -> list[T]:
    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def one(job: Callable[[], Awaitable[T]]) -> T:
        async with semaphore:
            return await job()

    return await asyncio.gather(*(one(job) for job in jobs))


async def _create(client: httpx.AsyncClient, headers: Mapping[str, str], body: bytes) -> str:
    response = await client.post("/api/workflows", content=body, headers=headers)
    if response.status_code != 201:
        raise RuntimeError(f"seeding a workflow: {response.status_code} {response.text[:300]}")
    return str(response.json()["id"])


async def _execute(client: httpx.AsyncClient, headers: Mapping[str, str], workflow: str) -> str:
    response = await client.post(
        f"/api/workflows/{workflow}/execute", content=EXECUTE_BODY, headers=headers
    )
    if response.status_code != 202:
        raise RuntimeError(f"seeding an execution: {response.status_code} {response.text[:300]}")
    return str(response.json()["id"])


async def seed(base_url: str, tokens: Mapping[str, str], heavy_user: str) -> Seeded:
    """Create the data set through the API at `base_url`; `tokens` maps user id -> token."""
    users = list(tokens)
    seeded = Seeded(heavy_user, users)

    def headers(user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[user]}", "Content-Type": "application/json"}

    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        heavy = headers(heavy_user)
        # One at a time in creation order is not needed: ids are what the scenarios use.
        seeded.heavy_workflows = await _gather_limited(
            [
                partial(
                    _create,
                    client,
                    heavy,
                    workflow_body(f"Heavy workflow {i}", ["bench", f"g{i % 5}"]),
                )
                for i in range(HEAVY_WORKFLOWS)
            ]
        )
        others = [u for u in users if u != heavy_user]
        created = await _gather_limited(
            [
                partial(_create, client, headers(u), workflow_body(f"Workflow {i}", ["bench"]))
                for u in others
                for i in range(OTHER_WORKFLOWS)
            ]
        )
        seeded.other_workflows = len(created)
        per_workflow = HEAVY_EXECUTIONS // HEAVY_WORKFLOWS
        seeded.heavy_executions = await _gather_limited(
            [
                partial(_execute, client, heavy, w)
                for w in seeded.heavy_workflows
                for _ in range(per_workflow)
            ]
        )
    return seeded
