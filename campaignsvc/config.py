"""Settings from environment variables, in one frozen attrs object.

Every name of the original service (original-v1 §1.1) that still means something is honoured with that
meaning; new knobs are listed in the README. Invalid values fail at start with a :class:`ConfigError`
that names the variable.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import attrs

from campaignsvc.errors import ConfigError

T = TypeVar("T")

CRM_SCHEMAS = ("standalone", "external")
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")


@attrs.frozen(kw_only=True)
class Settings:
    # Where and how we listen.
    host: str = "0.0.0.0"
    port: int = 3012
    # None means: start the embedded PostgreSQL in ``data_dir``.
    database_url: str | None = None
    data_dir: Path = Path(".campaignsvc")
    crm_schema: str = "standalone"
    db_pool_min: int = 20
    db_pool_max: int = 20
    # Peers.
    messaging_service_url: str = "http://localhost:3003"
    pipeline_service_url: str = "http://localhost:3008"
    rabbitmq_url: str | None = None
    rabbitmq_exchange: str = "events"
    rabbitmq_queue: str = "campaign-service"
    internal_auth_secret: str | None = None
    # POST /api/campaigns/events: the credential of services that deliver events over HTTP.
    events_ingest_secret: str | None = None
    messaging_timeout_s: float = 150.0
    # Messaging calls in flight at once, over as many pooled keep-alive connections (docs/operations.md).
    messaging_max_connections: int = 64
    # Throttling (original-v1 §1.1).
    min_gap_ms_same_bd_account: int = 360_000
    max_sends_per_account_per_day: int = 20
    retry_429_after_minutes: int = 30
    send_interval_ms: int = 60_000
    # Send-path integrity (docs/semantics.md, "Send-path integrity").
    gap_safety_margin_ms: int = 20
    stranded_after_s: float = 180.0
    reconcile_interval_s: float = 30.0
    read_sync_interval_s: float = 15.0
    account_refresh_s: float = 5.0
    # Delivery (SPEC R-DEL).
    in_doubt_retry_after_s: int = 900
    # Several instances on one database (docs/architecture.md, "Several instances").
    instance_id: str = "campaignsvc"
    lease_s: float = 15.0
    max_send_attempts: int = 5
    peer_flood_block_hours: float = 24.0
    # Ramp-up (docs/semantics.md, "Ramp-up"): a FLOOD_WAIT longer than this, or any PEER_FLOOD, halves a
    # ramped account's budget, held for the cool-off before it grows again.
    ramp_step_down_flood_s: int = 300
    ramp_cool_off_hours: float = 72.0
    reply_wait_hours: float = 168.0
    # Templates (SPEC R-TPL-1): what the default {{ai.personalize}} stub renders.
    ai_personalize_text: str = ""
    # Audience import (from-csv, from-usernames): the largest request body and the most rows one accepts.
    csv_import_max_bytes: int = 5 * 1024 * 1024
    csv_import_max_rows: int = 50_000
    # Operations.
    shutdown_grace_s: float = 10.0
    log_level: str = "info"
    log_format: str = "json"

    @property
    def embedded_pg_dir(self) -> Path:
        return self.data_dir / "pg"

    @property
    def min_gap_s(self) -> float:
        return self.min_gap_ms_same_bd_account / 1000.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read settings from ``env`` (default ``os.environ``); ``overrides`` win over the environment."""
        env = os.environ if env is None else env
        r = _Reader(env)
        pool_max = r.integer("DB_POOL_MAX", 20, low=1, high=200)
        values: dict[str, Any] = dict(
            host=r.text("HOST", "0.0.0.0"),
            port=r.integer("PORT", 3012, low=0, high=65535),
            database_url=r.url("DATABASE_URL", ("postgres", "postgresql")),
            data_dir=Path(r.text("CAMPAIGNSVC_DATA_DIR", ".campaignsvc")),
            crm_schema=r.choice("CRM_SCHEMA", "standalone", CRM_SCHEMAS),
            # Every connection is opened at start (the default): a connection opened under load costs a
            # backend start and its first queries' planning, which the first sends after boot then waited for.
            db_pool_min=r.integer("DB_POOL_MIN", pool_max, low=0, high=200),
            db_pool_max=pool_max,
            messaging_service_url=r.url("MESSAGING_SERVICE_URL", ("http", "https"))
            or "http://localhost:3003",
            pipeline_service_url=r.url("PIPELINE_SERVICE_URL", ("http", "https")) or "http://localhost:3008",
            rabbitmq_url=r.url("RABBITMQ_URL", ("amqp", "amqps")),
            rabbitmq_exchange=r.text("RABBITMQ_EXCHANGE", "events"),
            rabbitmq_queue=r.text("RABBITMQ_QUEUE", "campaign-service"),
            internal_auth_secret=r.text("INTERNAL_AUTH_SECRET", "") or None,
            events_ingest_secret=r.text("EVENTS_INGEST_SECRET", "") or None,
            messaging_timeout_s=r.integer(
                "CAMPAIGN_MESSAGING_HTTP_TIMEOUT_MS", 150_000, low=100, high=3_600_000
            )
            / 1000.0,
            messaging_max_connections=r.integer("CAMPAIGN_MESSAGING_MAX_CONNECTIONS", 64, low=1, high=1000),
            min_gap_ms_same_bd_account=r.integer(
                "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT", 360_000, low=0, high=86_400_000
            ),
            max_sends_per_account_per_day=r.integer(
                "CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY", 20, low=0, high=100_000
            ),
            retry_429_after_minutes=r.integer("CAMPAIGN_429_RETRY_AFTER_MINUTES", 30, low=0, high=10_080),
            send_interval_ms=r.integer("CAMPAIGN_SEND_INTERVAL_MS", 60_000, low=100, high=86_400_000),
            gap_safety_margin_ms=r.integer("CAMPAIGN_GAP_SAFETY_MARGIN_MS", 20, low=0, high=60_000),
            stranded_after_s=r.integer("CAMPAIGN_STRANDED_AFTER_MS", 180_000, low=1000, high=86_400_000)
            / 1000.0,
            reconcile_interval_s=r.integer("CAMPAIGN_RECONCILE_INTERVAL_MS", 30_000, low=100, high=3_600_000)
            / 1000.0,
            read_sync_interval_s=r.integer("CAMPAIGN_READ_SYNC_INTERVAL_MS", 15_000, low=100, high=3_600_000)
            / 1000.0,
            account_refresh_s=r.integer("CAMPAIGN_ACCOUNT_REFRESH_MS", 5_000, low=100, high=3_600_000)
            / 1000.0,
            in_doubt_retry_after_s=r.integer("IN_DOUBT_RETRY_AFTER_SECONDS", 900, low=0, high=604_800),
            instance_id=r.text("INSTANCE_ID", "") or socket.gethostname() or "campaignsvc",
            lease_s=float(r.integer("LEASE_SECONDS", 15, low=2, high=3600)),
            max_send_attempts=r.integer("MAX_SEND_ATTEMPTS", 5, low=1, high=100),
            peer_flood_block_hours=r.number("PEER_FLOOD_BLOCK_HOURS", 24.0, low=0.0, high=720.0),
            ramp_step_down_flood_s=r.integer("CAMPAIGN_RAMP_STEP_DOWN_FLOOD_S", 300, low=0, high=604_800),
            ramp_cool_off_hours=r.number("CAMPAIGN_RAMP_COOL_OFF_HOURS", 72.0, low=0.0, high=8760.0),
            reply_wait_hours=r.number("REPLY_WAIT_HOURS", 168.0, low=0.0, high=8760.0),
            ai_personalize_text=r.text("AI_PERSONALIZE_TEXT", ""),
            csv_import_max_bytes=r.integer("CSV_IMPORT_MAX_BYTES", 5 * 1024 * 1024, low=1024, high=1 << 30),
            csv_import_max_rows=r.integer("CSV_IMPORT_MAX_ROWS", 50_000, low=1, high=10_000_000),
            shutdown_grace_s=r.number("SHUTDOWN_GRACE_SECONDS", 10.0, low=0.0, high=600.0),
            log_level=r.choice("LOG_LEVEL", "info", LOG_LEVELS),
            log_format=r.choice("LOG_FORMAT", "json", LOG_FORMATS),
        )
        values.update(overrides)
        settings = cls(**values)
        if settings.db_pool_min > settings.db_pool_max:
            raise ConfigError("DB_POOL_MIN", f"must not exceed DB_POOL_MAX ({settings.db_pool_max})")
        return settings


