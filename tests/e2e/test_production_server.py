"""`flowbuilder migrate` and `flowbuilder serve` as processes, on Postgres with the seed's
variables, verifying Clerk-style tokens through a JWKS served on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.factories import make_workflow_body
from support.jwks import JwksServer
from support.processes import bearer, free_port, run, seed_env, server
from support.tokens import SigningKey, make_rsa_key

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return make_rsa_key("e2e-key")


@pytest.fixture
def jwks(signing_key: SigningKey) -> Iterator[JwksServer]:
    with JwksServer(signing_key) as served:
        yield served


async def test_migrate_then_serve_answers_the_workflows_api_to_clerk_tokens(
    postgres_url: str, jwks: JwksServer, signing_key: SigningKey, tmp_path: Path
) -> None:
    frontend = jwks.url.removesuffix("/.well-known/jwks.json")
    env = seed_env(postgres_url, frontend)
    port = free_port()
    alice = bearer(signing_key, frontend, "user_alice")
    bob = bearer(signing_key, frontend, "user_bob")

    migrated = run(["migrate"], env)
    assert migrated.returncode == 0, migrated.stderr

    with server(["serve", "--port", str(port)], env, port, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            ready = await http.get("/health/ready")
            created = await http.post("/api/workflows", json=make_workflow_body(), headers=alice)
            location = created.headers["location"]
            listed = await http.get("/api/workflows", headers=alice)
            updated = await http.put(
                location, json={"name": "Renamed"}, headers={**alice, "If-Match": '"1"'}
            )
            stale = await http.put(
                location, json={"name": "Stale"}, headers={**alice, "If-Match": '"1"'}
            )
            versions = await http.get(f"{location}/versions", headers=alice)
            as_bob = await http.get(location, headers=bob)
            bobs_list = await http.get("/api/workflows", headers=bob)
            forged = await http.get(
                "/api/workflows", headers=bearer(make_rsa_key("e2e-key"), frontend, "user_alice")
            )
            foreign_party = await http.get(
                "/api/workflows",
                headers=bearer(signing_key, frontend, "user_alice", azp="https://evil.test"),
            )
            deleted = await http.delete(location, headers={**alice, "If-Match": '"2"'})
            gone = await http.get(location, headers=alice)

    assert (ready.status_code, ready.json()["checks"]["database"]) == (200, {"status": "up"})
    assert created.status_code == 201
    assert [w["id"] for w in listed.json()["items"]] == [created.json()["id"]]
    assert (updated.status_code, updated.headers["etag"]) == (200, '"2"')
    assert stale.status_code == 412
    assert [v["version"] for v in versions.json()["items"]] == [2, 1]
    assert as_bob.status_code == 404
    assert bobs_list.json()["items"] == []
    assert forged.status_code == 401
    assert foreign_party.status_code == 401
    assert forged.json()["detail"] == foreign_party.json()["detail"]
    assert deleted.status_code == 204
    assert gone.status_code == 404


async def test_serve_with_the_database_down_is_alive_but_not_ready_and_answers_503(
    jwks: JwksServer, signing_key: SigningKey, tmp_path: Path
) -> None:
    frontend = jwks.url.removesuffix("/.well-known/jwks.json")
    env = seed_env(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/none", frontend)
    port = free_port()

    with server(["serve", "--port", str(port)], env, port, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            ready = await http.get("/health/ready")
            listing = await http.get(
                "/api/workflows", headers=bearer(signing_key, frontend, "user_alice")
            )

    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == {"status": "down"}
    assert listing.status_code == 503
    assert listing.headers["content-type"] == "application/problem+json"
    assert listing.json()["type"] == "urn:flowbuilder:problem:dependency-unavailable"


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"WORKFLOW_QUEUE_URL": ""}, "WORKFLOW_QUEUE_URL"),
        ({"CLERK_FRONTEND_URL": ""}, "CLERK_FRONTEND_URL"),
        ({"DB_PORT": "not-a-port"}, "DB_PORT"),
        ({"DB_SSL_MODE": "sometimes"}, "DB_SSL_MODE"),
        ({"EXECUTION_RATE_BURST": "0"}, "EXECUTION_RATE_BURST"),
        ({"USE_DB_SECRETS": "perhaps"}, "USE_DB_SECRETS"),
        ({"DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        ({"CLERK_JWKS_URL": "ftp://keys"}, "CLERK_JWKS_URL"),
        ({"IDEMPOTENCY_HMAC_KEY": ""}, "IDEMPOTENCY_HMAC_KEY"),
        ({"IDEMPOTENCY_HMAC_KEY": "c2hvcnQ="}, "IDEMPOTENCY_HMAC_KEY"),
        ({"CLERK_JWKS_URL": "http://clerk.example.test/jwks"}, "CLERK_JWKS_URL"),
        ({"CLERK_AUTHORIZED_PARTIES": " , "}, "CLERK_AUTHORIZED_PARTIES"),
        ({"SECRETS_PREFIX": ""}, "SECRETS_PREFIX"),
    ],
)
def test_bad_configuration_stops_start_up_with_one_line_naming_the_setting(
    overrides: dict[str, str], named: str, tmp_path: Path
) -> None:
    env = seed_env("postgresql+asyncpg://u@127.0.0.1:5433/db", "https://clerk.example.test")
    env.update(overrides)
    env = {k: v for k, v in env.items() if v != ""}

    result = run(["serve", "--port", str(free_port())], env, cwd=tmp_path)

    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "Traceback" not in result.stderr
