"""`Idempotency-Key` on the creating POSTs."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.memory import MemoryStore

from support.factories import make_workflow_body

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

CREATES = [
    ("/api/workflows", make_workflow_body()),
    ("/api/credentials", {"name": "Token", "type": "http_bearer", "data": {"token": "t-1"}}),
]


@pytest.mark.parametrize(("path", "body"), CREATES)
async def test_a_retry_with_the_same_key_and_body_replays_the_first_answer(
    client: Client, auth: Auth, path: str, body: dict[str, Any]
) -> None:
    headers = {**auth(), "Idempotency-Key": "retry-1"}

    first = await client.post(path, json=body, headers=headers)
    again = await client.post(path, json=body, headers=headers)
    listed = await client.get(path, headers=auth())

    assert (first.status_code, again.status_code) == (201, 201)
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(listed.json()["items"]) == 1


@pytest.mark.parametrize(("path", "body"), CREATES)
async def test_the_same_key_with_another_body_is_422(
    client: Client, auth: Auth, path: str, body: dict[str, Any]
) -> None:
    headers = {**auth(), "Idempotency-Key": "retry-2"}
    await client.post(path, json=body, headers=headers)

    response = await client.post(path, json={**body, "name": "Another"}, headers=headers)

    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "header:Idempotency-Key"


async def test_a_key_used_for_another_operation_is_422(client: Client, auth: Auth) -> None:
    headers = {**auth(), "Idempotency-Key": "shared"}
    (workflows, workflow_body), (credentials, credential_body) = CREATES

    await client.post(workflows, json=workflow_body, headers=headers)
    response = await client.post(credentials, json=credential_body, headers=headers)

    assert response.status_code == 422


async def test_keys_belong_to_one_user(client: Client, auth: Auth) -> None:
    path, body = CREATES[0]

    alice = await client.post(
        path, json=body, headers={**auth("user_alice"), "Idempotency-Key": "k"}
    )
    bob = await client.post(path, json=body, headers={**auth("user_bob"), "Idempotency-Key": "k"})

    assert (alice.status_code, bob.status_code) == (201, 201)
    assert alice.json()["id"] != bob.json()["id"]
    assert "idempotent-replayed" not in bob.headers


async def test_a_failed_request_leaves_the_key_free_for_a_corrected_retry(
    client: Client, auth: Auth
) -> None:
    headers = {**auth(), "Idempotency-Key": "fix-and-retry"}

    failed = await client.post("/api/workflows", json={"name": " "}, headers=headers)
    fixed = await client.post("/api/workflows", json={"name": "Fixed"}, headers=headers)

    assert (failed.status_code, fixed.status_code) == (422, 201)


async def test_a_malformed_key_is_422_on_the_header(client: Client, auth: Auth) -> None:
    path, body = CREATES[0]

    for key in ("k" * 256, "tab\there"):
        response = await client.post(path, json=body, headers={**auth(), "Idempotency-Key": key})
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "header:Idempotency-Key"


async def test_the_same_key_with_another_secret_value_is_422(client: Client, auth: Auth) -> None:
    headers = {**auth(), "Idempotency-Key": "rotated-before-the-answer"}
    body = {"name": "Token", "type": "http_bearer", "data": {"token": "first-secret"}}
    first = await client.post("/api/credentials", json=body, headers=headers)

    response = await client.post(
        "/api/credentials", json={**body, "data": {"token": "second-secret"}}, headers=headers
    )

    assert first.status_code == 201
    assert response.status_code == 422
    assert response.json()["type"] == "urn:flowbuilder:problem:idempotency-key-reused"


async def test_the_stored_fingerprint_is_keyed_so_no_secret_can_be_guessed_from_it(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    body = {"name": "Token", "type": "http_bearer", "data": {"token": "hunter2"}}
    await client.post("/api/credentials", json=body, headers={**auth(), "Idempotency-Key": "k"})
    canonical = json.dumps(["POST /api/credentials", body], sort_keys=True).encode()
    guesses = {
        hashlib.sha256(canonical).hexdigest(),
        hmac.new(b"", canonical, hashlib.sha256).hexdigest(),
    }

    (entry,) = store.idempotency.values()

    assert entry.fingerprint not in guesses
    assert "hunter2" not in repr(entry)
