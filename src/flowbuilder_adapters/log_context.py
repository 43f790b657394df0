"""What the log lines of a piece of work carry and hide: the execution a worker is running, and
the secret values that no line may show (configured secrets for the whole process, the
credential values a run resolved for that run).

The adapters that know these things say so here; the log formatter (in the HTTP package's
observability module, through the wiring) reads them. Context variables follow asyncio tasks,
so a run's heartbeat and its node calls see the run's context."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

MIN_HIDDEN_LENGTH = 4
"""Shorter values are not hidden: replacing every `ab` in a line would garble it and hide
nothing worth hiding (the HTTP node masks echoed credential values from the same length)."""

_execution_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "execution_id", default=None
)
_run_secrets: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "run_secrets", default=None
)
_process_secrets: set[str] = set()


def current_execution_id() -> str | None:
    """The id of the execution whose run is in progress in this context; None outside one."""
    return _execution_id.get()


@contextmanager
def running(execution_id: object) -> Iterator[None]:
    """Within: log lines carry `execution_id`, and hide what `hide_in_this_run` was given."""
    execution_token = _execution_id.set(str(execution_id))
    secrets_token = _run_secrets.set(set())
    try:
        yield
    finally:
        _run_secrets.reset(secrets_token)
        _execution_id.reset(execution_token)


def hide_everywhere(values: Iterable[str]) -> None:
    """Values no log line of this process may show (the configured secrets)."""
    _process_secrets.update(v for v in values if len(v) >= MIN_HIDDEN_LENGTH)


def hide_in_this_run(values: Iterable[str]) -> None:
    """Values no log line of the run in progress may show (its credentials' values); outside
    a run, nothing to do: no line is logged with them there."""
    secrets = _run_secrets.get()
    if secrets is not None:
        secrets.update(v for v in values if len(v) >= MIN_HIDDEN_LENGTH)


def hidden_values() -> list[str]:
    """Every value to hide in the current context, longest first (so that a secret that
    contains another is hidden whole)."""
    values = _process_secrets | (_run_secrets.get() or set())
    return sorted(values, key=len, reverse=True)
