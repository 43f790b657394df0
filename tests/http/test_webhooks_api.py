"""Webhooks over the in-memory adapters: a workflow's webhook and its secret, and `/hooks/{id}`
with every auth mode, the run it requests, its bounds, its 404s and its answers. Runs that a
test waits for are run by a real `RunExecution` over the same store (`running`)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from dishka import Provider, Scope, provide
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.background import Background
from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.memory import MemoryRunTransactions, MemoryStore
from flowbuilder_adapters.nodes import JmesPathEvaluator, basic_runners
from flowbuilder_adapters.wiring import MemoryProvider
from flowbuilder_core.executions.engine import Engine
from flowbuilder_core.executions.model import ExecutionId, ExecutionStatus
from flowbuilder_core.executions.ports import CredentialResolver, ResolvedSecret
from flowbuilder_core.executions.run import RunExecution
from flowbuilder_core.shared.clock import SystemClock
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.webhooks.model import WebhookLimits
from flowbuilder_core.webhooks.signatures import sign

from support.http_app import make_test_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]

MIB = 1024 * 1024


def hook_workflow(*nodes: dict[str, Any], **trigger: Any) -> dict[str, Any]:
    """A workflow whose webhook trigger (parameters `trigger`) feeds `nodes` in a chain."""
    chain = [{"id": "hook", "type": "trigger.webhook", "parameters": trigger}, *nodes]
    if len(chain) == 1:
        chain.append({"id": "echo", "type": "data.set", "parameters": {"value": "{{ input }}"}})
    edges = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(chain)]
    return {"name": "Hooked", "definition": {"nodes": chain, "edges": edges}}


async def setup_hook(
    client: Client, auth: Auth, body: dict[str, Any] | None = None, *, active: bool = True
) -> tuple[str, str, str]:
    """The workflow's URL, its hook's path and a fresh secret."""
    created = await client.post("/api/workflows", json=body or hook_workflow(), headers=auth())
    assert created.status_code == 201, created.text
    url = created.headers["location"]
    if active:
        assert (await client.post(f"{url}/activate", headers=auth())).status_code == 200
    hook = (await client.get(f"{url}/webhook", headers=auth())).json()["url"]
    secret = (await client.post(f"{url}/webhook/secret", headers=auth())).json()["secret"]
    return url, hook, secret


def signed(secret: str, body: bytes, *, at: int | None = None) -> dict[str, str]:
    return {"X-FlowBuilder-Signature": sign(secret, int(time.time()) if at is None else at, body)}


async def call(
    client: Client, hook: str, secret: str, body: bytes = b'{"order": 42}', **headers: str
) -> Any:
    sent = {"Content-Type": "application/json", **signed(secret, body), **headers}
    return await client.post(hook, content=body, headers=sent)


def webhook_executions(store: MemoryStore) -> list[Any]:
    return [e for e in store.executions.values() if e.trigger == "webhook"]


class _NoCredentials(CredentialResolver):
    async def resolve(self, owner: UserId, credential_id: uuid.UUID) -> ResolvedSecret:
        raise LookupError("no credentials here")


class RunningProvider(Provider):
    """The app's background: a worker that runs every queued execution of the store, as a
    worker process would, on the app's own event loop."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__()
        self._store = store

    @provide(scope=Scope.APP, override=True)
    def background(self) -> Background:
        clock = SystemClock()
        run = RunExecution(
            MemoryRunTransactions(self._store),
            Engine(basic_runners(), JmesPathEvaluator(), clock),
            _NoCredentials(),
            clock,
        )

        async def work(stop: asyncio.Event) -> None:
            while not stop.is_set():
                for execution in list(self._store.executions.values()):
                    if execution.status is ExecutionStatus.QUEUED:
                        await run(ExecutionId(execution.id))
                await asyncio.sleep(0.01)

        return Background([work], grace_seconds=1)


@pytest.fixture
async def limited(issuer: DevTokenIssuer, store: MemoryStore) -> AsyncIterator[Client]:
    """An API whose hooks hold two tokens and wait 3 s for a run (which nothing runs)."""
    limits = WebhookLimits(wait_s=3, rate_per_second=0.01, burst=2)
    app = make_test_app(issuer, MemoryProvider(store, hooks=limits), webhooks=limits)
    async with AsyncTestClient(app) as client:
        yield client


