"""No malformed input makes the real server on Postgres answer 5xx, or change a row."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowbuilder_core.shared.pagination import encode_cursor

from support.factories import make_workflow_body
from support.jwks import JwksServer
from support.processes import bearer, free_port, run, seed_env, server
from support.tokens import SigningKey, make_rsa_key, mint_token

pytestmark = pytest.mark.postgres

JSON = {"content-type": "application/json"}


@pytest.fixture
def api(postgres_url: str, tmp_path: Path) -> Iterator[tuple[str, SigningKey, str]]:
    key = make_rsa_key("hostile")
    with JwksServer(key) as jwks:
        frontend = jwks.url.removesuffix("/.well-known/jwks.json")
        env = seed_env(postgres_url, frontend)
        assert run(["migrate"], env).returncode == 0
        port = free_port()
        with server(["serve", "--port", str(port)], env, port, cwd=tmp_path) as base:
            yield base, key, frontend


def hostile_requests(location: str) -> list[tuple[str, str, dict[str, Any]]]:
    forged_cursor = encode_cursor(("yesterday", "nobody"), "workflows|user_alice|tag=None|q=None")
    forged_version_cursor = encode_cursor(
        (2**62,), f"versions|user_alice|{location.rsplit('/', 1)[1]}"
    )
    deep = (
        b'{"name": "x", "definition": {"nodes": [{"id": "a", "type": "data.set", '
        b'"parameters": {"value": ' + b"[" * 900 + b"]" * 900 + b"}}]}}"
    )
    return [
        ("POST", "/api/workflows", {"content": b"{", "headers": JSON}),
        ("POST", "/api/workflows", {"content": b"\xff\xfe\x00", "headers": JSON}),
        ("POST", "/api/workflows", {"content": b"[" * 100_000, "headers": JSON}),
        ("POST", "/api/workflows", {"content": deep, "headers": JSON}),
        ("POST", "/api/workflows", {"content": b'{"name": 1e999}', "headers": JSON}),
        (
            "POST",
            "/api/workflows",
            {"content": b'{"name": 123456789012345678901234567890}', "headers": JSON},
        ),
        ("POST", "/api/workflows", {"json": {"name": "nul \u0000 here"}}),
        ("POST", "/api/workflows", {"json": {"name": "x", "tags": ["\u0000"]}}),
        (
            "POST",
            "/api/workflows",
            {
                "json": {
                    "name": "x",
                    "definition": {
                        "nodes": [
                            {"id": "a", "type": "data.set", "parameters": {"value": "\u0000"}}
                        ]
                    },
                }
            },
        ),
        ("POST", "/api/workflows", {"json": {"name": "x" * 100_000}}),
        (
            "POST",
            "/api/workflows",
            {"json": {"name": "x", "definition": {"nodes": [{"id": i} for i in range(600)]}}},
        ),
        (
            "POST",
            "/api/workflows",
            {"json": {"name": "x", "definition": {"nodes": None, "edges": {"a": 1}}}},
        ),
        (
            "POST",
            "/api/workflows",
            {
                "json": {
                    "name": "x",
                    "definition": {
                        "nodes": [
                            {
                                "id": "a",
                                "type": "http.request",
                                "credential_id": "' OR 1=1 --",
                                "position": {"x": "1", "y": None},
                            }
                        ]
                    },
                }
            },
        ),
        ("POST", "/api/workflows", {"content": b"x" * (2 * 1024 * 1024), "headers": JSON}),
        (
            "POST",
            "/api/workflows",
            {"content": b"name=x", "headers": {"content-type": "text/plain"}},
        ),
        ("POST", "/api/workflows/validate", {"json": {"definition": "nope"}}),
        ("GET", "/api/workflows?limit=-1", {}),
        ("GET", "/api/workflows?limit=99999999999999999999999", {}),
        ("GET", "/api/workflows?limit=1.5", {}),
        ("GET", "/api/workflows?q=%00", {}),
        ("GET", "/api/workflows?tag=%00", {}),
        ("GET", "/api/workflows?q=" + "%25" * 300, {}),
        ("GET", "/api/workflows?cursor=%00", {}),
        ("GET", "/api/workflows?cursor=" + "A" * 5000, {}),
        ("GET", f"/api/workflows?cursor={forged_cursor}", {}),
        ("GET", "/api/workflows?include=everything", {}),
        ("GET", "/api/workflows/00000000-0000-0000-0000-000000000000", {}),
        ("GET", "/api/workflows/%00", {}),
        ("GET", "/api/workflows/" + "9" * 400, {}),
        ("GET", f"{location}/versions/99999999999999999999", {}),
        ("GET", f"{location}/versions/-5", {}),
        ("GET", f"{location}/versions?cursor={forged_version_cursor}", {}),
        ("PUT", location, {"json": {"name": "x", "version": 2**70}}),
        ("PUT", location, {"json": {"name": "x", "version": "three"}}),
        (
            "PUT",
            location,
            {"json": {"name": "x"}, "headers": {"If-Match": '"99999999999999999999999"'}},
        ),
        ("PUT", location, {"json": {"name": "x"}, "headers": {"If-Match": "garbage"}}),
        ("PUT", location, {"json": {"name": "x", "created_at": {"nested": True}}}),
        ("DELETE", location, {"headers": {"If-Match": '"0"'}}),
        ("PATCH", location, {"json": {"name": "x"}}),
    ]


async def test_no_malformed_request_gets_a_server_error_or_changes_the_workflow(
    api: tuple[str, SigningKey, str],
) -> None:
    base, key, frontend = api
    alice = bearer(key, frontend, "user_alice")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        created = await http.post("/api/workflows", json=make_workflow_body(), headers=alice)
        location = created.headers["location"]

        answers = []
        for method, path, kwargs in hostile_requests(location):
            headers = {**alice, **kwargs.pop("headers", {})}
            response = await http.request(method, path, headers=headers, **kwargs)
            answers.append((method, path[:60], response.status_code))
            assert response.status_code < 500, (method, path[:80], response.text[:300])
            if response.status_code >= 400:
                assert response.headers["content-type"] == "application/problem+json"

        bad_definition = {
            "nodes": [{"id": "a", "type": "logic.if", "parameters": {"condition": 5}}],
            "edges": [{"source": "a", "target": "a", "source_output": "maybe"}],
        }
        odd_but_valid = [
            await http.post(
                "/api/workflows/validate", json={"definition": bad_definition}, headers=alice
            ),
            await http.get("/api/workflows?q=%5C%25_", headers=alice),
            await http.get("/api/workflows", headers={**alice, "X-Request-ID": "x" * 5000}),
        ]
        after = await http.get(location, headers=alice)
        listed = await http.get("/api/workflows", headers=alice)

    assert [a for a in answers if not 400 <= a[2] < 500] == []
    assert after.json() == created.json()
    assert [w["id"] for w in listed.json()["items"]] == [created.json()["id"]]
    assert [r.status_code for r in odd_but_valid] == [200, 200, 200]
    assert odd_but_valid[0].json()["valid"] is False
    assert odd_but_valid[1].json()["items"] == []
    assert len(odd_but_valid[2].headers["x-request-id"]) <= 128


async def test_hostile_tokens_are_401_never_5xx(api: tuple[str, SigningKey, str]) -> None:
    base, key, frontend = api
    tokens = [
        "a" * 20_000,
        "\u00e9t\u00e9",
        mint_token(key, sub="user_alice", iss=frontend, algorithm="HS256"),
        mint_token(key, sub="user_alice", iss=frontend, headers={"kid": "../../etc/passwd"}),
        mint_token(key, sub=None, iss=frontend),
        mint_token(key, sub="user_alice", iss=frontend, exp="tomorrow"),
        mint_token(key, sub={"id": 1}, iss=frontend),
        mint_token(make_rsa_key(str(uuid.uuid4())), sub="user_alice", iss=frontend),
    ]

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        statuses = [
            (
                await http.get(
                    "/api/workflows", headers={"Authorization": f"Bearer {token}".encode()}
                )
            ).status_code
            for token in tokens
        ]

    assert statuses == [401] * len(tokens)


async def test_a_nul_in_any_stored_json_is_422_naming_the_field_never_a_database_error(
    api: tuple[str, SigningKey, str],
) -> None:
    base, key, frontend = api
    alice = bearer(key, frontend, "user_alice")
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        created = await http.post("/api/workflows", json=make_workflow_body(), headers=alice)
        execute = f"{created.headers['location']}/execute"
        answers = [
            await http.post(execute, json={"input": {"note": "a\u0000b"}}, headers=alice),
            await http.post(execute, json={"input": {"k\u0000": 1}}, headers=alice),
            await http.post(
                "/api/credentials",
                json={"name": "n", "type": "generic", "data": {"k\u0000": "v"}},
                headers=alice,
            ),
        ]
        executions = await http.get(f"{created.headers['location']}/executions", headers=alice)

    assert [a.status_code for a in answers] == [422, 422, 422]
    assert [[e["field"] for e in a.json()["errors"]] for a in answers] == [
        ["/input/note"],
        ["/input"],
        ["/data"],
    ]
    assert executions.json()["items"] == []
