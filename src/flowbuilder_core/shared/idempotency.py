"""Idempotency keys: a retried request with the same key and fingerprint gets the recorded
result of the first instead of running again.

The store knows requests only by owner, key and fingerprint (a digest of the operation and its
input), and results only as opaque bytes: what a result holds, and how a request names its key,
is the business of the driving adapter that answers it.

The record of a keyed request moves from claimed (in flight) to completed. The completion is
written in the same transaction as the request's own writes (`UnitOfWork.deferring_commit`), so
a request either took effect and has its recorded result, or did neither.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from flowbuilder_core.shared.ids import UserId

RETENTION = timedelta(hours=24)
"""How long a key is remembered; after that it is free again."""

LEASE = timedelta(minutes=2)
"""A claim not completed within this time was abandoned (its process died; its transaction was
rolled back with it) and may be taken over by a retry."""


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    """One user's keyed request; `fingerprint` is a digest of the operation and its input."""

    owner: UserId
    key: str
    fingerprint: str


@dataclass(frozen=True, slots=True)
class RecordedResult:
    """What the first request produced, to give again on a replay; the store keeps it as is."""

    payload: bytes


class Refusal(Enum):
    """Why a keyed request may neither run nor replay."""

    IN_FLIGHT = "in-flight"
    """The first request with this key has not finished yet."""

    KEY_REUSED = "key-reused"
    """The key was used for another request (another fingerprint)."""


class IdempotencyStore(Protocol):
    """Claims and completes keyed requests, in the unit of work of the current scope.

    - `claim` returns None when the request is new (or its key expired, or its claim was
      abandoned past LEASE): the caller goes ahead, and must `complete` or `release`. It returns
      the recorded result when the same request already completed, Refusal.KEY_REUSED when the
      key holds another fingerprint, and Refusal.IN_FLIGHT when the same request is still
      claimed.
    - `complete` records the result; `release` forgets a claim whose request failed, so the
      key can be used again.
    """

    async def claim(
        self, request: IdempotentRequest, now: datetime
    ) -> RecordedResult | Refusal | None: ...

    async def complete(
        self, request: IdempotentRequest, result: RecordedResult, now: datetime
    ) -> None: ...

    async def release(self, request: IdempotentRequest) -> None: ...
