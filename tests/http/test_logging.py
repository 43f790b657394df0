"""Log lines: JSON objects with the fields operators filter on, text for people, and never a
secret, whatever shape it comes in."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from flowbuilder_adapters.log_context import hide_everywhere, hide_in_this_run, running
from flowbuilder_http.observability import JsonFormatter, RequestIdFilter, TextFormatter, scrub

from support.factories import make_workflow_body

Client = AsyncTestClient[Litestar]
Auth = Callable[..., dict[str, str]]
CANARY = "canary-logs-51c0"


@pytest.fixture
def lines() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the server logged while the test runs, as objects (the test client's
    own httpx lines left out, as the server's configuration leaves them out)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    client_log = logging.getLogger("httpx")
    client_level = client_log.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    client_log.setLevel(logging.WARNING)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        client_log.setLevel(client_level)


async def test_an_access_line_carries_the_request_id_method_route_template_status_and_duration(
    client: Client, auth: Auth, lines: Callable[[], list[dict[str, Any]]]
) -> None:
    created = await client.post("/api/workflows", json=make_workflow_body(), headers=auth())
    response = await client.get(created.headers["location"], headers=auth())

    access = [line for line in lines() if line["logger"] == "flowbuilder.access"]

    line = access[-1]
    assert line["request_id"] == response.headers["x-request-id"]
    assert (line["method"], line["route"], line["status"]) == (
        "GET",
        "/api/workflows/{workflow_id}",
        200,
    )
    assert isinstance(line["duration_ms"], float)
    assert line["level"] == "INFO"
    assert line["time"].endswith("Z")
    assert created.json()["id"] not in json.dumps(line)


async def test_a_path_that_matches_no_route_is_not_logged(
    client: Client, auth: Auth, lines: Callable[[], list[dict[str, Any]]]
) -> None:
    await client.get(f"/api/{CANARY}?token={CANARY}", headers=auth())

    access = [line for line in lines() if line["logger"] == "flowbuilder.access"]

    assert access[-1]["route"] == "unmatched"
    assert CANARY not in json.dumps(lines())


def test_a_line_logged_during_a_run_names_its_execution_and_hides_its_credentials(
    lines: Callable[[], list[dict[str, Any]]],
) -> None:
    log = logging.getLogger("flowbuilder.test")

    with running("53c33240-a7ab-4ac1-9ee9-b2c1f17a7f62"):
        hide_in_this_run([CANARY])
        try:
            raise ValueError(f"Illegal header value b'Token {CANARY}'")
        except ValueError:
            log.exception("node failed with %s", CANARY)
    log.info("after the run: %s", CANARY)

    during, after = lines()
    assert during["execution_id"] == "53c33240-a7ab-4ac1-9ee9-b2c1f17a7f62"
    assert "request_id" not in during
    assert CANARY not in json.dumps(during)
    assert "Illegal header value" in during["exception"]
    assert "execution_id" not in after
    assert after["message"] == f"after the run: {CANARY}"  # no longer that run's secret


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjYW5hcnkifQ.c2lnbmF0dXJlY2FuYXJ5"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"Authorization: Bearer {CANARY}", CANARY),
        (f"authorization: basic {CANARY}==", CANARY),
        (f"token {JWT}", JWT),
        (f"fetching https://alice:{CANARY}@api.example.com/orders failed", CANARY),
        (f"configured {CANARY}-process-secret here", f"{CANARY}-process-secret"),
    ],
)
def test_secrets_are_scrubbed_from_any_line(text: str, secret: str) -> None:
    hide_everywhere([f"{CANARY}-process-secret"])

    scrubbed = scrub(text)

    assert secret not in scrubbed
    assert "****" in scrubbed


def test_the_text_format_has_the_ids_and_is_scrubbed_too() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(TextFormatter())
    log = logging.getLogger("flowbuilder.text-test")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)

    with running("e-1"):
        log.info("calling with Bearer %s", CANARY)

    line = stream.getvalue()
    assert (
        "INFO flowbuilder.text-test request_id=- execution_id=e-1 calling with Bearer ****" in line
    )
    assert CANARY not in line
