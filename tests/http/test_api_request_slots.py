"""Embedded mode's MAX_CONCURRENT_API_REQUESTS: requests under /api/ beyond the bound wait for
a slot, in arrival order, and are answered as they would be; nothing else is bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient
from litestar.types import Message, Receive, Scope, Send

from flowbuilder_adapters.dev_issuer import DevTokenIssuer
from flowbuilder_adapters.memory import MemoryStore
from flowbuilder_adapters.wiring import MemoryProvider
from flowbuilder_http.concurrency import api_slots

from support.factories import make_workflow_body
from support.http_app import make_test_app

BODY_BYTES = 1024


class Held:
    """An ASGI app whose requests each wait until the test lets them go; it records the order
    in which they started and, for /stream, sends its headers before it waits."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.go: dict[str, asyncio.Event] = {}

    def gate(self, name: str) -> asyncio.Event:
        return self.go.setdefault(name, asyncio.Event())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = scope["path"].rsplit("/", 1)[-1]
        self.started.append(name)
        start: Message = {"type": "http.response.start", "status": 200, "headers": []}
        if name.startswith("stream"):
            await send(start)
            await self.gate(name).wait()
        else:
            await self.gate(name).wait()
            await send(start)
        await send({"type": "http.response.body", "body": name.encode()})


def _client(app: Held, limit: int) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=api_slots(app, limit, BODY_BYTES))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://embedded")


async def _until(condition: Callable[[], bool]) -> None:
    """Poll `condition` (the app under test has no event to wait on) for at most 2 s."""
    async with asyncio.timeout(2.0):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_requests_beyond_the_bound_wait_their_turn_and_are_all_answered() -> None:
    app = Held()
    async with _client(app, 1) as client:
        calls = {}
        for name in ("a", "b", "c"):
            calls[name] = asyncio.create_task(client.get(f"/api/{name}"))
            await asyncio.sleep(0.05)  # arrival order a, b, c
        await _until(lambda: app.started == ["a"])
        await asyncio.sleep(0.1)
        waiting_while_a_works = list(app.started)
        app.gate("a").set()
        await _until(lambda: app.started == ["a", "b"])
        app.gate("b").set()
        app.gate("c").set()
        answers = {name: await call for name, call in calls.items()}

    assert waiting_while_a_works == ["a"], "b and c waited: they were not started"
    assert app.started == ["a", "b", "c"], "in arrival order"
    assert {name: (r.status_code, r.text) for name, r in answers.items()} == {
        "a": (200, "a"),
        "b": (200, "b"),
        "c": (200, "c"),
    }


async def test_a_bound_of_two_lets_two_requests_work_at_once() -> None:
    app = Held()
    async with _client(app, 2) as client:
        calls = [asyncio.create_task(client.get(f"/api/{name}")) for name in ("a", "b", "c")]
        await _until(lambda: len(app.started) == 2)
        await asyncio.sleep(0.1)
        two_at_once = len(app.started)
        for name in ("a", "b", "c"):
            app.gate(name).set()
        answers = await asyncio.gather(*calls)

    assert two_at_once == 2
    assert [r.status_code for r in answers] == [200, 200, 200]


def _scope(path: str) -> Scope:
    return {"type": "http", "path": path}  # type: ignore[typeddict-item]


async def _disconnect() -> Message:
    return {"type": "http.disconnect"}


async def test_an_event_stream_frees_its_slot_once_its_headers_are_sent() -> None:
    # Raw ASGI: httpx's ASGI transport answers only once the app has finished.
    app = Held()
    bounded = api_slots(app, 1, BODY_BYTES)  # type: ignore[arg-type]
    stream_sent: list[Message] = []
    next_sent: list[Message] = []

    async def to_stream(message: Message) -> None:
        stream_sent.append(message)

    async def to_next(message: Message) -> None:
        next_sent.append(message)

    stream = asyncio.create_task(bounded(_scope("/api/stream1"), _disconnect, to_stream))  # type: ignore[arg-type]
    await _until(lambda: len(stream_sent) == 1)
    app.gate("next").set()
    await asyncio.wait_for(bounded(_scope("/api/next"), _disconnect, to_next), timeout=2)  # type: ignore[arg-type]
    still_streaming = not stream.done()
    app.gate("stream1").set()
    await stream

    assert still_streaming
    assert [m["type"] for m in next_sent] == ["http.response.start", "http.response.body"]


