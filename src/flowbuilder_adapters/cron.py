"""Cron arithmetic with cronsim (a plain-install dependency: save-time validation needs it).

Why cronsim rather than croniter: it is small, pure Python and has no dependencies of its own
(croniter brings python-dateutil and pytz), it works with the standard library's zoneinfo, it
is typed, and it states one rule for daylight-saving changes, Debian cron's, and tests it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from flowbuilder_core.nodes.schedule import CronCalendar

FIELDS = 5


class CronsimCalendar(CronCalendar):
    """Five fields as Debian's cron reads them (cronsim also takes `L`, `LW`, `5L` and
    `MON#2`; never a sixth field for seconds).

    Daylight saving, Debian cron's rule: a job whose hour field names an hour (`30 2 * * *`)
    and whose time does not exist that day (the clocks skip from 02:00 to 03:00) runs at the
    moment the clocks jump; at a time that happens twice it runs once, at the first. A job
    that runs every hour (`30 * * * *`) is scheduled normally: it does not run in the skipped
    hour and runs in both of the repeated one.
    """

    def problem(self, expression: str) -> str | None:
        fields = expression.split()
        if len(fields) != FIELDS:
            return (
                "must have five fields (minute, hour, day of month, month, day of week); "
                f"found {len(fields)}"
            )
        try:
            CronSim(" ".join(fields), datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as error:
            return f"is not a valid cron expression: {str(error).lower()}"
        return None

    def next_after(self, expression: str, zone: ZoneInfo, after: datetime) -> datetime | None:
        found = CronSim(expression, after.astimezone(zone))
        try:
            moment = next(found)
        except StopIteration:
            return None
        return moment.astimezone(UTC).replace(microsecond=0)