class _Reader:
    """Parses one variable at a time; every failure names the variable and the bad value."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None  # an empty string means "use the default", as the original did

    def text(self, name: str, default: str) -> str:
        raw = self._raw(name)
        return default if raw is None else raw

    def _parse(self, name: str, default: T, parse: Callable[[str], T], what: str) -> T:
        raw = self._raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError:
            raise ConfigError(name, f"must be {what}, got {raw!r}") from None

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self._parse(name, default, int, "an integer")
        if not low <= value <= high:
            raise ConfigError(name, f"must be between {low} and {high}, got {value}")
        return value

    def number(self, name: str, default: float, *, low: float, high: float) -> float:
        value = self._parse(name, default, float, "a number")
        if not low <= value <= high:  # also rejects nan
            raise ConfigError(name, f"must be between {low} and {high}, got {value}")
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def url(self, name: str, schemes: tuple[str, ...]) -> str | None:
        raw = self._raw(name)
        if raw is None:
            return None
        try:
            parts = urlsplit(raw)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ConfigError(name, f"is not a valid URL ({exc})") from None
        if parts.scheme not in schemes:
            raise ConfigError(name, f"must start with {' or '.join(s + '://' for s in schemes)}")
        if not parts.netloc and "host=" not in parts.query:
            raise ConfigError(name, "has no host")
        return raw
