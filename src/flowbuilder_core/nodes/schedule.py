"""The `trigger.schedule` node: when a schedule fires, and the rules that check its parameters.

Cron arithmetic is behind a port (`CronCalendar`), so that the core stays standard-library
only; `flowbuilder_adapters.cron.CronsimCalendar` is its adapter. Time zones are the standard
library's `zoneinfo`.

Every scheduler must compute the same times, since the database's unique key on (workflow,
scheduled time) is what makes one execution per time: times are whole seconds, in UTC, and
depend on nothing but the parameters (`every_s` counts from the Unix epoch).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flowbuilder_core.nodes.schema import is_whole_template, pointer_join
from flowbuilder_core.shared.errors import FieldError

SCHEDULE_TRIGGER = "trigger.schedule"
MAX_CRON_LENGTH = 200
MAX_TIMEZONE_LENGTH = 64
MAX_EVERY_S = 366 * 24 * 3600
"""The longest interval: a year (a leap one)."""
DEFAULT_MIN_INTERVAL_S = 60
DEFAULT_TIMEZONE = "UTC"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")


class CronCalendar(Protocol):
    """Cron arithmetic: five fields (minute, hour, day of month, month, day of week), with
    names (JAN-DEC, SUN-SAT), ranges, lists and steps, read as wall-clock time in a zone.

    An adapter states its rule for daylight-saving changes (a time that does not exist that
    day, a time that happens twice) in its docstring; docs/API.md repeats it.
    """

    def problem(self, expression: str) -> str | None:
        """None when `expression` is a valid five-field cron expression; else what is wrong
        with it, for people (which field, when it can tell)."""

    def next_after(self, expression: str, zone: ZoneInfo, after: datetime) -> datetime | None:
        """The first time strictly after `after` (aware) that the valid `expression` matches
        in `zone`, as an aware UTC datetime in whole seconds; None when there is none in the
        next fifty years (`0 0 30 2 *`)."""


@dataclass(frozen=True, slots=True)
class ScheduleRules:
    """What a schedule trigger may be. `calendar` checks and computes cron expressions
    (without one, a `cron` parameter is refused at save time: it could not be checked);
    `min_interval_s` is the shortest `every_s` (SCHEDULE_MIN_INTERVAL_S)."""

    calendar: CronCalendar | None = None
    min_interval_s: int = DEFAULT_MIN_INTERVAL_S


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a scheduled workflow runs: on `cron` in `timezone`, or every `every_s` seconds
    (times that are whole multiples of it since the Unix epoch, whatever the zone)."""

    cron: str | None = None
    every_s: int | None = None
    timezone: str = DEFAULT_TIMEZONE

    @classmethod
    def of(cls, parameters: Mapping[str, object]) -> Schedule | None:
        """The schedule of a well-formed node's parameters; None while it has neither `cron`
        nor `every_s` (a draft)."""
        cron, every_s = parameters.get("cron"), parameters.get("every_s")
        timezone = parameters.get("timezone", DEFAULT_TIMEZONE)
        if not isinstance(timezone, str):
            return None
        if isinstance(cron, str):
            return cls(cron=cron, timezone=timezone)
        if isinstance(every_s, int) and not isinstance(every_s, bool):
            return cls(every_s=every_s, timezone=timezone)
        return None

    def next_after(self, after: datetime, calendar: CronCalendar | None) -> datetime | None:
        """The first time of this schedule strictly after `after`, in UTC whole seconds."""
        if self.every_s is not None:
            elapsed = int((after - _EPOCH).total_seconds() // self.every_s)
            return _EPOCH + timedelta(seconds=(elapsed + 1) * self.every_s)
        if calendar is None or self.cron is None:
            return None
        return calendar.next_after(self.cron, ZoneInfo(self.timezone), after)

    def upcoming(
        self, after: datetime, count: int, calendar: CronCalendar | None
    ) -> list[datetime]:
        """The next `count` times strictly after `after` (fewer when the schedule ends)."""
        times: list[datetime] = []
        moment: datetime | None = after
        while len(times) < count and moment is not None:
            moment = self.next_after(moment, calendar)
            if moment is not None:
                times.append(moment)
        return times


def schedule_problems(
    parameters: Mapping[str, object], at: str, rules: ScheduleRules
) -> list[FieldError]:
    """Save-time problems of a `trigger.schedule` node's parameters (below pointer `at`)
    beyond their JSON Schema: a cron expression the calendar refuses, an interval under the
    minimum, an unknown zone, both `cron` and `every_s`, or a template (a schedule is read
    before any run, so there is nothing to fill one in with)."""
    errors: list[FieldError] = []
    for name in ("cron", "every_s", "timezone"):
        if is_whole_template(parameters.get(name)):
            where = pointer_join(at, name)
            errors.append(FieldError(where, "must be a plain value, not a template"))
    if errors:
        return errors
    cron, every_s = parameters.get("cron"), parameters.get("every_s")
    if cron is not None and every_s is not None:
        errors.append(FieldError(at, "must have cron or every_s, not both"))
    # Values the JSON Schema refused (a type, a length) are reported once, by it.
    if isinstance(cron, str) and len(cron) <= MAX_CRON_LENGTH:
        if rules.calendar is None:
            message = "cannot be checked: no cron calendar was given to check it with"
        else:
            message = rules.calendar.problem(cron) or ""
        if message:
            errors.append(FieldError(pointer_join(at, "cron"), message))
    if isinstance(every_s, int) and 1 <= every_s < rules.min_interval_s:
        where = pointer_join(at, "every_s")
        errors.append(FieldError(where, f"must be at least {rules.min_interval_s} seconds"))
    timezone = parameters.get("timezone")
    if (
        isinstance(timezone, str)
        and len(timezone) <= MAX_TIMEZONE_LENGTH
        and not is_time_zone(timezone)
    ):
        where = pointer_join(at, "timezone")
        errors.append(FieldError(where, "is not a known IANA time zone name"))
    return errors


def schedule_runnability(parameters: Mapping[str, object], at: str) -> list[FieldError]:
    """Execute-time problems of a `trigger.schedule` node: it needs `cron` or `every_s`."""
    if "cron" in parameters or "every_s" in parameters:
        return []
    return [FieldError(at, "needs cron or every_s to run on a schedule")]


def is_time_zone(name: str) -> bool:
    """Whether `name` is an IANA zone that this system's time-zone database knows."""
    if len(name) > MAX_TIMEZONE_LENGTH or not _ZONE_NAME.fullmatch(name):
        return False  # never a path: zoneinfo would read files outside its database
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
