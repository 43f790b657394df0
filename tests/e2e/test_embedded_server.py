"""`flowbuilder serve --embedded`, what `make run` starts: no outside service at all."""

from __future__ import annotations

import asyncio
import stat
import time
from pathlib import Path

import httpx

from support.factories import make_workflow_body
from support.processes import clean_env, free_port, run, server


def dev_token(cwd: Path, user: str) -> dict[str, str]:
    result = run(["dev-token", "--user", user], clean_env(), cwd=cwd)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    return {"Authorization": f"Bearer {result.stdout.strip()}"}


def test_the_embedded_server_keeps_alices_workflows_across_a_restart_and_from_bob(
    tmp_path: Path,
) -> None:
    port = free_port()
    args = ["serve", "--embedded", "--port", str(port)]
    alice, bob = dev_token(tmp_path, "alice"), dev_token(tmp_path, "bob")

    with server(args, clean_env(), port, cwd=tmp_path) as base:
        created = httpx.post(f"{base}/api/workflows", json=make_workflow_body(), headers=alice)
        location = f"{base}{created.headers['location']}"
        updated = httpx.put(location, json={"name": "Edited"}, headers={**alice, "If-Match": '"1"'})
    with server(args, clean_env(), port, cwd=tmp_path) as base:
        after_restart = httpx.get(location, headers=alice)
        bobs_view = httpx.get(f"{base}/api/workflows", headers=bob)
        bobs_get = httpx.get(location, headers=bob)
        deleted = httpx.delete(location, headers={**alice, "If-Match": '"2"'})
        alices_list = httpx.get(f"{base}/api/workflows", headers=alice)

    assert created.status_code == 201
    assert updated.status_code == 200
    assert (after_restart.status_code, after_restart.json()["name"]) == (200, "Edited")
    assert bobs_view.json()["items"] == []
    assert bobs_get.status_code == 404
    assert deleted.status_code == 204
    assert alices_list.json()["items"] == []
    log = next(tmp_path.glob("server-*.log")).read_text()
    assert "NOT FOR PRODUCTION" in log
    assert (tmp_path / ".flowbuilder" / "flowbuilder.db").exists()
    key_mode = stat.S_IMODE((tmp_path / ".flowbuilder" / "dev-signing-key.pem").stat().st_mode)
    assert key_mode == 0o600


def test_the_embedded_server_refuses_other_hosts_and_tokens_it_did_not_issue(
    tmp_path: Path,
) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    foreign = dev_token(other, "alice")
    port = free_port()

    with server(
        ["serve", "--embedded", "--port", str(port)], clean_env(), port, cwd=tmp_path
    ) as base:
        response = httpx.get(f"{base}/api/workflows", headers=foreign)
    refused = run(["serve", "--embedded", "--host", "192.0.2.1"], clean_env(), cwd=tmp_path)

    assert response.status_code == 401
    assert refused.returncode == 2
    assert "--host" in refused.stderr


def test_the_embedded_server_refuses_to_start_in_a_production_environment(
    tmp_path: Path,
) -> None:
    env = clean_env(CLERK_FRONTEND_URL="https://clerk.flowbuilder.test")

    refused = run(["serve", "--embedded", "--port", str(free_port())], env, cwd=tmp_path)

    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2
    assert len(lines) == 1, refused.stderr
    assert "CLERK_FRONTEND_URL" in lines[0]
    assert not (tmp_path / ".flowbuilder").exists()


def test_embedded_credentials_are_encrypted_under_a_key_of_its_own_and_never_shown(
    tmp_path: Path,
) -> None:
    canary = "canary-embedded-b7e2-token"
    port = free_port()
    alice = dev_token(tmp_path, "alice")

    with server(
        ["serve", "--embedded", "--port", str(port)], clean_env(), port, cwd=tmp_path
    ) as base:
        created = httpx.post(
            f"{base}/api/credentials",
            json={"name": "Orders token", "type": "http_bearer", "data": {"token": canary}},
            headers=alice,
        )
        url = f"{base}{created.headers['location']}"
        workflow = httpx.post(
            f"{base}/api/workflows",
            json={
                "name": "Fetch orders",
                "definition": {
                    "nodes": [
                        {"id": "start", "type": "trigger.manual"},
                        {
                            "id": "fetch",
                            "type": "http.request",
                            "credential_id": created.json()["id"],
                            "parameters": {"method": "GET", "url": "https://example.com/"},
                        },
                    ],
                    "edges": [{"source": "start", "target": "fetch"}],
                },
            },
            headers=alice,
        )
        responses = [
            created,
            httpx.get(f"{base}/api/credentials", headers=alice),
            httpx.get(url, headers=alice),
            httpx.put(url, json={"data": {"token": canary + "-rotated"}}, headers=alice),
            httpx.delete(url, headers=alice),
            httpx.delete(f"{base}{workflow.headers['location']}", headers=alice),
            httpx.delete(url, headers=alice),
        ]

    assert [r.status_code for r in responses] == [201, 200, 200, 200, 409, 204, 204]
    assert responses[4].json()["workflows"] == [
        {"id": workflow.json()["id"], "name": "Fetch orders"}
    ]
    assert responses[2].json()["fields"] == ["token"]
    for response in responses:
        assert canary not in response.text
    stored = b"".join(p.read_bytes() for p in (tmp_path / ".flowbuilder").glob("flowbuilder.db*"))
    assert canary.encode() not in stored
    assert canary not in next(tmp_path.glob("server-*.log")).read_text()
    key_mode = stat.S_IMODE((tmp_path / ".flowbuilder" / "secrets.key").stat().st_mode)
    assert key_mode == 0o600


