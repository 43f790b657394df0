"""Credentials through the real server on Postgres: in Secrets Manager (a local moto server) or
encrypted in the database with a keyring that rotates."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aioboto3
import httpx
import pytest
from sqlalchemy import select, text

from flowbuilder_adapters.secrets.aesgcm import AesGcmSecretStore
from flowbuilder_adapters.secrets.keyring import Keyring
from flowbuilder_adapters.sql.database import create_engine
from flowbuilder_adapters.sql.tables import credential_secrets, credentials
from flowbuilder_core.credentials.model import CredentialId, SecretBinding, SecretRef
from flowbuilder_core.shared.clock import SystemClock
from flowbuilder_core.shared.ids import UserId

from support.jwks import JwksServer
from support.processes import bearer, free_port, run, seed_env, server
from support.tokens import SigningKey, make_rsa_key

pytestmark = pytest.mark.postgres

CANARY = "canary-e2e-7d1f-token"
TABLES = (
    "workflows",
    "workflow_versions",
    "workflow_credentials",
    "credentials",
    "credential_secrets",
)


@pytest.fixture
def jwks() -> Iterator[tuple[JwksServer, SigningKey]]:
    key = make_rsa_key("credentials-e2e")
    with JwksServer(key) as served:
        yield served, key


def new_key(key_id: str) -> str:
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


async def every_row_as_text(database_url: str) -> str:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        dumps = [
            str(
                (
                    await connection.execute(text(f"SELECT row_to_json(t)::text FROM {table} t"))
                ).all()
            )
            for table in TABLES
        ]
    await engine.dispose()
    return "\n".join(dumps)


async def session(base: str, headers: dict[str, str]) -> list[httpx.Response]:
    """The session of the issue: create, list, get, rotate, delete while used, delete after."""
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        created = await http.post(
            "/api/credentials",
            json={"name": "Orders token", "type": "http_bearer", "data": {"token": CANARY}},
            headers=headers,
        )
        assert "location" in created.headers, created.text
        url = created.headers["location"]
        workflow = await http.post(
            "/api/workflows",
            json={
                "name": "Fetch orders",
                "definition": {
                    "nodes": [
                        {"id": "start", "type": "trigger.manual"},
                        {
                            "id": "fetch",
                            "type": "http.request",
                            "credential_id": created.json()["id"],
                            "parameters": {"method": "GET", "url": "https://api.example.com/"},
                        },
                    ],
                    "edges": [{"source": "start", "target": "fetch"}],
                },
            },
            headers=headers,
        )
        return [
            created,
            await http.get("/api/credentials", headers=headers),
            await http.get(url, headers=headers),
            await http.put(url, json={"data": {"token": CANARY + "-rotated"}}, headers=headers),
            await http.delete(url, headers=headers),
            await http.delete(workflow.headers["location"], headers=headers),
            await http.delete(url, headers=headers),
            workflow,
        ]


async def test_with_secrets_manager_a_credential_is_one_tagged_secret_and_no_value_in_the_db(
    postgres_url: str,
    jwks: tuple[JwksServer, SigningKey],
    moto_endpoint: str,
    tmp_path: Path,
) -> None:
    served, key = jwks
    frontend = served.url.removesuffix("/.well-known/jwks.json")
    aws = {
        k: os.environ[k]
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
    }
    env = seed_env(
        postgres_url,
        frontend,
        USE_DB_SECRETS="false",
        AWS_ENDPOINT_URL_SECRETS_MANAGER=moto_endpoint,
        **aws,
    )
    owner = f"user_{os.urandom(4).hex()}"
    assert run(["migrate"], env).returncode == 0
    port = free_port()

    with server(["serve", "--port", str(port)], env, port, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            kept = await http.post(
                "/api/credentials",
                json={
                    "name": "Kept",
                    "type": "http_header",
                    "data": {"name": "X-Key", "value": CANARY},
                },
                headers=bearer(key, frontend, owner),
            )
            responses = await session(base, bearer(key, frontend, owner))

    async with aioboto3.Session().client("secretsmanager", region_name="us-east-1") as client:
        listed = await client.list_secrets(IncludePlannedDeletion=False)
    ours = [
        s
        for s in listed["SecretList"]
        if {"Key": "flowbuilder:owner", "Value": owner} in s.get("Tags", [])
    ]
    statuses = [r.status_code for r in responses]
    assert kept.status_code == 201
    assert statuses == [201, 200, 200, 200, 409, 204, 204, 201]
    assert [s["ARN"] for s in ours] == [await stored_ref(postgres_url, kept.json()["id"])]
    assert CANARY not in await every_row_as_text(postgres_url)
    for response in [kept, *responses]:
        assert CANARY not in response.text
    assert CANARY not in server_log(tmp_path)


def server_log(directory: Path) -> str:
    return next(directory.glob("server-*.log")).read_text()


async def stored_ref(database_url: str, credential_id: str) -> str:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        ref = (
            await connection.execute(
                select(credentials.c.secret_ref).where(credentials.c.id == credential_id)
            )
        ).scalar_one()
    await engine.dispose()
    return str(ref)


async def test_with_database_secrets_reencrypt_moves_every_row_to_the_first_key(
    postgres_url: str, jwks: tuple[JwksServer, SigningKey], tmp_path: Path
) -> None:
    served, key = jwks
    frontend = served.url.removesuffix("/.well-known/jwks.json")
    old, new = new_key("old"), new_key("new")
    env = seed_env(postgres_url, frontend, USE_DB_SECRETS="true", SECRETS_ENCRYPTION_KEY=old)
    assert run(["migrate"], env).returncode == 0
    headers = bearer(key, frontend, "user_alice")
    port = free_port()

    with server(["serve", "--port", str(port)], env, port, cwd=tmp_path) as base:
        async with httpx.AsyncClient(base_url=base, timeout=20) as http:
            for index in range(5):
                response = await http.post(
                    "/api/credentials",
                    json={
                        "name": f"c{index}",
                        "type": "generic",
                        "data": {"k": f"{CANARY}-{index}"},
                    },
                    headers=headers,
                )
                assert response.status_code == 201
    before = await key_ids(postgres_url)
    rotated_env = {**env, "SECRETS_ENCRYPTION_KEY": f"{new},{old}"}

    moved = run(["secrets", "reencrypt", "--batch-size", "2"], rotated_env)

    assert moved.returncode == 0, moved.stderr
    assert "5 secret(s) moved" in moved.stderr
    assert before == ["old"] * 5
    assert await key_ids(postgres_url) == ["new"] * 5
    assert await decrypted_values(postgres_url, Keyring.parse(new)) == sorted(
        f"{CANARY}-{i}" for i in range(5)
    )
    assert CANARY not in await every_row_as_text(postgres_url)


async def key_ids(database_url: str) -> list[str]:
    engine = create_engine(database_url)
    async with engine.connect() as connection:
        rows = (await connection.execute(select(credential_secrets.c.key_id))).all()
    await engine.dispose()
    return [row.key_id for row in rows]


async def decrypted_values(database_url: str, keyring: Keyring) -> list[str]:
    """Every credential's value, read with `keyring` alone (the old key removed)."""
    engine = create_engine(database_url)
    values: list[Any] = []
    async with engine.connect() as connection:
        store = AesGcmSecretStore(connection, keyring, SystemClock())
        for row in (await connection.execute(select(credentials))).all():
            binding = SecretBinding(UserId(row.owner_id), CredentialId(row.id))
            data = await store.get(SecretRef(row.secret_ref), binding)
            values += data.values.values()
    await engine.dispose()
    return sorted(values)


def test_use_db_secrets_without_a_valid_key_stops_start_up_naming_the_key(tmp_path: Path) -> None:
    base_env = seed_env("postgresql+asyncpg://u@127.0.0.1:5433/db", "https://clerk.example.test")
    cases = [
        ({"USE_DB_SECRETS": "true"}, "SECRETS_ENCRYPTION_KEY"),
        (
            {"USE_DB_SECRETS": "true", "SECRETS_ENCRYPTION_KEY": "k1:c2hvcnQ="},
            "SECRETS_ENCRYPTION_KEY",
        ),
        (
            {"USE_DB_SECRETS": "true", "SECRETS_ENCRYPTION_KEY": "not base64 at all!"},
            "SECRETS_ENCRYPTION_KEY",
        ),
    ]

    for overrides, named in cases:
        result = run(["serve", "--port", str(free_port())], {**base_env, **overrides}, cwd=tmp_path)
        lines = result.stderr.strip().splitlines()
        assert result.returncode == 2, overrides
        assert len(lines) == 1
        assert named in lines[0]
        assert "c2hvcnQ" not in result.stderr
