"""The project's exception tree.

Driver errors (asyncpg, aio-pika, httpx) are translated into these at exactly one boundary each
(``storage/errors.py``, ``integrations/``) and raised ``from`` the original.
"""

from __future__ import annotations


class CampaignsvcError(Exception):
    """Root of every error this project raises on purpose."""


class ConfigError(CampaignsvcError):
    """An environment variable is missing or invalid; raised at start, names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable
        self.problem = problem


class StorageError(CampaignsvcError):
    """A database operation failed."""


class DatabaseUnavailable(StorageError):
    """PostgreSQL cannot be reached, is starting or shutting down, or the connection was lost
    mid-operation. Retrying later may succeed."""


class QueryTimeout(StorageError):
    """PostgreSQL cancelled a statement because it ran past ``statement_timeout``."""


class IntegrityConflict(StorageError):
    """A constraint rejected the write (unique, foreign key, check). ``constraint`` names it."""

    def __init__(self, message: str, constraint: str | None) -> None:
        super().__init__(message)
        self.constraint = constraint


class UniqueViolation(IntegrityConflict):
    """A row with the same unique key exists."""


class ForeignKeyViolation(IntegrityConflict):
    """A referenced row does not exist (or is still referenced on delete)."""


class SerializationConflict(StorageError):
    """A concurrent transaction won (serialization failure or deadlock); the operation may be retried."""


class InvalidData(StorageError):
    """PostgreSQL rejected a value (bad cast, too long for the column). Input validation should have
    caught it first, so seeing this is a bug at the edge."""


class MigrationError(CampaignsvcError):
    """A migration file could not be applied, or an applied one was changed afterwards."""


class EmbeddedPostgresError(CampaignsvcError):
    """The embedded PostgreSQL server could not be initialised or started."""


class BrokerError(CampaignsvcError):
    """A RabbitMQ operation failed. Raised as this class itself, the broker refused it for a reason
    waiting will not fix (access refused, an exchange or queue declared with other arguments)."""


class BrokerUnavailable(BrokerError):
    """RabbitMQ cannot be reached or the connection was lost; events wait in the outbox (or on the
    broker) and the robust connection keeps trying."""


class InvalidEvent(CampaignsvcError):
    """An inbound event is not JSON or not a v1 envelope; ``reason`` says what is wrong and is what the
    dead-letter queue records."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
