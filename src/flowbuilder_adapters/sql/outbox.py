"""The outbox over SQL: messages written in the transaction of the execution they announce."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.errors import translate_errors
from flowbuilder_adapters.sql.tables import outbox
from flowbuilder_adapters.sql.uow import SqlUnitOfWork
from flowbuilder_core.executions.model import ExecutionRequested
from flowbuilder_core.executions.ports import Outbox
from flowbuilder_core.shared.ids import new_uuid

_INSERT_OUTBOX = insert(outbox)


class SqlOutbox(Outbox):
    """Outbox rows in the scope's transaction: they commit with the execution, and `wake`
    (the relay's kick) runs right after that commit."""

    def __init__(
        self, connection: AsyncConnection, uow: SqlUnitOfWork, wake: Callable[[], None]
    ) -> None:
        self._connection, self._uow, self._wake = connection, uow, wake

    async def add(self, message: ExecutionRequested) -> None:
        self._uow.after_commit(self._wake)
        async with translate_errors():
            await self._connection.execute(
                _INSERT_OUTBOX,
                {
                    "id": new_uuid(),
                    "message": message.to_json(),
                    "created_at": message.requested_at,
                    "available_at": message.requested_at,
                    "attempts": 0,
                },
            )


async def delete_outbox_rows(connection: AsyncConnection, ids: Sequence[uuid.UUID]) -> None:
    await connection.execute(delete(outbox).where(outbox.c.id.in_(list(ids))))
