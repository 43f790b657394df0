"""Credential metadata over SQL (never values: those live in a SecretStore)."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from sqlalchemy import Row, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.holdings import held, hold_one_fewer, hold_one_more
from flowbuilder_adapters.sql.keyset import newest_first, page_parameters
from flowbuilder_adapters.sql.tables import credentials
from flowbuilder_core.credentials.model import Credential, CredentialId, SecretRef
from flowbuilder_core.credentials.ports import CredentialRepository
from flowbuilder_core.shared.ids import UserId
from flowbuilder_core.shared.pagination import PageRequest
from flowbuilder_core.workflows.ports import CredentialDirectory


def credential_to_row(credential: Credential) -> dict[str, Any]:
    return {
        "id": credential.id,
        "owner_id": credential.owner_id,
        "name": credential.name,
        "type": credential.type,
        "fields": list(credential.fields),
        "secret_ref": credential.secret_ref.value,
        "created_at": credential.created_at,
        "updated_at": credential.updated_at,
    }


def credential_from_row(row: Row[Any]) -> Credential:
    return Credential(
        id=CredentialId(row.id),
        owner_id=UserId(row.owner_id),
        name=row.name,
        type=row.type,
        fields=tuple(row.fields),
        secret_ref=SecretRef(row.secret_ref),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class SqlCredentialRepository(CredentialRepository):
    """Reads and writes in the scope's transaction."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def count(self, owner: UserId, up_to: int) -> int:
        async with translate_errors():
            return min(await held(self._connection, owner, "credentials"), up_to)

    async def get(self, credential_id: CredentialId) -> Credential | None:
        query = select(credentials).where(credentials.c.id == credential_id)
        async with translate_errors():
            row = (await self._connection.execute(query)).one_or_none()
        return None if row is None else credential_from_row(row)

    async def add(self, credential: Credential) -> None:
        async with translate_errors():
            await self._connection.execute(
                credentials.insert().values(credential_to_row(credential))
            )
            await hold_one_more(self._connection, credential.owner_id, "credentials")

    async def update(self, credential: Credential) -> None:
        row = credential_to_row(credential)
        del row["id"], row["owner_id"], row["created_at"]
        async with translate_errors():
            await self._connection.execute(
                update(credentials).where(credentials.c.id == credential.id).values(row)
            )

    async def delete(self, credential_id: CredentialId) -> None:
        async with translate_errors():
            deleted = await self._connection.execute(
                delete(credentials)
                .where(credentials.c.id == credential_id)
                .returning(credentials.c.owner_id)
            )
            owner = deleted.scalar_one_or_none()
            if owner is not None:
                await hold_one_fewer(self._connection, UserId(owner), "credentials")

    async def page(
        self, owner: UserId, credential_type: str | None, request: PageRequest
    ) -> Sequence[Credential]:
        query = select(credentials).where(credentials.c.owner_id == owner)
        if credential_type is not None:
            query = query.where(credentials.c.type == credential_type)
        query = newest_first(
            query, credentials.c.created_at, credentials.c.id, after=request.after is not None
        )
        async with translate_errors():
            rows = (await self._connection.execute(query, page_parameters(request))).all()
        return [credential_from_row(row) for row in rows]

    async def secret_refs(self) -> set[SecretRef]:
        async with translate_errors():
            rows = (await self._connection.execute(select(credentials.c.secret_ref))).all()
        return {SecretRef(row.secret_ref) for row in rows}


class SqlCredentialDirectory(CredentialDirectory):
    """Which of these credentials does the owner have, and of what type: one indexed query."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def types_of(
        self, owner: UserId, credential_ids: Collection[uuid.UUID]
    ) -> Mapping[uuid.UUID, str]:
        if not credential_ids:
            return {}
        query = select(credentials.c.id, credentials.c.type).where(
            credentials.c.owner_id == owner, credentials.c.id.in_(list(credential_ids))
        )
        async with translate_errors():
            rows = (await self._connection.execute(query)).all()
        return {row.id: row.type for row in rows}
