"""How many workflows and credentials each owner holds, kept as rows are added and removed.

A quota check reads one row, whatever the owner holds: counting the owner's rows instead cost
a scan that grew with every workflow kept (the quota is a setting, and may be large). The
count moves in the same transaction as the rows it counts, and an owner's writes take turns
on their write-rate bucket (see `WriteRateLimiter`), so it cannot drift from them.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from flowbuilder_adapters.sql.dialect import upsert
from flowbuilder_adapters.sql.tables import owner_holdings
from flowbuilder_core.shared.ids import UserId

Kind = Literal["workflows", "credentials"]

_h = owner_holdings.c
_HELD = select(_h.held).where(_h.owner_id == bindparam("b_owner"), _h.kind == bindparam("b_kind"))
_RELEASE = (
    update(owner_holdings)
    .where(_h.owner_id == bindparam("b_owner"), _h.kind == bindparam("b_kind"), _h.held > 0)
    .values(held=_h.held - 1)
)


async def held(connection: AsyncConnection, owner: UserId, kind: Kind) -> int:
    """How many of `kind` the owner holds (one primary-key read)."""
    row = (await connection.execute(_HELD, {"b_owner": owner, "b_kind": kind})).first()
    return 0 if row is None else int(row.held)


async def hold_one_more(connection: AsyncConnection, owner: UserId, kind: Kind) -> None:
    """Count one more `kind` for the owner (their first creates the row)."""
    statement: Any = upsert(connection, owner_holdings).on_conflict_do_update(
        index_elements=[_h.owner_id, _h.kind], set_={"held": _h.held + 1}
    )
    await connection.execute(statement, {"owner_id": owner, "kind": kind, "held": 1})


async def hold_one_fewer(connection: AsyncConnection, owner: UserId, kind: Kind) -> None:
    """Count one fewer `kind` for the owner."""
    await connection.execute(_RELEASE, {"b_owner": owner, "b_kind": kind})
