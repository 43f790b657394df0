"""The schedule settings: how often a scheduler ticks, how much one tick does, how short an
interval may be, and how far back a missed time is still run (docs/API.md §5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

MAX_TICK_S = 60.0
MAX_BATCH = 10_000
MAX_CATCH_UP_S = 7 * 24 * 3600


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """`tick_s` (SCHEDULE_TICK_S): seconds between a scheduler's ticks; `batch`
    (SCHEDULE_BATCH): due schedules one tick handles at most; `min_interval_s`
    (SCHEDULE_MIN_INTERVAL_S): the shortest `every_s`; `catch_up_s` (SCHEDULE_CATCHUP_S):
    after downtime, the latest missed time runs if it is younger than this."""

    tick_s: float = 1.0
    batch: int = 100
    min_interval_s: int = 60
    catch_up_s: int = 3600


class _Reader(Protocol):
    def positive_int(self, name: str, default: int) -> int: ...

    def positive_number(self, name: str, default: float) -> float: ...

    def refuse(self, name: str, message: str) -> None: ...


def read_schedule_settings(reader: _Reader) -> ScheduleSettings:
    defaults = ScheduleSettings()
    tick_s = reader.positive_number("SCHEDULE_TICK_S", defaults.tick_s)
    batch = reader.positive_int("SCHEDULE_BATCH", defaults.batch)
    min_interval_s = reader.positive_int("SCHEDULE_MIN_INTERVAL_S", defaults.min_interval_s)
    catch_up_s = reader.positive_int("SCHEDULE_CATCHUP_S", defaults.catch_up_s)
    for name, value, maximum in (
        ("SCHEDULE_TICK_S", tick_s, MAX_TICK_S),
        ("SCHEDULE_BATCH", batch, MAX_BATCH),
        ("SCHEDULE_CATCHUP_S", catch_up_s, MAX_CATCH_UP_S),
    ):
        if value > maximum:
            reader.refuse(name, f"must be at most {maximum:g}")
    return ScheduleSettings(
        tick_s=min(tick_s, MAX_TICK_S),
        batch=min(batch, MAX_BATCH),
        min_interval_s=min_interval_s,
        catch_up_s=min(catch_up_s, MAX_CATCH_UP_S),
    )
