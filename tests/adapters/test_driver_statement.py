"""A statement run on the asyncpg driver gets the parameters SQLAlchemy would have sent."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import bindparam, update
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.exc import InvalidRequestError

from flowbuilder_adapters.sql.driver import DriverStatement
from flowbuilder_adapters.sql.execution_steps import beat_and_record_statement
from flowbuilder_adapters.sql.tables import executions


def test_parameters_come_in_the_order_of_the_sql_with_their_literals_and_processing() -> None:
    statement = DriverStatement(beat_and_record_statement(), asyncpg_dialect())
    execution_id, lease = uuid.uuid4(), uuid.uuid4()
    paris = timezone(timedelta(hours=1))
    at = datetime(2026, 12, 3, 21, 0, tzinfo=paris)

    arguments = statement.arguments(
        {
            "b_execution_id": execution_id,
            "b_lease": lease,
            "b_at": at,
            "b_steps": [{"node_id": "a", "ordinal": 1}],
        }
    )

    assert "$1" in statement.sql
    assert statement.sql.count("$") >= len(arguments)
    assert execution_id in arguments
    assert lease in arguments
    assert "running" in arguments  # the statement's own literals
    assert "cancelled" in arguments
    stored_at = next(a for a in arguments if isinstance(a, datetime))
    assert stored_at == at
    assert stored_at.utcoffset() == timedelta(0)  # UtcDateTime converted it
    document = next(a for a in arguments if isinstance(a, str) and a.startswith("["))
    assert json.loads(document) == [{"node_id": "a", "ordinal": 1}]


def test_a_missing_parameter_is_refused_before_anything_is_sent() -> None:
    statement = (
        update(executions)
        .where(executions.c.id == bindparam("b_id"))
        .values(heartbeat_at=bindparam("b_at", type_=executions.c.heartbeat_at.type))
    )
    driver = DriverStatement(statement, asyncpg_dialect())
    at = datetime(2026, 1, 1, tzinfo=UTC)

    arguments = driver.arguments({"b_id": uuid.UUID(int=1), "b_at": at})

    assert arguments == [at, uuid.UUID(int=1)]
    with pytest.raises(InvalidRequestError, match="b_at"):
        driver.arguments({"b_id": uuid.UUID(int=1)})