def test_embedded_mode_runs_an_execution_in_process_within_a_second(tmp_path: Path) -> None:
    port = free_port()
    alice = dev_token(tmp_path, "alice")
    definition = {
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "check", "type": "logic.if", "parameters": {"condition": "input.go"}},
            {"id": "yes", "type": "data.transform", "parameters": {"expression": "input.n"}},
            {"id": "no", "type": "data.set", "parameters": {"value": "skipped"}},
        ],
        "edges": [
            {"source": "start", "target": "check"},
            {"source": "check", "target": "yes", "source_output": "true"},
            {"source": "check", "target": "no", "source_output": "false"},
        ],
    }

    with server(
        ["serve", "--embedded", "--port", str(port)], clean_env(), port, cwd=tmp_path
    ) as base:
        workflow = httpx.post(
            f"{base}/api/workflows",
            json={"name": "branch", "definition": definition},
            headers=alice,
        )
        started = time.monotonic()
        queued = httpx.post(
            f"{base}{workflow.headers['location']}/execute",
            json={"input": {"go": True, "n": 42}},
            headers=alice,
        )
        url = f"{base}{queued.headers['location']}"
        execution = httpx.get(url, headers=alice).json()
        while execution["status"] in ("queued", "running") and time.monotonic() - started < 5:
            time.sleep(0.02)
            execution = httpx.get(url, headers=alice).json()
        elapsed = time.monotonic() - started

    assert queued.status_code == 202
    assert execution["status"] == "succeeded"
    assert elapsed < 1.0
    assert [(s["node_id"], s["status"]) for s in execution["steps"]] == [
        ("start", "succeeded"),
        ("check", "succeeded"),
        ("yes", "succeeded"),
        ("no", "skipped"),
    ]
    assert execution["steps"][2]["output"] == 42


def test_embedded_execute_past_the_queue_bound_is_503_overloaded_and_stores_nothing(
    tmp_path: Path,
) -> None:
    port = free_port()
    alice = dev_token(tmp_path, "alice")
    definition = {
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "wait", "type": "util.delay", "parameters": {"seconds": 2}},
        ],
        "edges": [{"source": "start", "target": "wait"}],
    }

    with server(
        ["serve", "--embedded", "--port", str(port)],
        clean_env(MAX_QUEUED_EXECUTIONS="2"),
        port,
        cwd=tmp_path,
    ) as base:
        workflow = httpx.post(
            f"{base}/api/workflows", json={"name": "slow", "definition": definition}, headers=alice
        )
        execute = f"{base}{workflow.headers['location']}/execute"
        admitted = [httpx.post(execute, json={}, headers=alice) for _ in range(2)]
        refused = httpx.post(execute, json={}, headers=alice)
        listed = httpx.get(f"{base}/api/executions", headers=alice).json()["items"]
        deadline = time.monotonic() + 15
        later = refused
        while later.status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.2)
            later = httpx.post(execute, json={}, headers=alice)

    assert [r.status_code for r in admitted] == [202, 202]
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "1"
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:flowbuilder:problem:overloaded"
    assert len(listed) == 2, "the refused request stored nothing"
    assert later.status_code == 202, "a place frees as soon as a run ends"


def test_the_embedded_server_refuses_to_start_with_an_api_request_bound_below_one(
    tmp_path: Path,
) -> None:
    env = clean_env(MAX_CONCURRENT_API_REQUESTS="0")

    refused = run(["serve", "--embedded", "--port", str(free_port())], env, cwd=tmp_path)

    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2
    assert len(lines) == 1, refused.stderr
    assert "MAX_CONCURRENT_API_REQUESTS" in lines[0]


def test_the_embedded_server_answers_every_request_of_a_burst_beyond_its_api_bound(
    tmp_path: Path,
) -> None:
    port = free_port()
    alice = dev_token(tmp_path, "alice")

    async def burst(base: str) -> list[int]:
        async with httpx.AsyncClient(base_url=base, headers=alice, timeout=30) as client:
            created = await client.post("/api/workflows", json=make_workflow_body())
            location = created.headers["location"]
            answers = await asyncio.gather(*(client.get(location) for _ in range(30)))
            executed = await asyncio.gather(
                *(client.post(f"{location}/execute", json={}) for _ in range(10))
            )
        return [created.status_code, *(r.status_code for r in [*answers, *executed])]

    with server(
        ["serve", "--embedded", "--port", str(port)],
        clean_env(MAX_CONCURRENT_API_REQUESTS="1"),
        port,
        cwd=tmp_path,
    ) as base:
        statuses = asyncio.run(burst(base))

    assert statuses == [201] + [200] * 30 + [202] * 10, "waited their turn, none refused"
