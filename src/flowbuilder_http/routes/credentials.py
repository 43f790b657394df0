"""The credentials API. Secret values come in; nothing here ever sends one out."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from dishka.integrations.litestar import FromDishka, inject
from litestar import Request, Response, Router, delete, get, post, put
from litestar.datastructures import ResponseHeader
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from flowbuilder_core.credentials.model import CREDENTIAL_TYPES
from flowbuilder_core.credentials.use_cases import (
    CreateCredential,
    CreateCredentialCommand,
    DeleteCredential,
    GetCredential,
    ListCredentials,
    ListCredentialsQuery,
    ReplaceCredential,
    ReplaceCredentialCommand,
)
from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.shared.pagination import DEFAULT_LIMIT
from flowbuilder_http.idempotency import IdempotencyKey, IdempotentResponder
from flowbuilder_http.problems import problem_responses
from flowbuilder_http.schemas import (
    CredentialCreateIn,
    CredentialOut,
    CredentialReplaceIn,
    CredentialTypeOut,
    ItemsOut,
    PageOut,
)

_TYPES = ItemsOut([CredentialTypeOut.of(t) for t in CREDENTIAL_TYPES.values()])
LOCATION = ResponseHeader(
    name="Location", description="The new credential's URL", documentation_only=True
)


@get(
    "/types",
    summary="Credential types and the JSON Schema of their fields",
    responses=problem_responses(401, 503),
)
@inject
async def credential_types(principal: FromDishka[Principal]) -> ItemsOut[CredentialTypeOut]:
    del principal  # authenticated like everything under /api; the same for everyone
    return _TYPES


@get("/", summary="List credentials", responses=problem_responses(400, 401, 422, 503))
@inject
async def list_credentials(
    principal: FromDishka[Principal],
    list_them: FromDishka[ListCredentials],
    limit: FromQuery[int] = DEFAULT_LIMIT,
    cursor: FromQuery[str | None] = None,
    credential_type: Annotated[str | None, QueryParameter(name="type")] = None,
) -> PageOut[CredentialOut]:
    page = await list_them(principal, ListCredentialsQuery(limit, cursor, credential_type))
    return PageOut([CredentialOut.of(c) for c in page.items], page.next_cursor)


@post(
    "/",
    summary="Create a credential",
    status_code=HTTP_201_CREATED,
    responses=problem_responses(400, 401, 409, 413, 415, 422, 503),
    response_headers=[LOCATION],
)
@inject
async def create_credential(
    request: Request[Any, Any, Any],
    data: JSONBody[CredentialCreateIn],
    principal: FromDishka[Principal],
    create: FromDishka[CreateCredential],
    idempotently: FromDishka[IdempotentResponder],
    idempotency_key: IdempotencyKey = None,
) -> Response[CredentialOut]:
    async def run() -> Response[CredentialOut]:
        command = CreateCredentialCommand(data.name, data.type, data.data)
        credential = await create(principal, command)
        return Response(
            CredentialOut.of(credential),
            status_code=HTTP_201_CREATED,
            headers={
                "Location": request.app.route_reverse(get_credential, credential_id=credential.id)
            },
        )

    # The whole body, values included: the fingerprint is keyed (see IdempotentResponder).
    return await idempotently(principal, idempotency_key, ("POST /api/credentials", data), run)


@get(
    "/{credential_id:uuid}",
    summary="Get a credential: its field names, never their values",
    responses=problem_responses(400, 401, 404, 503),
)
@inject
async def get_credential(
    credential_id: FromPath[UUID],
    principal: FromDishka[Principal],
    get_one: FromDishka[GetCredential],
) -> CredentialOut:
    return CredentialOut.of(await get_one(principal, credential_id))


@put(
    "/{credential_id:uuid}",
    summary="Rename a credential and/or rotate its values",
    responses=problem_responses(400, 401, 404, 413, 415, 422, 503),
)
@inject
async def replace_credential(
    credential_id: FromPath[UUID],
    data: JSONBody[CredentialReplaceIn],
    principal: FromDishka[Principal],
    replace: FromDishka[ReplaceCredential],
) -> CredentialOut:
    command = ReplaceCredentialCommand(credential_id, data.name, data.data, data.type)
    return CredentialOut.of(await replace(principal, command))


@delete(
    "/{credential_id:uuid}",
    summary="Delete a credential (409 while a workflow uses it)",
    status_code=HTTP_204_NO_CONTENT,
    responses=problem_responses(400, 401, 404, 409, 503),
)
@inject
async def delete_credential(
    credential_id: FromPath[UUID],
    principal: FromDishka[Principal],
    remove: FromDishka[DeleteCredential],
) -> None:
    await remove(principal, credential_id)


credentials_router = Router(
    path="/credentials",
    route_handlers=[
        credential_types,
        list_credentials,
        create_credential,
        get_credential,
        replace_credential,
        delete_credential,
    ],
    tags=["credentials"],
)
