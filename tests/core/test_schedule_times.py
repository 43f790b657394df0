"""When schedules fire: intervals, cron in a zone, and the daylight-saving rule (cronsim's,
Debian cron's), on days that have a change; and how a schedule trigger is checked when saved."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from flowbuilder_adapters.cron import CronsimCalendar
from flowbuilder_core.nodes.schedule import Schedule, ScheduleRules
from flowbuilder_core.workflows.validation import parse_definition, runnability_problems

CALENDAR = CronsimCalendar()
RULES = ScheduleRules(CALENDAR, min_interval_s=60)


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


def times(schedule: Schedule, after: datetime, count: int = 5) -> list[datetime]:
    return schedule.upcoming(after, count, CALENDAR)


def test_an_interval_fires_on_whole_multiples_of_it_since_the_epoch() -> None:
    every_five_minutes = Schedule(every_s=300)

    assert times(every_five_minutes, utc(2026, 1, 1, 10, 7, 30), 3) == [
        utc(2026, 1, 1, 10, 10),
        utc(2026, 1, 1, 10, 15),
        utc(2026, 1, 1, 10, 20),
    ]


def test_an_interval_ignores_the_time_zone() -> None:
    after = utc(2026, 3, 29, 0, 59, 59)

    assert times(Schedule(every_s=3600, timezone="Europe/Berlin"), after) == times(
        Schedule(every_s=3600), after
    )


def test_the_next_time_is_strictly_after_the_given_one() -> None:
    assert Schedule(every_s=60).next_after(utc(2026, 1, 1, 0, 1), None) == utc(2026, 1, 1, 0, 2)
    assert Schedule(cron="1 0 * * *").next_after(utc(2026, 1, 1, 0, 1), CALENDAR) == utc(
        2026, 1, 2, 0, 1
    )


def test_cron_fields_are_read_in_the_schedules_zone() -> None:
    nine_in_new_york = Schedule(cron="0 9 * * MON-FRI", timezone="America/New_York")

    assert times(nine_in_new_york, utc(2026, 1, 2, 15, 0), 3) == [
        utc(2026, 1, 5, 14, 0),  # Friday 2 January 10:00 EST is past: Monday, 09:00 EST
        utc(2026, 1, 6, 14, 0),
        utc(2026, 1, 7, 14, 0),
    ]


def test_a_daily_time_skipped_by_spring_forward_runs_when_the_clocks_jump() -> None:
    # Berlin, 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC); 02:30 does not exist.
    half_past_two = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")

    assert times(half_past_two, utc(2026, 3, 28, 12, 0), 3) == [
        utc(2026, 3, 29, 1, 0),  # the moment of the jump, 03:00 CEST
        utc(2026, 3, 30, 0, 30),  # 02:30 CEST
        utc(2026, 3, 31, 0, 30),
    ]


def test_an_hourly_time_skipped_by_spring_forward_does_not_run() -> None:
    hourly = Schedule(cron="30 * * * *", timezone="Europe/Berlin")

    assert times(hourly, utc(2026, 3, 28, 23, 0), 3) == [
        utc(2026, 3, 28, 23, 30),  # 00:30 CET
        utc(2026, 3, 29, 0, 30),  # 01:30 CET; 02:30 never happens
        utc(2026, 3, 29, 1, 30),  # 03:30 CEST
    ]


def test_a_daily_time_repeated_by_fall_back_runs_once_at_its_first_occurrence() -> None:
    # Berlin, 25 October 2026: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    half_past_two = Schedule(cron="30 2 * * *", timezone="Europe/Berlin")

    assert times(half_past_two, utc(2026, 10, 24, 12, 0), 2) == [
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST, the first; not again at 02:30 CET
        utc(2026, 10, 26, 1, 30),  # 02:30 CET
    ]


def test_an_hourly_time_repeated_by_fall_back_runs_at_both_occurrences() -> None:
    hourly = Schedule(cron="30 * * * *", timezone="Europe/Berlin")

    assert times(hourly, utc(2026, 10, 24, 23, 0), 4) == [
        utc(2026, 10, 24, 23, 30),  # 01:30 CEST
        utc(2026, 10, 25, 0, 30),  # 02:30 CEST
        utc(2026, 10, 25, 1, 30),  # 02:30 CET
        utc(2026, 10, 25, 2, 30),  # 03:30 CET
    ]


def test_new_yorks_spring_forward_follows_the_same_rule() -> None:
    # 8 March 2026: 02:00 EST becomes 03:00 EDT (07:00 UTC).
    quarter_past_two = Schedule(cron="15 2 * * *", timezone="America/New_York")

    assert times(quarter_past_two, utc(2026, 3, 7, 12, 0), 2) == [
        utc(2026, 3, 8, 7, 0),
        utc(2026, 3, 9, 6, 15),
    ]


def test_a_leap_day_schedule_waits_for_the_next_leap_year() -> None:
    assert times(Schedule(cron="0 0 29 2 *"), utc(2026, 1, 1), 2) == [
        utc(2028, 2, 29),
        utc(2032, 2, 29),
    ]


def schedule_node(**parameters: object) -> dict[str, object]:
    return {"nodes": [{"id": "tick", "type": "trigger.schedule", "parameters": parameters}]}


def save_problems(parameters: dict[str, object], rules: ScheduleRules = RULES) -> dict[str, str]:
    _, errors = parse_definition(schedule_node(**parameters), rules=rules)
    return {e.field: e.message for e in errors}


def test_a_valid_schedule_trigger_saves_and_runs() -> None:
    for parameters in (
        {"cron": "*/15 9-17 * JAN-MAR mon-fri", "timezone": "Europe/Berlin"},
        {"every_s": 60},
    ):
        definition, errors = parse_definition(schedule_node(**parameters), rules=RULES)

        assert errors == []
        assert runnability_problems(definition, {}) == []


@pytest.mark.parametrize(
    ("parameters", "field", "message"),
    [
        ({"cron": "61 * * * *"}, "cron", "is not a valid cron expression: bad minute"),
        ({"cron": "0 0 * * FUNDAY"}, "cron", "is not a valid cron expression: bad day-of-week"),
        ({"cron": "0 0 * * * *"}, "cron", "must have five fields"),
        ({"cron": "0 0 30 2 *"}, "cron", "is not a valid cron expression: bad day-of-month"),
        ({"every_s": 59}, "every_s", "must be at least 60 seconds"),
        ({"every_s": 1.5}, "every_s", "must be of type integer"),
        ({"every_s": 60, "timezone": "Mars/Olympus"}, "timezone", "is not a known IANA"),
        ({"every_s": 60, "timezone": "../../etc/passwd"}, "timezone", "is not a known IANA"),
        ({"cron": "{{ input.when }}"}, "cron", "must be a plain value, not a template"),
    ],
)
def test_a_bad_schedule_is_refused_at_save_time_with_a_pointer_to_it(
    parameters: dict[str, object], field: str, message: str
) -> None:
    problems = save_problems(parameters)

    where = f"/definition/nodes/0/parameters/{field}"
    assert list(problems) == [where]
    assert problems[where].startswith(message)


def test_cron_and_every_s_together_are_refused() -> None:
    assert save_problems({"cron": "0 * * * *", "every_s": 60}) == {
        "/definition/nodes/0/parameters": "must have cron or every_s, not both"
    }


def test_the_minimum_interval_is_the_rules_own() -> None:
    assert save_problems({"every_s": 1}, ScheduleRules(CALENDAR, min_interval_s=1)) == {}


def test_without_a_calendar_a_cron_expression_cannot_be_saved() -> None:
    assert list(save_problems({"cron": "0 * * * *"}, ScheduleRules())) == [
        "/definition/nodes/0/parameters/cron"
    ]


def test_a_schedule_trigger_without_cron_or_every_s_saves_but_cannot_run() -> None:
    definition, errors = parse_definition(schedule_node(timezone="UTC"), rules=RULES)

    assert errors == []
    assert [e.field for e in runnability_problems(definition, {})] == [
        "/definition/nodes/0/parameters"
    ]
