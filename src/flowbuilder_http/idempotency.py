"""`Idempotency-Key` on POST: the same key and body from the same user within 24 h answers the
first response again (`Idempotent-Replayed: true`); another body is 422; a first request still
running is 409."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from dishka import Provider, Scope, provide
from litestar import Response
from litestar.params import HeaderParameter

from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.idempotency import (
    IdempotencyStore,
    IdempotentRequest,
    RecordedResponse,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.uow import UnitOfWork

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name="Idempotency-Key",
        description="1 to 255 characters: a retry with the same key and body replays the answer",
    ),
]

_REPLAYED_HEADERS = ("Location", "ETag")
_log = logging.getLogger(__name__)


class IdempotentResponder:
    """Runs a keyed request once.

    The claim commits first, so a concurrent retry sees it in flight. The request's own writes
    and its recorded response then commit in one transaction (`UnitOfWork.held`): a request
    either took effect and can be replayed, or did neither and the key is free again.
    """

    def __init__(self, store: IdempotencyStore, uow: UnitOfWork, clock: Clock) -> None:
        self._store, self._uow, self._clock = store, uow, clock

    async def __call__(
        self,
        principal: Principal,
        key: str | None,
        fingerprint: tuple[str, object],
        action: Callable[[], Awaitable[Response[Any]]],
    ) -> Response[Any]:
        """`fingerprint` is the operation and what identifies its body: never secret values,
        which must not be kept in any digest (a weak password would be guessable from it)."""
        if key is None:
            return await action()
        request = IdempotentRequest(principal.user_id, key, _digest(*fingerprint))
        recorded = await self._store.claim(request, self._clock.now())
        await self._uow.commit()
        if recorded is not None:
            return _replay(recorded)
        try:
            async with self._uow.held():
                response = await action()
                await self._store.complete(request, _record(response), self._clock.now())
        except BaseException:
            await self._release(request)
            raise
        return response

    async def _release(self, request: IdempotentRequest) -> None:
        try:
            await self._store.release(request)
            await self._uow.commit()
        except Exception:  # the claim then lapses after its lease; the first error matters
            _log.warning("could not release an idempotency claim", exc_info=True)


class IdempotencyProvider(Provider):
    responder = provide(IdempotentResponder, scope=Scope.REQUEST)


def _digest(operation: str, body: object) -> str:
    canonical = json.dumps([operation, msgspec.to_builtins(body)], sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _record(response: Response[Any]) -> RecordedResponse:
    headers = tuple(
        (name, response.headers[name]) for name in _REPLAYED_HEADERS if name in response.headers
    )
    status = response.status_code or 200
    return RecordedResponse(status, msgspec.json.encode(response.content), headers)


def _replay(recorded: RecordedResponse) -> Response[bytes]:
    return Response(
        recorded.body,
        status_code=recorded.status,
        media_type="application/json",
        headers={**dict(recorded.headers), "Idempotent-Replayed": "true"},
    )
