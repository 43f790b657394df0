"""Operations: liveness, readiness and the node catalogue."""

from __future__ import annotations

from dishka.integrations.litestar import FromDishka, inject
from litestar import Response, get
from litestar.openapi.datastructures import ResponseSpec
from msgspec import Struct

from flowbuilder_core.nodes.catalogue import NODE_TYPES
from flowbuilder_core.shared.health import HealthProbe
from flowbuilder_core.shared.identity import Principal
from flowbuilder_http.problems import problem_responses
from flowbuilder_http.schemas import ItemsOut, NodeTypeOut


class LiveOut(Struct):
    status: str


class CheckOut(Struct, omit_defaults=True):
    status: str
    backlog: int | None = None


class ReadyOut(Struct):
    status: str
    checks: dict[str, CheckOut]


_NODE_TYPES = ItemsOut([NodeTypeOut.of(t) for t in NODE_TYPES.values()])


@get("/health/live", summary="Liveness", tags=["operations"])
async def live() -> LiveOut:
    return LiveOut("ok")


@get(
    "/health/ready",
    summary="Readiness",
    tags=["operations"],
    responses={
        503: ResponseSpec(ReadyOut, description="The database does not answer; same report")
    },
)
@inject
async def ready(health: FromDishka[HealthProbe]) -> Response[ReadyOut]:
    """200 when the database answers, else 503; the body is the readiness report either way.
    The queue and the outbox backlog are reported but never fail readiness."""
    readiness = await health.check()
    report = ReadyOut(
        status="ready" if readiness.database else "unavailable",
        checks={
            "database": CheckOut("up" if readiness.database else "down"),
            "queue": CheckOut(readiness.queue),
            "outbox": CheckOut(
                "unknown" if readiness.outbox_backlog is None else "ok",
                backlog=readiness.outbox_backlog,
            ),
        },
    )
    database_up = readiness.database
    return Response(report, status_code=200 if database_up else 503)


@get(
    "/node-types",
    summary="The node catalogue",
    tags=["node types"],
    responses=problem_responses(401, 503),
)
@inject
async def node_types(principal: FromDishka[Principal]) -> ItemsOut[NodeTypeOut]:
    del principal  # authenticated like everything under /api; the catalogue is the same for all
    return _NODE_TYPES
