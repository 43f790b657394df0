"""The workflows API."""

from __future__ import annotations

import re
from typing import Annotated, Any
from uuid import UUID

from dishka.integrations.litestar import FromDishka, inject
from litestar import Request, Response, Router, delete, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, FromQuery, HeaderParameter, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from flowbuilder_core.shared.errors import FieldError, InvalidInputError
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.pagination import DEFAULT_LIMIT
from flowbuilder_core.workflows.activation import ActivateWorkflow, DeactivateWorkflow
from flowbuilder_core.workflows.ports import WorkflowFilter
from flowbuilder_core.workflows.use_cases import (
    CreateWorkflow,
    DeleteWorkflow,
    DeleteWorkflowCommand,
    GetWorkflow,
    GetWorkflowVersion,
    ListVersionsQuery,
    ListWorkflows,
    ListWorkflowsQuery,
    ListWorkflowVersions,
    ReplaceWorkflow,
    ReplaceWorkflowCommand,
    ValidateDefinition,
)
from flowbuilder_http.headers import etag, parse_if_match
from flowbuilder_http.idempotency import IdempotencyKey, IdempotentResponder
from flowbuilder_http.problems import problem_responses
from flowbuilder_http.schemas import (
    PageOut,
    ValidateIn,
    ValidationOut,
    WorkflowCreateIn,
    WorkflowOut,
    WorkflowReplaceIn,
    WorkflowVersionOut,
)

# A longer number is no version either (and int() of thousands of digits is slow, or refused).
_VERSION_NUMBER = re.compile(r"[0-9]{1,18}")
READ = problem_responses(400, 401, 422, 503)
CREATE = problem_responses(400, 401, 409, 413, 415, 422, 503)
ONE = problem_responses(400, 401, 404, 422, 503)
WRITE = problem_responses(400, 401, 413, 415, 422, 503)
WRITE_ONE = problem_responses(400, 401, 404, 412, 413, 415, 422, 503)
ETAG = ResponseHeader(
    name="ETag", description='The version, as "<version>"', documentation_only=True
)
LOCATION = ResponseHeader(
    name="Location", description="The new workflow's URL", documentation_only=True
)

IfMatch = Annotated[
    str | None,
    HeaderParameter(name="If-Match", description='"*" or the ETag of the version being edited'),
]


def _workflow_response(out: WorkflowOut, version: int, status: int = 200) -> Response[WorkflowOut]:
    return Response(out, status_code=status, headers={"ETag": etag(version)})


@get("/", summary="List workflows", responses=READ)
@inject
async def list_workflows(
    principal: FromDishka[Principal],
    list_them: FromDishka[ListWorkflows],
    limit: FromQuery[int] = DEFAULT_LIMIT,
    cursor: FromQuery[str | None] = None,
    tag: FromQuery[str | None] = None,
    q: FromQuery[str | None] = None,
    include: FromQuery[str | None] = None,
) -> PageOut[WorkflowOut]:
    if include not in (None, "definition"):
        raise InvalidInputError([FieldError.query("include", 'the only value is "definition"')])
    query = ListWorkflowsQuery(
        limit=limit,
        cursor=cursor,
        where=WorkflowFilter(tag=tag, q=q),
        include_definition=include == "definition",
    )
    page = await list_them(principal, query)
    return PageOut([WorkflowOut.of(w) for w in page.items], page.next_cursor)


@post(
    "/",
    summary="Create a workflow",
    status_code=HTTP_201_CREATED,
    responses=CREATE,
    response_headers=[ETAG, LOCATION],
)
@inject
async def create_workflow(
    request: Request[Any, Any, Any],
    data: JSONBody[WorkflowCreateIn],
    principal: FromDishka[Principal],
    create: FromDishka[CreateWorkflow],
    idempotently: FromDishka[IdempotentResponder],
    idempotency_key: IdempotencyKey = None,
) -> Response[WorkflowOut]:
    async def run() -> Response[WorkflowOut]:
        workflow = await create(principal, data.to_input())
        location = request.app.route_reverse(get_workflow, workflow_id=workflow.id)
        return Response(
            WorkflowOut.of(workflow),
            status_code=HTTP_201_CREATED,
            headers={"ETag": etag(workflow.version), "Location": location},
        )

    return await idempotently(principal, idempotency_key, ("POST /api/workflows", data), run)


