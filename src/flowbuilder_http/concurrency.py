"""Embedded mode's bound on the API requests it works on at once (`MAX_CONCURRENT_API_REQUESTS`).

The embedded process runs the API and the worker on one event loop, over one SQLite
connection. Unbounded, every request that arrives starts at once, and under a sustained load
their tasks outnumber the worker's runs on the loop and in the connection's queue: the API
accepts runs ten times faster than the worker finishes them (issue #16). Bounded, requests
beyond the bound wait for a slot, in arrival order, before any of their work is done (they are
not refused: each is answered as it would be, later), so the worker keeps its share.

A request's body is read before it waits for a slot: a client that sends its body slowly
must not hold the API's only slot while it does.
"""

from __future__ import annotations

import asyncio

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

BOUNDED_PREFIX = "/api/"
"""What is bounded: the API. Health checks, metrics, the docs and webhooks' `/hooks` (whose
`when_finished` requests wait for their run: holding a slot meanwhile would stall the API
behind the worker) pass freely."""


def api_slots(app: ASGIApp, limit: int, body_bytes: int) -> ASGIApp:
    """`app` with at most `limit` requests under `/api/` in progress at once; the others wait
    for a slot in arrival order. A request first receives its body (up to `body_bytes`, past
    which the app's own limit answers it), then takes its turn, and holds its slot until its
    response starts (or it ends without one): an event stream frees it as soon as its headers
    are sent, not when the stream closes."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    slots = asyncio.Semaphore(limit)

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP or not scope["path"].startswith(BOUNDED_PREFIX):
            await app(scope, receive, send)
            return
        arrived = await _body(receive, body_bytes)

        async def replay() -> ReceiveMessage:
            return arrived.pop(0) if arrived else await receive()

        await slots.acquire()
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                slots.release()

        async def send_then_release(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()
            await send(message)

        try:
            await app(scope, replay, send_then_release)
        finally:
            release()

    return middleware


async def _body(receive: Receive, limit: int) -> list[ReceiveMessage]:
    """The request's messages up to the end of its body, a disconnect, or more than `limit`
    bytes of body (then the app reads the rest, and refuses it)."""
    arrived: list[ReceiveMessage] = []
    size = 0
    while True:
        message = await receive()
        arrived.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            return arrived
        size += len(message.get("body", b""))
        if size > limit:
            return arrived
