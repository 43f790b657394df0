"""Errors are problem documents, authentication guards everything under /api, and nobody can
tell another user's workflow from one that does not exist."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from dishka import Provider, Scope, provide
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.wiring import MemoryProvider
from flowbuilder_core.workflows.ports import WorkflowRepository

from support.factories import make_workflow_body
from support.http_app import make_test_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = dict(response.json())
    assert set(body) >= PROBLEM_KEYS
    assert body["status"] == status
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def without_request_id(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "request_id"}


async def workflow_url(client: Client, auth: Auth) -> str:
    response = await client.post("/api/workflows", json=make_workflow_body(), headers=auth())
    return str(response.headers["location"])


def every_route(url: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("GET", url, {}),
        ("PUT", url, {"json": {"name": "mine now"}}),
        ("DELETE", url, {}),
        ("GET", f"{url}/versions", {}),
        ("GET", f"{url}/versions/1", {}),
    ]


async def test_another_users_workflow_is_404_exactly_like_a_random_id_on_every_route(
    client: Client, auth: Auth
) -> None:
    url = await workflow_url(client, auth)
    random_url = f"/api/workflows/{uuid.uuid4()}"

    for (method, theirs, kwargs), (_, missing, _) in zip(
        every_route(url), every_route(random_url), strict=True
    ):
        foreign = await client.request(method, theirs, headers=auth("user_bob"), **kwargs)
        absent = await client.request(method, missing, headers=auth("user_bob"), **kwargs)
        assert without_request_id(assert_problem(foreign, 404)) == without_request_id(
            assert_problem(absent, 404)
        ), (method, theirs)
    listed = await client.get("/api/workflows", headers=auth("user_bob"))
    assert listed.json()["items"] == []
    assert (await client.get(url, headers=auth())).json()["version"] == 1


def routes_with_an_id(
    workflow: str, execution: str, credential: str, version: str
) -> list[tuple[str, str, dict[str, Any]]]:
    """Every route with an id in its path, with a body it would accept."""
    return [
        ("GET", f"/api/workflows/{workflow}", {}),
        ("PUT", f"/api/workflows/{workflow}", {"json": {"name": "renamed"}}),
        ("DELETE", f"/api/workflows/{workflow}", {}),
        ("GET", f"/api/workflows/{workflow}/versions", {}),
        ("GET", f"/api/workflows/{workflow}/versions/{version}", {}),
        ("POST", f"/api/workflows/{workflow}/execute", {"json": {"input": {}}}),
        ("GET", f"/api/workflows/{workflow}/executions", {}),
        ("GET", f"/api/executions/{execution}", {}),
        ("POST", f"/api/executions/{execution}/cancel", {}),
        ("POST", f"/api/executions/{execution}/retry", {}),
        ("GET", f"/api/credentials/{credential}", {}),
        ("PUT", f"/api/credentials/{credential}", {"json": {"name": "renamed"}}),
        ("DELETE", f"/api/credentials/{credential}", {}),
    ]


async def test_a_malformed_id_in_the_path_is_answered_exactly_as_a_missing_one(
    client: Client, auth: Auth
) -> None:
    missing = routes_with_an_id(*(str(uuid.uuid4()) for _ in range(3)), "1")
    malformed = routes_with_an_id("not-a-uuid", "123", "x" * 40, "1")

    for (method, absent, kwargs), (_, garbled, _) in zip(missing, malformed, strict=True):
        expected = assert_problem(
            await client.request(method, absent, headers=auth(), **kwargs), 404
        )
        answered = assert_problem(
            await client.request(method, garbled, headers=auth(), **kwargs), 404
        )
        assert without_request_id(answered) == without_request_id(expected), (method, garbled)
        assert answered["type"] != "urn:flowbuilder:problem:not-found"


async def test_a_version_that_is_not_a_number_is_answered_as_a_missing_version(
    client: Client, auth: Auth
) -> None:
    url = await workflow_url(client, auth)
    missing = f"/api/workflows/{uuid.uuid4()}"

    for base, expected_type in (
        (url, "workflow-version-not-found"),
        (missing, "workflow-not-found"),
    ):
        absent = assert_problem(await client.get(f"{base}/versions/99", headers=auth()), 404)
        for version in ("abc", "1.5", "-1", "9" * 5000):
            garbled = assert_problem(
                await client.get(f"{base}/versions/{version}", headers=auth()), 404
            )
            assert without_request_id(garbled) == without_request_id(absent), version
        assert absent["type"] == f"urn:flowbuilder:problem:{expected_type}"


async def test_an_unknown_path_is_the_generic_404(client: Client, auth: Auth) -> None:
    body = assert_problem(await client.get("/api/nothing-here", headers=auth()), 404)

    assert body["type"] == "urn:flowbuilder:problem:not-found"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not-a-jwt",
        "Bearer a.b.c",
        "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyX2FsaWNlIn0.",
    ],
)
async def test_every_authentication_failure_is_the_same_401(
    client: Client, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = await client.get("/api/workflows", headers=headers)

    body = assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert without_request_id(body) == {
        "type": "urn:flowbuilder:problem:unauthenticated",
        "title": "Unauthenticated",
        "status": 401,
        "detail": "A valid bearer token is required.",
    }


async def test_expired_and_foreign_tokens_get_the_same_401(
    client: Client, issuer: DevTokenIssuer, tmp_path: Any
) -> None:
    expired = issuer.issue("user_alice", ttl_s=-60)
    foreign = DevTokenIssuer.load_or_create(tmp_path / "other").issue("user_alice")

    bodies = [
        without_request_id(
            assert_problem(
                await client.get("/api/workflows", headers={"Authorization": f"Bearer {token}"}),
                401,
            )
        )
        for token in (expired, foreign)
    ]

    assert bodies[0] == bodies[1]


async def test_authentication_comes_before_reading_the_body(client: Client) -> None:
    response = await client.post(
        "/api/workflows", content=b"{not json", headers={"content-type": "application/json"}
    )

    assert_problem(response, 401)


async def test_cookies_are_never_read_as_credentials(
    client: Client, issuer: DevTokenIssuer
) -> None:
    token = issuer.issue("user_alice")

    response = await client.get(
        "/api/workflows", headers={"Cookie": f"__session={token}; session={token}"}
    )

    assert_problem(response, 401)


async def test_every_route_under_api_needs_a_token(client: Client, auth: Auth) -> None:
    url = await workflow_url(client, auth)
    routes = [
        *every_route(url),
        ("GET", "/api/workflows", {}),
        ("POST", "/api/workflows", {"json": make_workflow_body()}),
        ("POST", "/api/workflows/validate", {"json": {"definition": None}}),
        ("GET", "/api/node-types", {}),
    ]

    for method, path, kwargs in routes:
        assert_problem(await client.request(method, path, **kwargs), 401)


async def test_malformed_json_is_400(client: Client, auth: Auth) -> None:
    for body in (b"{not json", b'{"name": "x"', b"\xff\xfe", b"[" * 5000 + b"]" * 5000, b"1e999"):
        response = await client.post(
            "/api/workflows", content=body, headers={**auth(), "content-type": "application/json"}
        )
        problem = assert_problem(response, 400)
        assert problem["type"] == "urn:flowbuilder:problem:malformed-request"


async def test_a_missing_or_non_object_body_is_400_or_422(client: Client, auth: Auth) -> None:
    empty = await client.post("/api/workflows", headers=auth())
    array = await client.post("/api/workflows", json=[], headers=auth())

    assert_problem(empty, 400)
    assert_problem(array, 422)


async def test_unknown_fields_are_422_naming_the_field(client: Client, auth: Auth) -> None:
    response = await client.post(
        "/api/workflows", json={**make_workflow_body(), "owner_id": "user_bob"}, headers=auth()
    )

    body = assert_problem(response, 422)
    assert body["errors"] == [{"field": "/owner_id", "message": "is not a known field"}]


async def test_field_type_errors_are_422_with_a_pointer_and_no_echo(
    client: Client, auth: Auth
) -> None:
    cases = [
        ({"name": 12345}, "/name"),
        ({"name": "x", "tags": "secret-looking-value"}, "/tags"),
        ({"name": "x", "tags": ["ok", 7]}, "/tags/1"),
        ({"description": "no name"}, "/name"),
        ({"name": "x", "definition": ["secret-looking-value"]}, "/definition"),
    ]

    for payload, field in cases:
        response = await client.post("/api/workflows", json=payload, headers=auth())
        body = assert_problem(response, 422)
        assert [e["field"] for e in body["errors"]] == [field], payload
        assert "secret-looking-value" not in response.text


async def test_every_definition_problem_is_listed(client: Client, auth: Auth) -> None:
    definition = {
        "nodes": [
            {"id": "start", "type": "trigger.manual"},
            {"id": "fetch", "type": "http.request", "parameters": {"url": "file:///etc/passwd"}},
            {"id": "n\u0000", "type": "data.set"},
        ],
        "edges": [{"source": "start", "target": "nowhere"}],
    }

    response = await client.post(
        "/api/workflows", json={"name": " ", "definition": definition}, headers=auth()
    )

    body = assert_problem(response, 422)
    assert [e["field"] for e in body["errors"]] == ["/name", "/definition/nodes/2/id"]


async def test_unstorable_text_is_422_not_a_database_error(client: Client, auth: Auth) -> None:
    for payload in (
        {"name": "nul\u0000"},
        {"name": "x", "tags": ["a\u0000"]},
        {
            "name": "x",
            "definition": {
                "nodes": [{"id": "a", "type": "data.set", "parameters": {"value": {"k": "\u0000"}}}]
            },
        },
    ):
        assert_problem(await client.post("/api/workflows", json=payload, headers=auth()), 422)


async def test_a_body_over_one_mebibyte_is_413(client: Client, auth: Auth) -> None:
    big = b'{"name": "' + b"x" * (1024 * 1024) + b'"}'

    response = await client.post(
        "/api/workflows", content=big, headers={**auth(), "content-type": "application/json"}
    )

    assert_problem(response, 413)


async def test_a_body_that_is_not_json_is_415(client: Client, auth: Auth) -> None:
    for content_type in ("text/plain", "application/x-www-form-urlencoded", ""):
        headers = {**auth(), "content-type": content_type}
        response = await client.post("/api/workflows", content=b"name=x", headers=headers)
        assert_problem(response, 415)


async def test_an_unsupported_method_is_405_with_allow(client: Client, auth: Auth) -> None:
    response = await client.patch("/api/workflows", headers=auth())

    assert_problem(response, 405)
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}


async def test_the_request_id_is_echoed_when_valid_and_replaced_when_not(client: Client) -> None:
    valid = await client.get("/health/live", headers={"X-Request-ID": "abc.DEF_123-x"})
    invalid = await client.get("/health/live", headers={"X-Request-ID": "has spaces/and slashes"})
    too_long = await client.get("/health/live", headers={"X-Request-ID": "a" * 129})
    failing = await client.get("/api/workflows", headers={"X-Request-ID": "trace-1"})

    assert valid.headers["x-request-id"] == "abc.DEF_123-x"
    assert invalid.headers["x-request-id"] not in ("", "has spaces/and slashes")
    assert len(too_long.headers["x-request-id"]) < 129
    assert failing.headers["x-request-id"] == "trace-1"
    assert failing.json()["request_id"] == "trace-1"


class ExplodingRepositoryProvider(Provider):
    """A repository that fails as a bug would, with internals in its message."""

    @provide(scope=Scope.REQUEST, override=True)
    def workflows(self) -> WorkflowRepository:
        class Exploding:
            def __getattr__(self, name: str) -> Any:
                async def fail(*args: Any, **kwargs: Any) -> None:
                    raise RuntimeError("SELECT password FROM users -- internal detail")

                return fail

        return Exploding()  # type: ignore[return-value]


async def test_an_unexpected_error_is_a_bare_500_problem(issuer: DevTokenIssuer) -> None:
    app = make_test_app(issuer, MemoryProvider(), ExplodingRepositoryProvider())
    headers = {"Authorization": f"Bearer {issuer.issue('user_alice')}"}

    async with AsyncTestClient(app) as client:
        response = await client.get(f"/api/workflows/{uuid.uuid4()}", headers=headers)

    body = assert_problem(response, 500)
    assert "SELECT" not in response.text
    assert body["detail"] == "An unexpected error occurred."


async def test_liveness_and_readiness_answer_without_a_token(client: Client) -> None:
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")

    assert (live.status_code, live.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    assert ready.json()["checks"]["database"] == {"status": "up"}
    assert set(ready.json()["checks"]) == {"database", "queue", "outbox"}


async def test_the_openapi_document_describes_every_route(client: Client) -> None:
    spec = (await client.get("/docs/openapi.json")).json()
    ui = await client.get("/docs")

    assert spec["openapi"].startswith("3.1")
    assert {path: set(ops) for path, ops in spec["paths"].items()} == {
        "/api/workflows": {"get", "post"},
        "/api/workflows/validate": {"post"},
        "/api/workflows/{workflow_id}": {"get", "put", "delete"},
        "/api/workflows/{workflow_id}/activate": {"post"},
        "/api/workflows/{workflow_id}/deactivate": {"post"},
        "/api/workflows/{workflow_id}/schedule": {"get"},
        "/api/workflows/{workflow_id}/versions": {"get"},
        "/api/workflows/{workflow_id}/versions/{version}": {"get"},
        "/api/workflows/{workflow_id}/webhook": {"get"},
        "/api/workflows/{workflow_id}/webhook/secret": {"post"},
        "/api/node-types": {"get"},
        "/api/credentials": {"get", "post"},
        "/api/credentials/types": {"get"},
        "/api/credentials/{credential_id}": {"get", "put", "delete"},
        "/api/workflows/{workflow_id}/execute": {"post"},
        "/api/workflows/{workflow_id}/executions": {"get"},
        "/api/executions": {"get"},
        "/api/executions/{execution_id}": {"get"},
        "/api/executions/{execution_id}/cancel": {"post"},
        "/api/executions/{execution_id}/retry": {"post"},
        "/api/executions/{execution_id}/events": {"get"},
        "/health/live": {"get"},
        "/health/ready": {"get"},
        "/metrics": {"get"},
        "/hooks/{hook_id}": {"get", "post", "put", "patch", "delete"},
    }
    assert spec["components"]["securitySchemes"]["BearerAuth"]["scheme"] == "bearer"
    api_operations = [
        op for path, ops in spec["paths"].items() if path.startswith("/api") for op in ops.values()
    ]
    for operation in api_operations:
        errors = {k: v for k, v in operation["responses"].items() if k.startswith(("4", "5"))}
        assert "401" in errors, operation["operationId"]
        assert all(list(e["content"]) == ["application/problem+json"] for e in errors.values())
        assert operation["security"] == [{"BearerAuth": []}]
    put = spec["paths"]["/api/workflows/{workflow_id}"]["put"]
    assert {"404", "412", "422"} <= set(put["responses"])
    assert "ETag" in put["responses"]["200"]["headers"]
    assert ui.status_code == 200
    assert "text/html" in ui.headers["content-type"]