async def test_health_metrics_docs_and_webhooks_are_not_bounded() -> None:
    app = Held()
    async with _client(app, 1) as client:
        busy = asyncio.create_task(client.get("/api/busy"))
        await _until(lambda: app.started == ["busy"])
        for path in ("/health/live", "/metrics", "/docs/openapi.json", "/hooks/h1"):
            app.gate(path.rsplit("/", 1)[-1]).set()
        free = [
            await asyncio.wait_for(client.get(path), timeout=2)
            for path in ("/health/live", "/metrics", "/docs/openapi.json", "/hooks/h1")
        ]
        app.gate("busy").set()
        await busy

    assert [r.status_code for r in free] == [200, 200, 200, 200]


async def test_a_request_that_fails_before_answering_gives_its_slot_back() -> None:
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    bounded = api_slots(failing, 1, BODY_BYTES)

    async def ignore(message: Message) -> None:
        return None

    for _ in range(2):  # the second would wait for ever if the first kept the slot
        with contextlib.suppress(RuntimeError):
            call = bounded(_scope("/api/x"), _disconnect, ignore)  # type: ignore[arg-type]
            await asyncio.wait_for(call, timeout=2)


async def test_the_embedded_api_answers_many_requests_at_once_under_its_default_bound_of_one(
    issuer: DevTokenIssuer, auth: Callable[[str], dict[str, str]]
) -> None:
    headers = auth("user_alice")
    app: Litestar = make_test_app(issuer, MemoryProvider(MemoryStore()))
    async with AsyncTestClient(app) as client:
        created = await client.post("/api/workflows", json=make_workflow_body(), headers=headers)
        location = created.headers["location"]
        answers = await asyncio.gather(*(client.get(location, headers=headers) for _ in range(20)))

    assert created.status_code == 201
    assert [r.status_code for r in answers] == [200] * 20


async def test_a_slowly_sent_body_does_not_hold_the_slot_while_it_arrives() -> None:
    app = Held()
    bounded = api_slots(app, 1, BODY_BYTES)  # type: ignore[arg-type]
    rest_of_body = asyncio.Event()
    parts: list[Message] = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]

    async def slow_receive() -> Message:
        if len(parts) == 1:
            await rest_of_body.wait()
        return parts.pop(0)

    async def ignore(message: Message) -> None:
        return None

    uploading = asyncio.create_task(bounded(_scope("/api/upload"), slow_receive, ignore))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    app.gate("quick").set()
    await asyncio.wait_for(bounded(_scope("/api/quick"), _disconnect, ignore), timeout=2)  # type: ignore[arg-type]
    started_before_the_body_arrived = list(app.started)
    rest_of_body.set()
    app.gate("upload").set()
    await asyncio.wait_for(uploading, timeout=2)

    assert started_before_the_body_arrived == ["quick"]
    assert app.started == ["quick", "upload"]


async def test_the_app_reads_the_whole_body_it_was_sent() -> None:
    seen: list[bytes] = []

    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        seen.append(body)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    transport = httpx.ASGITransport(app=api_slots(echo, 1, 8))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://embedded") as client:
        small = await client.post("/api/x", content=b"abc")
        large = await client.post("/api/x", content=_parts(b"x" * 5, 10))

    assert (small.status_code, large.status_code) == (200, 200)
    assert seen == [b"abc", b"x" * 50]


async def _parts(part: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield part
