"""The one boundary where asyncpg and socket errors become project exceptions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import asyncpg

from campaignsvc.errors import (
    DatabaseUnavailable,
    ForeignKeyViolation,
    IntegrityConflict,
    InvalidData,
    QueryTimeout,
    SerializationConflict,
    StorageError,
    UniqueViolation,
)

# SQLSTATE classes that mean "the server or the connection went away", not "your query is wrong".
_UNAVAILABLE_SQLSTATE_PREFIXES = ("08", "57P")  # connection exceptions, operator intervention (shutdown)


def translate(exc: BaseException) -> StorageError | None:
    """The project exception for a driver exception, or None when it is not a database error."""
    if isinstance(exc, StorageError):
        return None
    if isinstance(exc, asyncpg.UniqueViolationError):
        return UniqueViolation(str(exc), exc.constraint_name)
    if isinstance(exc, asyncpg.ForeignKeyViolationError):
        return ForeignKeyViolation(str(exc), exc.constraint_name)
    if isinstance(exc, asyncpg.IntegrityConstraintViolationError):
        return IntegrityConflict(str(exc), getattr(exc, "constraint_name", None))
    if isinstance(exc, asyncpg.QueryCanceledError):
        return QueryTimeout(str(exc))
    if isinstance(exc, (asyncpg.SerializationError, asyncpg.DeadlockDetectedError)):
        return SerializationConflict(str(exc))
    if isinstance(exc, (asyncpg.DataError, asyncpg.exceptions.DataError)):
        return InvalidData(str(exc))
    if isinstance(exc, asyncpg.PostgresError):
        sqlstate = getattr(exc, "sqlstate", "") or ""
        if sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES):
            return DatabaseUnavailable(str(exc))
        return StorageError(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (asyncpg.InterfaceError, asyncpg.exceptions.ConnectionDoesNotExistError)):
        return DatabaseUnavailable(str(exc) or type(exc).__name__)
    if isinstance(exc, (OSError, ConnectionError)):
        return DatabaseUnavailable(f"cannot reach PostgreSQL: {exc}")
    if isinstance(exc, TimeoutError):
        return DatabaseUnavailable("timed out waiting for a PostgreSQL connection")
    return None


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Re-raise driver errors as project exceptions, keeping the original as ``__cause__``."""
    try:
        yield
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        raise mapped from exc