@pytest.fixture
async def running(issuer: DevTokenIssuer, store: MemoryStore) -> AsyncIterator[Client]:
    """An API whose queued executions run, as in embedded mode; hooks wait up to 10 s."""
    limits = WebhookLimits(wait_s=10)
    providers = (MemoryProvider(store, hooks=limits), RunningProvider(store))
    app = make_test_app(issuer, *providers, webhooks=limits)
    async with AsyncTestClient(app) as client:
        yield client


# --- the webhook and its secret -------------------------------------------------------------


async def test_the_webhook_shows_its_url_and_settings_and_never_its_secret(
    client: Client, auth: Auth
) -> None:
    created = await client.post("/api/workflows", json=hook_workflow(), headers=auth())
    url = created.headers["location"]

    first = (await client.get(f"{url}/webhook", headers=auth())).json()
    secret = await client.post(f"{url}/webhook/secret", headers=auth())
    after = (await client.get(f"{url}/webhook", headers=auth())).json()

    hook_id = first["url"].removeprefix("/hooks/")
    assert first == {
        "url": first["url"],
        "methods": ["POST"],
        "auth": "signature",
        "respond": "immediately",
        "dedupe_header": None,
        "secret_set": False,
        "active": False,
    }
    assert len(hook_id) >= 22
    assert all(c.isalnum() or c in "-_" for c in hook_id)
    assert secret.status_code == 200
    assert secret.headers["cache-control"] == "no-store"
    assert len(secret.json()["secret"]) >= 32
    assert after == {**first, "secret_set": True}
    assert secret.json()["secret"] not in str(after)


async def test_the_hook_id_is_stable_across_versions_and_reads(client: Client, auth: Auth) -> None:
    url, hook, _ = await setup_hook(client, auth)
    replaced = hook_workflow(methods=["PUT", "POST"], respond="when_finished")

    await client.put(url, json=replaced, headers=auth())
    again = (await client.get(f"{url}/webhook", headers=auth())).json()

    assert again["url"] == hook
    assert (again["methods"], again["respond"], again["active"]) == (
        ["PUT", "POST"],
        "when_finished",
        True,
    )


async def test_a_workflow_without_a_webhook_trigger_has_no_webhook(
    client: Client, auth: Auth
) -> None:
    manual = {"name": "Manual", "definition": {"nodes": [{"id": "s", "type": "trigger.manual"}]}}
    url = (await client.post("/api/workflows", json=manual, headers=auth())).headers["location"]

    got = await client.get(f"{url}/webhook", headers=auth())
    rotated = await client.post(f"{url}/webhook/secret", headers=auth())
    someone_elses = await client.get(f"{url}/webhook", headers=auth("user_bob"))

    assert got.status_code == rotated.status_code == 404
    assert got.json()["type"] == "urn:flowbuilder:problem:webhook-not-found"
    assert someone_elses.json()["type"] == "urn:flowbuilder:problem:workflow-not-found"


async def test_save_time_validation_names_bad_trigger_parameters_by_pointer(
    client: Client, auth: Auth
) -> None:
    bad = hook_workflow(
        {"id": "answer", "type": "webhook.respond", "parameters": {"status": 99}},
        methods=["POST", "POST", "TRACE"],
        auth="{{ input.auth }}",
        respond="later",
        dedupe_header="Bad Header",
    )

    response = await client.post("/api/workflows", json=bad, headers=auth())

    fields = {e["field"]: e["message"] for e in response.json()["errors"]}
    at = "/definition/nodes/0/parameters"
    assert response.status_code == 422
    assert set(fields) == {
        f"{at}/methods",
        f"{at}/methods/2",
        f"{at}/auth",
        f"{at}/respond",
        f"{at}/dedupe_header",
        "/definition/nodes/1/parameters/status",
    }
    assert fields[f"{at}/auth"] == "must be a value, not a template"


async def test_the_catalogue_describes_both_node_types(client: Client, auth: Auth) -> None:
    items = {
        i["type"]: i for i in (await client.get("/api/node-types", headers=auth())).json()["items"]
    }

    trigger, respond = items["trigger.webhook"], items["webhook.respond"]
    assert trigger["category"] == "trigger"
    assert trigger["parameters_schema"]["properties"]["methods"]["default"] == ["POST"]
    assert "x-no-template" not in trigger["parameters_schema"]["properties"]["auth"]
    assert respond["category"] == "action"
    assert respond["parameters_schema"]["properties"]["status"] == {
        "type": "integer",
        "minimum": 100,
        "maximum": 599,
        "default": 200,
    }


# --- calling a hook -------------------------------------------------------------------------


