"""Which database errors mean "not now" (503) rather than "wrong" (a bug, 500)."""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy import exc

from usermgmt.adapters.sqlalchemy.engine import is_unavailable


def dbapi_error(driver_error: BaseException) -> exc.DBAPIError:
    class AdaptedError(Exception):
        pass

    adapted = AdaptedError(str(driver_error))
    adapted.__cause__ = driver_error
    return exc.DBAPIError("SELECT 1", None, adapted)


@pytest.mark.parametrize(
    "driver_error",
    [
        asyncpg.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg.CannotConnectNowError("the database system is starting up"),
        asyncpg.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg.ConnectionDoesNotExistError("connection does not exist"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_resource_and_connection_errors_are_unavailability(driver_error: BaseException) -> None:
    assert is_unavailable(dbapi_error(driver_error))


@pytest.mark.parametrize(
    "driver_error",
    [asyncpg.UndefinedColumnError("column x does not exist"), asyncpg.UniqueViolationError("duplicate key")],
    ids=lambda e: type(e).__name__,
)
def test_query_errors_are_not(driver_error: BaseException) -> None:
    assert not is_unavailable(dbapi_error(driver_error))