@post(
    "/validate",
    summary="Validate a definition without saving it",
    status_code=200,
    responses=WRITE,
)
@inject
async def validate_definition(
    data: JSONBody[ValidateIn],
    principal: FromDishka[Principal],
    validate: FromDishka[ValidateDefinition],
) -> ValidationOut:
    return ValidationOut.of(await validate(principal, data.definition))


@get("/{workflow_id:uuid}", summary="Get a workflow", responses=ONE, response_headers=[ETAG])
@inject
async def get_workflow(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    get_one: FromDishka[GetWorkflow],
) -> Response[WorkflowOut]:
    workflow = await get_one(principal, workflow_id)
    return _workflow_response(WorkflowOut.of(workflow), workflow.version)


@put(
    "/{workflow_id:uuid}",
    summary="Replace a workflow",
    responses=WRITE_ONE,
    response_headers=[ETAG],
)
@inject
async def replace_workflow(
    workflow_id: FromPath[UUID],
    data: JSONBody[WorkflowReplaceIn],
    principal: FromDishka[Principal],
    replace: FromDishka[ReplaceWorkflow],
    if_match: IfMatch = None,
) -> Response[WorkflowOut]:
    command = ReplaceWorkflowCommand(
        workflow_id=workflow_id,
        fields=data.to_input(),
        if_match=parse_if_match(if_match),
        version=data.version,
    )
    workflow = await replace(principal, command)
    return _workflow_response(WorkflowOut.of(workflow), workflow.version)


@delete(
    "/{workflow_id:uuid}",
    summary="Delete a workflow",
    status_code=HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 401, 404, 412, 422, 503),
)
@inject
async def delete_workflow(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    remove: FromDishka[DeleteWorkflow],
    if_match: IfMatch = None,
) -> None:
    await remove(principal, DeleteWorkflowCommand(workflow_id, parse_if_match(if_match)))


@post(
    "/{workflow_id:uuid}/activate",
    summary="Activate a workflow: its webhook and schedule start it",
    status_code=200,
    responses=ONE,
    response_headers=[ETAG],
)
@inject
async def activate_workflow(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    activate: FromDishka[ActivateWorkflow],
) -> Response[WorkflowOut]:
    workflow = await activate(principal, workflow_id)
    return _workflow_response(WorkflowOut.of(workflow), workflow.version)


@post(
    "/{workflow_id:uuid}/deactivate",
    summary="Deactivate a workflow: its webhook and schedule start nothing",
    status_code=200,
    responses=ONE,
    response_headers=[ETAG],
)
@inject
async def deactivate_workflow(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    deactivate: FromDishka[DeactivateWorkflow],
) -> Response[WorkflowOut]:
    workflow = await deactivate(principal, workflow_id)
    return _workflow_response(WorkflowOut.of(workflow), workflow.version)


@get(
    "/{workflow_id:uuid}/versions",
    summary="List a workflow's versions, newest first",
    responses=ONE,
)
@inject
async def list_versions(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    list_them: FromDishka[ListWorkflowVersions],
    limit: FromQuery[int] = DEFAULT_LIMIT,
    cursor: FromQuery[str | None] = None,
) -> PageOut[WorkflowVersionOut]:
    page = await list_them(principal, ListVersionsQuery(workflow_id, limit, cursor))
    return PageOut([WorkflowVersionOut.of(v) for v in page.items], page.next_cursor)


@get(
    "/{workflow_id:uuid}/versions/{version:str}",
    summary="Get one version of a workflow",
    responses=problem_responses(400, 401, 404, 503),
)
@inject
async def get_version(
    workflow_id: FromPath[UUID],
    version: FromPath[str],
    principal: FromDishka[Principal],
    get_one: FromDishka[GetWorkflowVersion],
) -> WorkflowVersionOut:
    # Read as text: a version that is not a number is then a version that does not exist, and
    # answers as one does (the workflow's 404 first, then the version's), never a generic 404.
    number = int(version) if _VERSION_NUMBER.fullmatch(version) else 0
    return WorkflowVersionOut.of(await get_one(principal, workflow_id, number))


workflows_router = Router(
    path="/workflows",
    route_handlers=[
        list_workflows,
        create_workflow,
        validate_definition,
        get_workflow,
        replace_workflow,
        delete_workflow,
        activate_workflow,
        deactivate_workflow,
        list_versions,
        get_version,
    ],
    tags=["workflows"],
)