async def test_a_signed_request_is_202_and_runs_the_workflow_with_the_request_as_input(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    _, hook, secret = await setup_hook(client, auth)
    body = b'{"order": 42, "note": "nul \\u0000 here"}'

    response = await client.post(
        f"{hook}?a=1&b=2&a=3",
        content=body,
        headers={
            "Content-Type": "application/json",
            "Authorization": "Bearer hidden",
            "Cookie": "session=hidden",
            "X-Custom": "kept",
            "X-Hub-Signature-256": "sha256=hidden",
            **signed(secret, body),
        },
    )

    [execution] = webhook_executions(store)
    payload = execution.input
    assert response.status_code == 202
    assert response.json() == {"execution_id": str(execution.id)}
    assert response.headers["location"] == f"/api/executions/{execution.id}"
    assert [m.execution_id for m in store.outbox] == [execution.id]
    assert (payload["method"], payload["path"]) == ("POST", hook)
    assert payload["query"] == {"a": ["1", "3"], "b": "2"}
    assert payload["body"] == {"order": 42, "note": "nul \ufffd here"}
    assert payload["headers"]["x-custom"] == "kept"
    assert payload["headers"]["content-type"] == "application/json"
    hidden = {"authorization", "cookie", "x-flowbuilder-signature", "x-hub-signature-256"}
    assert not hidden & set(payload["headers"])
    assert secret not in str(payload)
    assert "hidden" not in str(payload)
    assert payload["received_at"].endswith("Z")
    assert execution.trigger == "webhook"


async def test_a_body_that_is_not_json_is_kept_as_text(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    _, hook, secret = await setup_hook(client, auth)

    for body, media_type in (
        (b"a=1&b=2", "application/x-www-form-urlencoded"),
        (b"{", "application/json"),
        (b"\xff", "text/plain"),
    ):
        await call(client, hook, secret, body, **{"Content-Type": media_type})

    bodies = sorted(str(e.input["body"]) for e in webhook_executions(store))
    assert bodies == sorted(["a=1&b=2", "{", "\ufffd"])


async def test_wrong_stale_replayed_or_missing_signatures_are_one_401(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    _, hook, secret = await setup_hook(client, auth)
    body = b'{"order": 1}'
    fresh = signed(secret, body)
    json_type = {"Content-Type": "application/json"}

    accepted = await client.post(hook, content=body, headers={**json_type, **fresh})
    refused = [
        await client.post(hook, content=body, headers={**json_type, **fresh}),  # replayed
        await client.post(hook, content=body, headers={**json_type, **signed("wrong", body)}),
        await client.post(
            hook,
            content=body,
            headers={**json_type, **signed(secret, body, at=int(time.time()) - 301)},
        ),
        await client.post(
            hook,
            content=body,
            headers={**json_type, **signed(secret, body, at=int(time.time()) + 301)},
        ),
        await client.post(hook, content=b'{"order": 2}', headers={**json_type, **fresh}),
        await client.post(hook, content=body, headers=json_type),
        await client.post(
            hook, content=body, headers={**json_type, "X-FlowBuilder-Signature": "v1=00"}
        ),
    ]

    assert accepted.status_code == 202
    assert [r.status_code for r in refused] == [401] * len(refused)
    shapes = {
        tuple(sorted((k, v) for k, v in r.json().items() if k != "request_id")) for r in refused
    }
    assert len(shapes) == 1
    assert refused[0].json()["type"] == "urn:flowbuilder:problem:webhook-unauthenticated"
    assert "www-authenticate" not in refused[0].headers
    assert len(webhook_executions(store)) == 1


async def test_token_github_and_none_modes(client: Client, auth: Auth, store: MemoryStore) -> None:
    body = b'{"x": 1}'
    _, token_hook, token = await setup_hook(client, auth, hook_workflow(auth="token"))
    _, github_hook, github = await setup_hook(client, auth, hook_workflow(auth="github"))
    _, open_hook, _ = await setup_hook(client, auth, hook_workflow(auth="none"))
    digest = hmac.new(github.encode(), body, hashlib.sha256).hexdigest()

    answers = [
        await client.post(token_hook, content=body, headers={"X-FlowBuilder-Token": token}),
        await client.post(token_hook, content=body, headers={"X-FlowBuilder-Token": token + "x"}),
        await client.post(
            github_hook, content=body, headers={"X-Hub-Signature-256": f"sha256={digest}"}
        ),
        await client.post(
            github_hook, content=body + b" ", headers={"X-Hub-Signature-256": f"sha256={digest}"}
        ),
        await client.post(open_hook, content=body),
    ]

    assert [a.status_code for a in answers] == [202, 401, 202, 401, 202]
    assert all("x-flowbuilder-token" not in e.input["headers"] for e in webhook_executions(store))


async def test_a_hook_without_a_secret_refuses_every_signed_mode(
    client: Client, auth: Auth
) -> None:
    created = await client.post("/api/workflows", json=hook_workflow(auth="token"), headers=auth())
    url = created.headers["location"]
    await client.post(f"{url}/activate", headers=auth())
    hook = (await client.get(f"{url}/webhook", headers=auth())).json()["url"]

    response = await client.post(hook, content=b"{}", headers={"X-FlowBuilder-Token": ""})

    assert response.status_code == 401


async def test_a_rotated_secret_replaces_the_old_one(client: Client, auth: Auth) -> None:
    url, hook, old = await setup_hook(client, auth)

    new = (await client.post(f"{url}/webhook/secret", headers=auth())).json()["secret"]

    assert new != old
    assert (await call(client, hook, old)).status_code == 401
    assert (await call(client, hook, new)).status_code == 202


async def test_unknown_inactive_deleted_or_unlisted_method_hooks_are_one_404(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    _, inactive, secret = await setup_hook(client, auth, active=False)
    deleted_url, deleted, _ = await setup_hook(client, auth)
    await client.delete(deleted_url, headers=auth())
    _, live, live_secret = await setup_hook(client, auth)

    answers = [
        await client.post("/hooks/" + "A" * 32, content=b"{}"),
        await client.post("/hooks/not!an*id", content=b"{}"),
        await call(client, inactive, secret),
        await call(client, deleted, secret),
        await client.get(live, headers=signed(live_secret, b"")),
        await client.post("/hooks/a/b", content=b"{}"),
    ]

    assert [a.status_code for a in answers] == [404] * len(answers)
    bodies = {
        tuple(sorted((k, v) for k, v in a.json().items() if k != "request_id")) for a in answers
    }
    assert len(bodies) == 1
    assert answers[0].json()["type"] == "urn:flowbuilder:problem:not-found"
    assert webhook_executions(store) == []


async def test_the_methods_a_hook_lists_are_the_ones_it_takes(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    _, hook, secret = await setup_hook(client, auth, hook_workflow(methods=["GET", "DELETE"]))

    now = int(time.time())
    got = await client.get(f"{hook}?q=1", headers=signed(secret, b"", at=now))
    deleted = await client.delete(hook, headers=signed(secret, b"", at=now + 1))
    posted = await call(client, hook, secret)

    assert (got.status_code, deleted.status_code, posted.status_code) == (202, 202, 404)
    methods = sorted(e.input["method"] for e in webhook_executions(store))
    assert methods == ["DELETE", "GET"]
    assert all(e.input["body"] is None for e in webhook_executions(store))


async def test_a_body_of_1_mib_is_taken_and_one_byte_more_is_413(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    _, hook, _ = await setup_hook(client, auth, hook_workflow(auth="none"))

    taken = await client.post(hook, content=b"x" * MIB, headers={"Content-Type": "text/plain"})
    refused = await client.post(
        hook, content=b"x" * (MIB + 1), headers={"Content-Type": "text/plain"}
    )

    assert taken.status_code == 202
    assert refused.status_code == 413
    assert refused.json()["type"] == "urn:flowbuilder:problem:payload-too-large"
    assert len(webhook_executions(store)) == 1


async def test_a_long_query_or_too_many_headers_are_refused(client: Client, auth: Auth) -> None:
    _, hook, _ = await setup_hook(client, auth, hook_workflow(auth="none"))

    long_query = await client.post(f"{hook}?q={'x' * 9000}", content=b"{}")
    many_fields = await client.post(
        hook + "?" + "&".join(f"p{i}=1" for i in range(101)), content=b"{}"
    )
    many_headers = await client.post(
        hook, content=b"{}", headers={f"X-H{i}": "v" for i in range(101)}
    )
    big_headers = await client.post(hook, content=b"{}", headers={"X-Big": "v" * (65 * 1024)})

    assert (long_query.status_code, many_fields.status_code) == (414, 414)
    assert long_query.json()["type"] == "urn:flowbuilder:problem:uri-too-long"
    assert (many_headers.status_code, big_headers.status_code) == (431, 431)
    assert many_headers.json()["type"] == "urn:flowbuilder:problem:request-header-fields-too-large"


async def test_a_repeated_delivery_answers_the_first_answer_and_starts_nothing(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    body = hook_workflow(auth="none", dedupe_header="X-GitHub-Delivery")
    _, hook, _ = await setup_hook(client, auth, body)

    first = await client.post(hook, content=b"{}", headers={"Idempotency-Key": "k1"})
    again = await client.post(hook, content=b'{"other": 1}', headers={"Idempotency-Key": "k1"})
    by_header = await client.post(hook, content=b"{}", headers={"X-GitHub-Delivery": "d1"})
    by_header_again = await client.post(hook, content=b"{}", headers={"X-GitHub-Delivery": "d1"})
    bad_key = await client.post(hook, content=b"{}", headers={"Idempotency-Key": "x" * 256})

    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert by_header_again.json() == by_header.json() != first.json()
    assert bad_key.status_code == 422
    assert bad_key.json()["errors"][0]["field"] == "header:idempotency-key"
    assert len(webhook_executions(store)) == 2


async def test_a_signed_retry_with_the_same_key_needs_a_new_signature(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    _, hook, secret = await setup_hook(client, auth)

    first = await call(client, hook, secret, **{"Idempotency-Key": "k"})
    resigned = await call(
        client,
        hook,
        secret,
        **{"Idempotency-Key": "k"},
        **signed(secret, b'{"order": 42}', at=int(time.time()) + 1),
    )

    assert first.status_code == 202
    assert resigned.json() == first.json()
    assert len(webhook_executions(store)) == 1


async def test_each_hook_has_a_token_bucket_answered_with_429_and_retry_after(
    limited: Client, auth: Auth
) -> None:
    _, hook, _ = await setup_hook(limited, auth, hook_workflow(auth="none"))
    _, other, _ = await setup_hook(limited, auth, hook_workflow(auth="none"))

    answers = [await limited.post(hook, content=b"{}") for _ in range(3)]
    elsewhere = await limited.post(other, content=b"{}")

    assert [a.status_code for a in answers] == [202, 202, 429]
    assert int(answers[2].headers["retry-after"]) >= 1
    assert answers[2].json()["type"] == "urn:flowbuilder:problem:rate-limited"
    assert elsewhere.status_code == 202


# --- when_finished ------------------------------------------------------------------------


async def test_when_finished_answers_with_the_respond_node(
    running: Client, auth: Auth, store: MemoryStore
) -> None:
    respond = {
        "id": "answer",
        "type": "webhook.respond",
        "parameters": {
            "status": 201,
            "headers": {"X-Order": "{{ to_string(input.body.order) }}"},
            "body": {"received": "{{ input.body.order }}"},
        },
    }
    body = hook_workflow(respond, auth="none", respond="when_finished")
    _, hook, _ = await setup_hook(running, auth, body)

    response = await running.post(hook, json={"order": 42}, headers={"Idempotency-Key": "k"})
    again = await running.post(hook, json={"order": 42}, headers={"Idempotency-Key": "k"})

    assert response.status_code == 201, response.text
    assert response.json() == {"received": 42}
    assert response.headers["x-order"] == "42"
    assert response.headers["content-type"].startswith("application/json")
    assert (again.status_code, again.json()) == (201, {"received": 42})
    assert again.headers["idempotent-replayed"] == "true"


async def test_when_finished_without_a_respond_node_answers_the_last_output(
    running: Client, auth: Auth, store: MemoryStore
) -> None:
    text = {"id": "text", "type": "data.set", "parameters": {"value": "got {{ input.body.n }}"}}
    _, hook, _ = await setup_hook(
        running, auth, hook_workflow(text, auth="none", respond="when_finished")
    )

    response = await running.post(hook, json={"n": 7})

    assert response.status_code == 200
    assert response.text == "got 7"
    assert response.headers["content-type"].startswith("text/plain")


async def test_when_finished_a_failed_run_is_502_with_its_execution_id(
    running: Client, auth: Auth, store: MemoryStore
) -> None:
    broken = {
        "id": "bad",
        "type": "webhook.respond",
        "parameters": {"status": "{{ input.body.s }}"},
    }
    _, hook, _ = await setup_hook(
        running, auth, hook_workflow(broken, auth="none", respond="when_finished")
    )

    response = await running.post(hook, json={"s": "not a status"})

    [execution] = webhook_executions(store)
    assert response.status_code == 502
    assert response.json()["type"] == "urn:flowbuilder:problem:webhook-run-failed"
    assert response.json()["execution_id"] == str(execution.id)
    assert execution.status is ExecutionStatus.FAILED


async def test_when_finished_past_the_wait_is_the_202_of_immediately(
    limited: Client, auth: Auth, store: MemoryStore
) -> None:
    _, hook, _ = await setup_hook(
        limited, auth, hook_workflow(auth="none", respond="when_finished")
    )

    started = time.monotonic()
    response = await limited.post(hook, content=b"{}")  # nothing runs it

    [execution] = webhook_executions(store)
    assert response.status_code == 202
    assert response.json() == {"execution_id": str(execution.id)}
    assert 3 <= time.monotonic() - started < 10


# --- executions by trigger ------------------------------------------------------------------


async def test_executions_are_listed_by_trigger_and_a_retry_keeps_the_original_trigger(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    url, hook, secret = await setup_hook(client, auth)
    await call(client, hook, secret)
    manual = (await client.post(f"{url}/execute", headers=auth())).json()
    execution = store.executions[ExecutionId(uuid.UUID(manual["id"]))]
    execution.cancel(at=execution.created_at)

    retry = (await client.post(f"/api/executions/{manual['id']}/retry", headers=auth())).json()
    execution = store.executions[ExecutionId(uuid.UUID(retry["id"]))]
    execution.cancel(at=execution.created_at)
    retry_of_retry = (
        await client.post(f"/api/executions/{retry['id']}/retry", headers=auth())
    ).json()

    def listed(items: list[dict[str, Any]]) -> set[tuple[str, str | None]]:
        return {(e["trigger"], e.get("retried_trigger")) for e in items}

    by_webhook = (await client.get("/api/executions?trigger=webhook", headers=auth())).json()[
        "items"
    ]
    retries = (await client.get(f"{url}/executions?trigger=retry", headers=auth())).json()["items"]
    both = (
        await client.get("/api/executions?trigger=manual&trigger=webhook", headers=auth())
    ).json()
    unknown = await client.get("/api/executions?trigger=cron", headers=auth())
    unknown_here = await client.get(f"{url}/executions?trigger=cron", headers=auth())

    assert (retry["trigger"], retry["retried_trigger"]) == ("retry", "manual")
    assert (retry_of_retry["trigger"], retry_of_retry["retried_trigger"]) == ("retry", "manual")
    assert "retried_trigger" not in manual
    assert listed(by_webhook) == {("webhook", None)}
    assert listed(retries) == {("retry", "manual")}
    assert len(retries) == 2
    assert len(both["items"]) == 2
    assert unknown.status_code == unknown_here.status_code == 422
    assert unknown.json()["errors"] == [
        {
            "field": "query:trigger",
            "message": "must be one of: manual, webhook, schedule, retry, subworkflow",
        }
    ]


async def test_a_cursor_is_bound_to_its_trigger_filter(client: Client, auth: Auth) -> None:
    url, hook, secret = await setup_hook(client, auth)
    for n in range(2):
        assert (await call(client, hook, secret, f'{{"n": {n}}}'.encode())).status_code == 202
        await client.post(f"{url}/execute", headers=auth())

    page = (await client.get("/api/executions?trigger=webhook&limit=1", headers=auth())).json()
    assert page["next_cursor"] is not None
    same = await client.get(
        "/api/executions",
        params={"trigger": "webhook", "limit": 1, "cursor": page["next_cursor"]},
        headers=auth(),
    )
    other = await client.get(
        "/api/executions",
        params={"trigger": "manual", "limit": 1, "cursor": page["next_cursor"]},
        headers=auth(),
    )

    assert same.status_code == 200
    assert same.json()["items"][0]["trigger"] == "webhook"
    assert other.status_code == 400


async def test_a_1xx_status_is_no_answer_and_fails_the_node(
    running: Client, auth: Auth, store: MemoryStore
) -> None:
    switch = {
        "id": "reply",
        "type": "webhook.respond",
        "parameters": {"status": "{{ input.body.s }}"},
    }
    _, hook, _ = await setup_hook(
        running, auth, hook_workflow(switch, auth="none", respond="when_finished")
    )

    response = await running.post(hook, json={"s": 101})

    [execution] = webhook_executions(store)
    assert response.status_code == 502
    assert execution.error is not None
    assert (execution.error.code, execution.error.node_id) == ("invalid_parameters", "reply")
