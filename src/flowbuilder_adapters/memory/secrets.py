"""A secret store in a dict, for tests and library users."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import cast

from flowbuilder_core.credentials.errors import SecretNotFoundError, SecretUnreadableError
from flowbuilder_core.credentials.model import SecretBinding, SecretData, SecretRef
from flowbuilder_core.credentials.ports import SecretStore
from flowbuilder_core.shared.clock import Clock, SystemClock

REF_PREFIX = "memory:"


@dataclass(frozen=True, slots=True)
class _Secret:
    binding: SecretBinding
    values: dict[str, str] = field(repr=False)
    created_at: datetime


class MemorySecretStore(SecretStore):
    """Secrets in a dict, like a store outside the database: writes take effect at once, with
    no unit of work. References are `memory:<uuid>`. Reading with another binding than the one
    the secret was stored with is SecretUnreadableError, as a moved ciphertext would be."""

    def __init__(self, clock: Clock | Callable[[], datetime] | None = None) -> None:
        clock = clock if clock is not None else SystemClock()
        now = getattr(clock, "now", None)
        self._now = cast("Callable[[], datetime]", now if callable(now) else clock)
        self._secrets: dict[str, _Secret] = {}

    def __repr__(self) -> str:
        return f"MemorySecretStore(secrets={len(self._secrets)})"

    def __len__(self) -> int:
        return len(self._secrets)

    async def put(self, binding: SecretBinding, data: SecretData) -> SecretRef:
        ref = SecretRef(f"{REF_PREFIX}{uuid.uuid4()}")
        self._secrets[ref.value] = _Secret(binding, dict(data.values), self._now())
        return ref

    async def get(self, ref: SecretRef, binding: SecretBinding) -> SecretData:
        secret = self._secrets.get(ref.value)
        if secret is None:
            raise SecretNotFoundError
        if secret.binding != binding:
            raise SecretUnreadableError
        return SecretData(dict(secret.values))  # a copy: the caller cannot change the store

    async def delete(self, ref: SecretRef) -> None:
        self._secrets.pop(ref.value, None)

    async def unreferenced(
        self, referenced: set[SecretRef], before: datetime
    ) -> Sequence[SecretRef]:
        return [
            SecretRef(value)
            for value, secret in self._secrets.items()
            if secret.created_at < before and SecretRef(value) not in referenced
        ]
