"""The credential directory over the in-memory store."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping

from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.workflows.ports import CredentialDirectory


class MemoryCredentialDirectory(CredentialDirectory):
    """Answers from `MemoryStore.credentials` (`id -> (owner, type)`)."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def types_of(
        self, owner: UserId, credential_ids: Collection[uuid.UUID]
    ) -> Mapping[uuid.UUID, str]:
        found = {i: self._store.credentials.get(i) for i in credential_ids}
        return {i: entry[1] for i, entry in found.items() if entry and entry[0] == owner}
