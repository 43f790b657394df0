"""Idempotency keys: a retried request with the same key and body replays the first response.

The record of a keyed request moves from claimed (in flight) to completed. The completion is
written in the same transaction as the request's own writes (see `UnitOfWork.held`), so a
request either took effect and has its recorded response, or did neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from flowbuilder_core.shared.errors import ConflictError, FieldError, InvalidInputError
from flowbuilder_core.shared.ids import UserId

RETENTION = timedelta(hours=24)
"""How long a key is remembered; after that it is free again."""

LEASE = timedelta(minutes=2)
"""A claim not completed within this time was abandoned (its process died; its transaction was
rolled back with it) and may be taken over by a retry."""

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """One user's keyed request; `fingerprint` is a digest of the operation and its body."""

    owner: UserId
    key: str
    fingerprint: str

    def __post_init__(self) -> None:
        if not 1 <= len(self.key) <= MAX_KEY_LENGTH or not self.key.isprintable():
            raise InvalidInputError(
                [
                    FieldError.header(
                        "Idempotency-Key",
                        f"must be 1 to {MAX_KEY_LENGTH} printable characters",
                    )
                ]
            )


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    """What the first request answered, to answer again on a replay."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


class IdempotencyKeyReusedError(InvalidInputError):
    """The key was used for another request (another operation or another body)."""

    code = "idempotency-key-reused"

    def __init__(self) -> None:
        super().__init__(
            [FieldError.header("Idempotency-Key", "was already used with another request body")]
        )


class RequestInFlightError(ConflictError):
    """The first request with this key has not finished yet."""

    code = "idempotent-request-in-flight"

    def __init__(self) -> None:
        super().__init__("A request with this Idempotency-Key is still in progress; retry later.")


class IdempotencyStore(Protocol):
    """Claims and completes keyed requests, in the unit of work of the current scope.

    - `claim` returns None when the request is new (or its key expired, or its claim was
      abandoned past LEASE): the caller goes ahead, and must `complete` or `release`. It returns
      the recorded response when the same request already completed; raises
      IdempotencyKeyReusedError when the key holds another fingerprint, RequestInFlightError
      when the same request is still claimed.
    - `complete` records the response; `release` forgets a claim whose request failed, so the
      key can be used again.
    """

    async def claim(self, request: IdempotentRequest, now: datetime) -> RecordedResponse | None: ...

    async def complete(
        self, request: IdempotentRequest, response: RecordedResponse, now: datetime
    ) -> None: ...

    async def release(self, request: IdempotentRequest) -> None: ...
