"""`GET /metrics`: the Prometheus text format, outside /api and its authentication, counting
requests by route template and reading the outbox backlog at each scrape."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from litestar import Litestar
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.memory import MemoryStore
from flowbuilder_adapters.wiring import MemoryProvider

from support.factories import make_workflow_body
from support.http_app import make_test_app

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: Client) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_requests_are_counted_and_timed_by_method_route_template_and_status(
    client: Client, auth: Auth
) -> None:
    created = await client.post("/api/workflows", json=make_workflow_body(), headers=auth())
    one = {"method": "GET", "route": "/api/workflows/{workflow_id}"}
    before = await scrape(client)

    await client.get(created.headers["location"], headers=auth())
    await client.get(created.headers["location"], headers=auth())
    await client.get(f"/api/workflows/{created.json()['id'][::-1]}", headers=auth())
    await client.request("BREW", "/api/workflows", headers=auth())
    after = await scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("flowbuilder_http_requests_total", **one, status="200") == 2
    assert delta("flowbuilder_http_requests_total", **one, status="404") == 1
    assert delta("flowbuilder_http_request_duration_seconds_count", **one, status="200") == 2
    assert (
        delta("flowbuilder_http_request_duration_seconds_bucket", **one, status="200", le="+Inf")
        == 2
    )
    assert (
        delta("flowbuilder_http_requests_total", method="other", route="unmatched", status="405")
        == 1
    )
    assert not any(created.json()["id"] in str(labels) for _, labels in after)


async def test_metrics_need_no_token_and_hold_the_outbox_backlog_as_of_the_scrape(
    client: Client, auth: Auth, store: MemoryStore
) -> None:
    workflow = await client.post("/api/workflows", json=make_workflow_body(), headers=auth())
    before = await scrape(client)

    await client.post(f"{workflow.headers['location']}/execute", headers=auth())
    after = await scrape(client)

    assert value(before, "flowbuilder_outbox_backlog") == len(store.outbox) - 1
    assert value(after, "flowbuilder_outbox_backlog") == len(store.outbox) == 1
    assert value(after, "flowbuilder_database_up") == 1
    assert ("flowbuilder_queue_errors_total", frozenset({("operation", "send")})) in after
    assert "python_info" in {name for name, _ in after}


async def test_metrics_can_be_switched_off(tmp_path: Path) -> None:
    app = make_test_app(
        DevTokenIssuer.load_or_create(tmp_path), MemoryProvider(MemoryStore()), metrics=False
    )

    async with AsyncTestClient(app) as client:
        response = await client.get("/metrics")

    assert response.status_code == 404
