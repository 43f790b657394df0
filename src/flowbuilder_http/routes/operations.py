"""Operations: liveness, readiness, metrics and the node catalogue."""

from __future__ import annotations

from typing import Any

from dishka.integrations.litestar import FromDishka, inject
from litestar import Request, Response, get
from litestar.openapi.datastructures import ResponseSpec
from msgspec import Struct

from flowbuilder_adapters.wiring import exposition, observe_readiness
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
    "/metrics",
    summary="Metrics in the Prometheus text format",
    tags=["operations"],
    media_type="text/plain; version=0.0.4; charset=utf-8",
)
@inject
async def metrics(
    request: Request[Any, Any, Any], health: FromDishka[HealthProbe]
) -> Response[bytes]:
    """This process's metrics (docs/API.md, "Metrics"), in the format the scraper accepts. The
    outbox backlog and the database's state are read now, within the readiness check's bounds."""
    readiness = await health.check()
    observe_readiness(readiness.database, readiness.outbox_backlog)
    body, content_type = exposition(request.headers.get("accept"))
    # Given whole: Litestar would add a second charset to a text/ media type.
    return Response(body, headers={"Content-Type": content_type})


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
