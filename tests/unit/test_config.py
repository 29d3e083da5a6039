from __future__ import annotations

from pathlib import Path

import pytest

from campaignsvc.config import Settings
from campaignsvc.errors import ConfigError


def test_settings__defaults_match_the_original_service():
    s = Settings.from_env({})
    assert s.port == 3012
    assert s.database_url is None
    assert s.crm_schema == "standalone"
    assert s.min_gap_ms_same_bd_account == 360_000
    assert s.max_sends_per_account_per_day == 20
    assert s.retry_429_after_minutes == 30
    assert s.messaging_timeout_s == 150.0
    assert s.in_doubt_retry_after_s == 900
    assert s.max_send_attempts == 5
    assert s.rabbitmq_url is None
    assert s.internal_auth_secret is None
    assert s.embedded_pg_dir == Path(".campaignsvc/pg")


def test_settings__reads_every_variable():
    s = Settings.from_env(
        {
            "PORT": "8080",
            "HOST": "127.0.0.1",
            "DATABASE_URL": "postgresql://u:p@db:5432/crm",
            "MESSAGING_SERVICE_URL": "http://messaging:3003",
            "PIPELINE_SERVICE_URL": "https://pipeline",
            "RABBITMQ_URL": "amqp://guest:guest@mq:5672/",
            "INTERNAL_AUTH_SECRET": "s3cret",
            "CRM_SCHEMA": "External",
            "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "0",
            "CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY": "40",
            "CAMPAIGN_429_RETRY_AFTER_MINUTES": "5",
            "CAMPAIGN_MESSAGING_HTTP_TIMEOUT_MS": "2500",
            "IN_DOUBT_RETRY_AFTER_SECONDS": "60",
            "MAX_SEND_ATTEMPTS": "3",
            "CAMPAIGNSVC_DATA_DIR": "/var/lib/campaignsvc",
        }
    )
    assert (s.port, s.host) == (8080, "127.0.0.1")
    assert s.database_url == "postgresql://u:p@db:5432/crm"
    assert s.messaging_service_url == "http://messaging:3003"
    assert s.pipeline_service_url == "https://pipeline"
    assert s.rabbitmq_url == "amqp://guest:guest@mq:5672/"
    assert s.internal_auth_secret == "s3cret"
    assert s.crm_schema == "external"
    assert s.min_gap_ms_same_bd_account == 0
    assert s.max_sends_per_account_per_day == 40
    assert s.retry_429_after_minutes == 5
    assert s.messaging_timeout_s == 2.5
    assert s.in_doubt_retry_after_s == 60
    assert s.max_send_attempts == 3
    assert s.embedded_pg_dir == Path("/var/lib/campaignsvc/pg")


def test_settings__empty_values_mean_default():
    s = Settings.from_env({"CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY": "", "PORT": "  ", "DATABASE_URL": ""})
    assert s.max_sends_per_account_per_day == 20
    assert s.port == 3012
    assert s.database_url is None


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("PORT", "abc", "must be an integer"),
        ("PORT", "70000", "between 0 and 65535"),
        ("CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT", "-1", "between"),
        ("CAMPAIGN_MAX_SENDS_PER_ACCOUNT_PER_DAY", "1.5", "must be an integer"),
        ("CAMPAIGN_429_RETRY_AFTER_MINUTES", "ten", "must be an integer"),
        ("CRM_SCHEMA", "shared", "standalone, external"),
        ("DATABASE_URL", "mysql://x/y", "postgres://"),
        ("DATABASE_URL", "postgresql://host:notaport/db", "not a valid URL"),
        ("MESSAGING_SERVICE_URL", "messaging:3003", "http://"),
        ("RABBITMQ_URL", "http://mq", "amqp://"),
        ("PEER_FLOOD_BLOCK_HOURS", "nan", "between"),
        ("MAX_SEND_ATTEMPTS", "0", "between 1 and 100"),
        ("LOG_FORMAT", "xml", "json, console"),
    ],
)
def test_settings__invalid_value_names_the_variable(variable, value, fragment):
    with pytest.raises(ConfigError) as err:
        Settings.from_env({variable: value})
    assert err.value.variable == variable
    assert str(err.value).startswith(f"{variable}: ")
    assert fragment in str(err.value)


def test_settings__pool_bounds_are_consistent():
    with pytest.raises(ConfigError, match="DB_POOL_MIN"):
        Settings.from_env({"DB_POOL_MIN": "10", "DB_POOL_MAX": "5"})


def test_settings__unix_socket_database_url_is_accepted():
    url = "postgresql://postgres:@/campaignsvc?host=/tmp/pg"
    assert Settings.from_env({"DATABASE_URL": url}).database_url == url


def test_settings__overrides_win_over_environment():
    assert Settings.from_env({"PORT": "1"}, port=2).port == 2


def test_settings__pool_opens_every_connection_at_start_unless_told():
    assert Settings.from_env({}).db_pool_min == 20
    assert Settings.from_env({"DB_POOL_MAX": "5"}).db_pool_min == 5
    assert Settings.from_env({"DB_POOL_MAX": "5", "DB_POOL_MIN": "1"}).db_pool_min == 1
