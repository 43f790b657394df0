"""The credential repository and directory over the in-memory store."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

from flowbuilder_adapters.memory.store import MemoryStore
from flowbuilder_adapters.memory.uow import MemoryUnitOfWork
from flowbuilder_core.credentials.model import Credential, CredentialId, SecretRef
from flowbuilder_core.credentials.ports import CredentialRepository
from flowbuilder_core.shared.errors import ConflictError
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest
from flowbuilder_core.workflows.ports import CredentialDirectory


class MemoryCredentialRepository(CredentialRepository):
    """Reads see committed state plus this unit of work's staged writes."""

    def __init__(self, store: MemoryStore, uow: MemoryUnitOfWork) -> None:
        self._store, self._uow = store, uow
        self._staged: dict[CredentialId, Credential | None] = {}

    async def get(self, credential_id: CredentialId) -> Credential | None:
        found = self._current(credential_id)
        return None if found is None else dataclasses.replace(found)

    async def add(self, credential: Credential) -> None:
        if self._current(credential.id) is not None:
            raise ConflictError("A credential with this id already exists.")
        self._stage(credential.id, dataclasses.replace(credential))

    async def update(self, credential: Credential) -> None:
        self._stage(credential.id, dataclasses.replace(credential))

    async def delete(self, credential_id: CredentialId) -> None:
        self._stage(credential_id, None)

    async def page(
        self, owner: UserId, credential_type: str | None, request: PageRequest
    ) -> Sequence[Credential]:
        rows = [
            c
            for c in self._all()
            if c.owner_id == owner and (credential_type is None or c.type == credential_type)
        ]
        if request.after is not None:
            after = (datetime.fromisoformat(str(request.after[0])), str(request.after[1]))
            rows = [c for c in rows if (c.created_at, str(c.id)) < after]
        rows.sort(key=lambda c: (c.created_at, str(c.id)), reverse=True)
        return [dataclasses.replace(c) for c in rows[: request.limit + 1]]

    async def count(self, owner: UserId, up_to: int) -> int:
        return min(sum(1 for c in self._all() if c.owner_id == owner), up_to)

    async def secret_refs(self) -> set[SecretRef]:
        return {c.secret_ref for c in self._all()}

    def _current(self, credential_id: CredentialId) -> Credential | None:
        if credential_id in self._staged:
            return self._staged[credential_id]
        return self._store.credentials.get(credential_id)

    def _all(self) -> list[Credential]:
        merged = {**self._store.credentials, **self._staged}
        return [c for c in merged.values() if c is not None]

    def _stage(self, credential_id: CredentialId, credential: Credential | None) -> None:
        self._staged[credential_id] = credential

        def apply() -> None:
            if credential is None:
                self._store.credentials.pop(credential_id, None)
            else:
                self._store.credentials[credential_id] = credential

        self._uow.stage(apply)


class MemoryCredentialDirectory(CredentialDirectory):
    """Answers the runnability check from the committed credentials of the store."""

    def __init__(self, store: MemoryStore) -> None:
        self._store = store

    async def types_of(
        self, owner: UserId, credential_ids: Collection[uuid.UUID]
    ) -> Mapping[uuid.UUID, str]:
        found = [self._store.credentials.get(CredentialId(i)) for i in credential_ids]
        return {c.id: c.type for c in found if c is not None and c.owner_id == owner}
