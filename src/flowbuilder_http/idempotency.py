"""`Idempotency-Key` on POST: the same key and body from the same user within 24 h answers the
first response again (`Idempotent-Replayed: true`); another body is 422; a first request still
running is 409.

The core's `IdempotencyStore` keeps claims and opaque results; this module owns everything
HTTP about them: the header and its errors, and the recorded response (status, the replayed
headers and the body), which it encodes as the result's bytes.

Atomicity: the claim commits first, on its own, so that a concurrent retry sees it in flight.
The use case then runs inside `UnitOfWork.deferring_commit()`: the use case's own `commit()`
waits for the end of that block, where the recorded response, written after the use case
returned, commits in the same transaction. A request therefore either took effect and
replays, or did neither and its key is free again (the claim is released).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, NewType

import msgspec
from dishka import Provider, Scope, provide
from litestar import Response
from litestar.params import HeaderParameter

from flowbuilder_core.shared.clock import Clock
from flowbuilder_core.shared.errors import ConflictError, FieldError, InvalidInputError
from flowbuilder_core.shared.idempotency import (
    IdempotencyStore,
    IdempotentRequest,
    RecordedResult,
    Refusal,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.uow import UnitOfWork

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255

IdempotencyKey = Annotated[
    str | None,
    HeaderParameter(
        name=HEADER,
        description=f"1 to {MAX_KEY_LENGTH} characters: a retry with the same key and body "
        "replays the answer",
    ),
]

FingerprintKey = NewType("FingerprintKey", bytes)
"""The server key of request fingerprints (`IDEMPOTENCY_HMAC_KEY`), shared by every replica."""

_REPLAYED_HEADERS = ("Location", "ETag")
_log = logging.getLogger(__name__)


class IdempotencyKeyReusedError(InvalidInputError):
    """The key was used for another request (another operation or another body)."""

    code = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__([FieldError.header(HEADER, "was already used with another request body")])


class RequestInFlightError(ConflictError):
    """The first request with this key has not finished yet."""

    code = "idempotent-request-in-flight"

    def __init__(self) -> None:
        super().__init__(f"A request with this {HEADER} is still in progress; retry later.")


class IdempotentResponder:
    """Runs a keyed request once (see the module's docstring for how it stays atomic)."""

    def __init__(
        self, store: IdempotencyStore, uow: UnitOfWork, clock: Clock, key: FingerprintKey
    ) -> None:
        self._store, self._uow, self._clock, self._key = store, uow, clock, key

    async def __call__(
        self,
        principal: Principal,
        key: str | None,
        fingerprint: tuple[str, object],
        action: Callable[[], Awaitable[Response[Any]]],
    ) -> Response[Any]:
        """`fingerprint` is the operation and the whole request body, secret values included.
        It is stored only as an HMAC under the server key, so a stored digest reveals nothing
        of a secret (a weak password is not guessable from it without the key). The operation
        is a label inside stored digests, so it keeps its spelling even if the routes move."""
        if key is None:
            return await action()
        digest = _digest(self._key, *fingerprint)
        request = IdempotentRequest(principal.user_id, _checked(key), digest)
        claimed = await self._store.claim(request, self._clock.now())
        if claimed is Refusal.KEY_REUSED:
            raise IdempotencyKeyReusedError
        if claimed is Refusal.IN_FLIGHT:
            raise RequestInFlightError
        await self._uow.commit()
        if claimed is not None:
            return replay(claimed)
        try:
            async with self._uow.deferring_commit():
                response = await action()
                await self._store.complete(request, record(response), self._clock.now())
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
    """The responder of each request, with the server key of the fingerprints."""

    responder = provide(IdempotentResponder, scope=Scope.REQUEST)

    def __init__(self, key: bytes) -> None:
        super().__init__()
        self._key = FingerprintKey(key)

    @provide(scope=Scope.APP)
    def fingerprint_key(self) -> FingerprintKey:
        return self._key


class _RecordedResponse(msgspec.Struct, frozen=True):
    """A result's bytes: JSON with the body in base64. Rows written before this format were
    converted to it by migration 0006, which keeps its own copy of it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes


def _checked(key: str) -> str:
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInputError(
            [FieldError.header(HEADER, f"must be 1 to {MAX_KEY_LENGTH} printable characters")]
        )
    return key


def _digest(key: bytes, operation: str, body: object) -> str:
    """HMAC-SHA256 of the canonical JSON of the operation and the body, under `key`."""
    canonical = json.dumps([operation, msgspec.to_builtins(body)], sort_keys=True)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def record(response: Response[Any]) -> RecordedResult:
    """The response as a result's bytes: what `replay` answers again."""
    recorded = _RecordedResponse(
        status=response.status_code or 200,
        headers=[
            (name, response.headers[name]) for name in _REPLAYED_HEADERS if name in response.headers
        ],
        body=msgspec.json.encode(response.content),
    )
    return RecordedResult(msgspec.json.encode(recorded))


def replay(result: RecordedResult) -> Response[bytes]:
    recorded = msgspec.json.decode(result.payload, type=_RecordedResponse)
    return Response(
        recorded.body,
        status_code=recorded.status,
        media_type="application/json",
        headers={**dict(recorded.headers), "Idempotent-Replayed": "true"},
    )
