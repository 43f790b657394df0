"""The schedule settings come from the environment (docs/API.md §5), within their bounds, and
reach the use cases: the minimum interval that saves check, and a scheduler tick's limits."""

from __future__ import annotations

import pytest
from dishka import make_async_container

from flowbuilder_adapters.settings import Mode, SettingsError, load_settings
from flowbuilder_adapters.settings_schedules import ScheduleSettings
from flowbuilder_adapters.wiring import CoreProvider, MemoryProvider
from flowbuilder_core.nodes.schedule import ScheduleRules
from flowbuilder_core.triggers.schedules import SchedulerLimits


def test_the_schedule_settings_default_to_the_documented_values() -> None:
    settings = load_settings({}, Mode.EMBEDDED)

    assert settings.schedules == ScheduleSettings(
        tick_s=1.0, batch=100, min_interval_s=60, catch_up_s=3600
    )


def test_the_schedule_settings_are_read_from_the_environment() -> None:
    env = {
        "SCHEDULE_TICK_S": "0.25",
        "SCHEDULE_BATCH": "7",
        "SCHEDULE_MIN_INTERVAL_S": "1",
        "SCHEDULE_CATCHUP_S": "600",
    }

    settings = load_settings(env, Mode.EMBEDDED)

    assert settings.schedules == ScheduleSettings(0.25, 7, 1, 600)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("SCHEDULE_TICK_S", "0", "must be a positive number"),
        ("SCHEDULE_TICK_S", "61", "must be at most 60"),
        ("SCHEDULE_BATCH", "0", "must be a positive integer"),
        ("SCHEDULE_BATCH", "10001", "must be at most 10000"),
        ("SCHEDULE_MIN_INTERVAL_S", "0.5", "must be a positive integer"),
        ("SCHEDULE_CATCHUP_S", "604801", "must be at most 604800"),
    ],
)
def test_an_invalid_schedule_setting_is_a_settings_error_naming_it(
    name: str, value: str, problem: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value}, Mode.EMBEDDED)

    assert caught.value.problems == [f"{name}: {problem}"]


async def test_the_core_provider_hands_the_settings_to_the_use_cases() -> None:
    container = make_async_container(
        CoreProvider(min_interval_s=5, scheduler=SchedulerLimits(batch=3, catch_up_s=30)),
        MemoryProvider(),
    )
    try:
        rules, limits = await container.get(ScheduleRules), await container.get(SchedulerLimits)
    finally:
        await container.close()

    assert rules.min_interval_s == 5
    assert rules.calendar is not None
    assert rules.calendar.problem("0 0 * * *") is None
    assert limits == SchedulerLimits(batch=3, catch_up_s=30)
