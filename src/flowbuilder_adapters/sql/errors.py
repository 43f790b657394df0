"""Driver errors, translated at the adapter's edge into the core's error kinds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import exc as sa_exc

from flowbuilder_core.shared.errors import DependencyUnavailableError

try:
    import asyncpg  # only its exception types are used

    _ASYNCPG_UNAVAILABLE: tuple[type[BaseException], ...] = (
        asyncpg.PostgresConnectionError,
        asyncpg.InterfaceError,
        asyncpg.exceptions.OperatorInterventionError,
    )
except ImportError:  # the [sqlite] extra has no asyncpg, so no asyncpg error can be raised
    _ASYNCPG_UNAVAILABLE = ()

UNAVAILABLE = "The database is unavailable."

# Raised by drivers when the server cannot be reached, went away, or refuses work for now
# (shutting down, starting up, cancelled). Note that TimeoutError is an OSError.
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    OSError,
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,  # no pooled connection became free in time
    *_ASYNCPG_UNAVAILABLE,
)


def is_unavailable(error: BaseException) -> bool:
    """Whether `error` (or the driver error it wraps) means the database cannot be used now."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _UNAVAILABLE_TYPES):
            return True
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


@asynccontextmanager
async def translate_errors() -> AsyncIterator[None]:
    """Turn an unreachable or lost database into DependencyUnavailableError (a 503).

    The message names no statement or parameter; the original stays chained for the log (the
    engine hides parameters from it).
    """
    try:
        yield
    except DependencyUnavailableError:
        raise
    except Exception as error:
        if is_unavailable(error):
            raise DependencyUnavailableError(UNAVAILABLE) from error
        raise
