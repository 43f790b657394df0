"""The executions API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from dishka.integrations.litestar import FromDishka, inject
from litestar import Request, Response, Router, get, post
from litestar.datastructures import ResponseHeader
from litestar.params import Body, FromPath, FromQuery, HeaderParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage
from litestar.status_codes import HTTP_202_ACCEPTED

from flowbuilder_core.executions.events import ExecutionEvent, FollowExecution
from flowbuilder_core.executions.model import Execution
from flowbuilder_core.executions.use_cases import (
    CancelExecution,
    ExecuteCommand,
    ExecuteWorkflow,
    GetExecution,
    ListExecutions,
    ListExecutionsQuery,
    ListWorkflowExecutions,
    ListWorkflowExecutionsQuery,
    RetryExecution,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.pagination import DEFAULT_LIMIT
from flowbuilder_http.idempotency import IdempotencyKey, IdempotentResponder
from flowbuilder_http.problems import problem_responses
from flowbuilder_http.schemas import ExecuteIn, ExecutionOut, PageOut, StepOut

Statuses = Annotated[
    list[str] | None,
    QueryParameter(name="status", description="repeatable: queued, running, succeeded, ..."),
]
Triggers = Annotated[
    list[str] | None,
    QueryParameter(name="trigger", description="repeatable: manual, webhook, schedule, retry"),
]
LOCATION = ResponseHeader(
    name="Location", description="The execution's URL", documentation_only=True
)
LISTING = problem_responses(400, 401, 404, 422, 503)


def accepted(request: Request[Any, Any, Any], execution: Execution) -> Response[ExecutionOut]:
    location = request.app.route_reverse(get_execution, execution_id=execution.id)
    return Response(
        ExecutionOut.of(execution),
        status_code=HTTP_202_ACCEPTED,
        headers={"Location": location},
    )


def _page(page_items: tuple[Execution, ...], cursor: str | None) -> PageOut[ExecutionOut]:
    return PageOut([ExecutionOut.of(e, detailed=False) for e in page_items], cursor)


@post(
    "/workflows/{workflow_id:uuid}/execute",
    summary="Run a workflow: 202 with the queued execution",
    status_code=HTTP_202_ACCEPTED,
    responses=problem_responses(400, 401, 404, 409, 413, 415, 422, 429, 503),
    response_headers=[LOCATION],
    tags=["executions"],
)
@inject
async def execute_workflow(
    request: Request[Any, Any, Any],
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    execute: FromDishka[ExecuteWorkflow],
    idempotently: FromDishka[IdempotentResponder],
    data: Annotated[ExecuteIn | None, Body()] = None,
    idempotency_key: IdempotencyKey = None,
) -> Response[ExecutionOut]:
    execution_input = None if data is None else data.input

    async def run() -> Response[ExecutionOut]:
        execution = await execute(principal, ExecuteCommand(workflow_id, execution_input))
        return accepted(request, execution)

    operation = f"POST /api/workflows/{workflow_id}/execute"
    return await idempotently(principal, idempotency_key, (operation, execution_input), run)


@get(
    "/workflows/{workflow_id:uuid}/executions",
    summary="A workflow's executions, newest first",
    responses=LISTING,
    tags=["executions"],
)
@inject
async def list_workflow_executions(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    list_them: FromDishka[ListWorkflowExecutions],
    statuses: Statuses = None,
    triggers: Triggers = None,
    limit: FromQuery[int] = DEFAULT_LIMIT,
    cursor: FromQuery[str | None] = None,
    parent_id: FromQuery[UUID | None] = None,
) -> PageOut[ExecutionOut]:
    query = ListWorkflowExecutionsQuery(
        workflow_id,
        limit,
        cursor,
        tuple(statuses or ()),
        parent_id=parent_id,
        triggers=tuple(triggers or ()),
    )
    page = await list_them(principal, query)
    return _page(page.items, page.next_cursor)


@get(
    "/executions",
    summary="Executions, newest first (without input and steps)",
    responses=LISTING,
    tags=["executions"],
)
@inject
async def list_executions(
    principal: FromDishka[Principal],
    list_them: FromDishka[ListExecutions],
    statuses: Statuses = None,
    triggers: Triggers = None,
    workflow_id: FromQuery[UUID | None] = None,
    created_after: FromQuery[datetime | None] = None,
    created_before: FromQuery[datetime | None] = None,
    limit: FromQuery[int] = DEFAULT_LIMIT,
    cursor: FromQuery[str | None] = None,
    parent_id: FromQuery[UUID | None] = None,
) -> PageOut[ExecutionOut]:
    query = ListExecutionsQuery(
        limit,
        cursor,
        tuple(statuses or ()),
        workflow_id,
        created_after,
        created_before,
        parent_id=parent_id,
        triggers=tuple(triggers or ()),
    )
    page = await list_them(principal, query)
    return _page(page.items, page.next_cursor)


@get(
    "/executions/{execution_id:uuid}",
    summary="An execution with its steps",
    responses=problem_responses(400, 401, 404, 503),
    tags=["executions"],
)
@inject
async def get_execution(
    execution_id: FromPath[UUID],
    principal: FromDishka[Principal],
    get_one: FromDishka[GetExecution],
) -> ExecutionOut:
    return ExecutionOut.of(await get_one(principal, execution_id))


@post(
    "/executions/{execution_id:uuid}/cancel",
    summary="Cancel a queued or running execution (409 once finished)",
    status_code=HTTP_202_ACCEPTED,
    responses=problem_responses(400, 401, 404, 409, 503),
    tags=["executions"],
)
@inject
async def cancel_execution(
    execution_id: FromPath[UUID],
    principal: FromDishka[Principal],
    cancel: FromDishka[CancelExecution],
) -> Response[ExecutionOut]:
    execution = await cancel(principal, execution_id)
    return Response(ExecutionOut.of(execution), status_code=HTTP_202_ACCEPTED)


@post(
    "/executions/{execution_id:uuid}/retry",
    summary="Run a failed or cancelled execution again (attempt + 1, same version)",
    status_code=HTTP_202_ACCEPTED,
    responses=problem_responses(400, 401, 404, 409, 422, 429, 503),
    response_headers=[LOCATION],
    tags=["executions"],
)
@inject
async def retry_execution(
    request: Request[Any, Any, Any],
    execution_id: FromPath[UUID],
    principal: FromDishka[Principal],
    retry: FromDishka[RetryExecution],
) -> Response[ExecutionOut]:
    return accepted(request, await retry(principal, execution_id))


KEEP_ALIVE_S = 15.0
"""A comment line this often keeps proxies from closing a quiet stream."""


@get(
    "/executions/{execution_id:uuid}/events",
    summary="Follow an execution: its status and steps as Server-Sent Events",
    responses=problem_responses(400, 401, 404, 429, 503),
    tags=["executions"],
)
@inject
async def execution_events(
    execution_id: FromPath[UUID],
    principal: FromDishka[Principal],
    follow: FromDishka[FollowExecution],
    last_event_id: Annotated[str | None, HeaderParameter(name="Last-Event-ID")] = None,
) -> ServerSentEvent:
    after = int(last_event_id) if last_event_id and last_event_id.isdigit() else -1
    events = await follow(principal, execution_id, after)
    return ServerSentEvent(_messages(events), headers={"Cache-Control": "no-store"})


async def _messages(
    events: AsyncGenerator[ExecutionEvent, None],
) -> AsyncIterator[ServerSentEventMessage]:
    """Each event as an SSE message, with a comment line whenever the stream is quiet."""
    pending = asyncio.ensure_future(anext(events, None))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=KEEP_ALIVE_S)
            if not done:
                yield ServerSentEventMessage(comment="keep-alive")
                continue
            event = pending.result()
            if event is None:
                return
            yield ServerSentEventMessage(data=_data(event), event=event.kind, id=event.id)
            pending = asyncio.ensure_future(anext(events, None))
    finally:
        pending.cancel()
        with contextlib.suppress(BaseException):
            await pending  # the generator must be idle before it is closed
        await events.aclose()


def _data(event: ExecutionEvent) -> str:
    if event.step is not None:
        return msgspec.json.encode(StepOut.of(event.step)).decode()
    if event.status is not None:
        return msgspec.json.encode({"status": event.status.value}).decode()
    return "{}"


executions_router = Router(
    path="/",
    route_handlers=[
        execute_workflow,
        list_workflow_executions,
        list_executions,
        get_execution,
        cancel_execution,
        retry_execution,
        execution_events,
    ],
)
