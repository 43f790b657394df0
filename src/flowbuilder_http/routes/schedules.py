"""A workflow's schedule: `GET /api/workflows/{id}/schedule`."""

from __future__ import annotations

from uuid import UUID

from dishka.integrations.litestar import FromDishka, inject
from litestar import Router, get
from litestar.params import FromPath
from msgspec import UNSET, Struct, UnsetType

from flowbuilder_core.shared.identity import Principal
from flowbuilder_core.triggers.schedules import GetSchedule, ScheduleView
from flowbuilder_http.problems import problem_responses
from flowbuilder_http.schemas import Timestamp, timestamp


class ScheduleOut(Struct, omit_defaults=True, kw_only=True):
    """`cron` or `every_s`, as the trigger has it; `next` are its next five times (UTC)."""

    cron: str | UnsetType = UNSET
    every_s: int | UnsetType = UNSET
    timezone: str
    active: bool
    next: list[Timestamp]

    @classmethod
    def of(cls, view: ScheduleView) -> ScheduleOut:
        schedule = view.schedule
        return cls(
            timezone=schedule.timezone,
            active=view.active,
            next=[timestamp(moment) for moment in view.upcoming],
            cron=UNSET if schedule.cron is None else schedule.cron,
            every_s=UNSET if schedule.every_s is None else schedule.every_s,
        )


@get(
    "/{workflow_id:uuid}/schedule",
    summary="A workflow's schedule and its next five times",
    responses=problem_responses(400, 401, 404, 503),
)
@inject
async def get_schedule(
    workflow_id: FromPath[UUID],
    principal: FromDishka[Principal],
    get_one: FromDishka[GetSchedule],
) -> ScheduleOut:
    return ScheduleOut.of(await get_one(principal, workflow_id))


schedules_router = Router(path="/workflows", route_handlers=[get_schedule], tags=["workflows"])
