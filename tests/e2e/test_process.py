"""The real ``campaignsvc`` process: serve, signals, migrate, configuration errors, embedded PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from campaignsvc.storage import migrate
from tests.conftest import ROOT, start_service, stop_service


def _run_cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "campaignsvc", *args],
        env={**os.environ, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


async def test_serve__answers_health_and_stops_cleanly_on_sigterm(service):
    async with httpx.AsyncClient(base_url=service.base_url) as http:
        health = await http.get("/health")
    assert health.status_code == 200
    assert health.json()["checks"]["db"] == "ok"

    started = time.monotonic()
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(15) == 0
    assert time.monotonic() - started < 10
    log = service.log()
    assert "service.signal" in log and "service.stopped" in log
    assert "Traceback" not in log


async def test_serve__sigint_also_stops_cleanly(database_url, tmp_path):
    svc = await start_service({"DATABASE_URL": database_url}, tmp_path / "s.log")
    svc.process.send_signal(signal.SIGINT)
    assert svc.process.wait(15) == 0


def test_cli__invalid_setting_fails_at_start_naming_the_variable():
    result = _run_cli("serve", env={"PORT": "not-a-port"}, timeout=30)
    assert result.returncode == 2
    assert "PORT: must be an integer" in result.stderr


async def test_cli__migrate_external_creates_only_campaign_tables_and_is_idempotent(empty_database_url):
    env = {"DATABASE_URL": empty_database_url, "CRM_SCHEMA": "external", "LOG_LEVEL": "warning"}
    first = _run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    expected = len(migrate.discover(crm_schema="external"))
    assert f"applied {expected} migration(s): campaign/0001_campaign_tables.sql" in first.stdout
    second = _run_cli("migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "applied 0 migration(s)" in second.stdout


def test_cli__unreachable_database_is_reported_without_a_traceback():
    result = _run_cli("migrate", env={"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"}, timeout=60)
    assert result.returncode == 1
    assert "DatabaseUnavailable" in result.stderr
    assert "Traceback" not in result.stderr


async def test_embedded__no_database_url_starts_reuses_and_stops_embedded_postgres(tmp_path):
    env = {"DATABASE_URL": "", "CAMPAIGNSVC_DATA_DIR": str(tmp_path / "data"), "LOG_LEVEL": "warning"}
    first = _run_cli("migrate", env=env)
    assert first.returncode == 0, first.stderr
    assert f"applied {len(migrate.discover())} migration(s)" in first.stdout
    assert (tmp_path / "data" / "pg" / "PG_VERSION").exists()
    # Stopped on exit: no server left running on that folder.
    assert not (tmp_path / "data" / "pg" / "postmaster.pid").exists()

    second = _run_cli("migrate", env=env)
    assert second.returncode == 0, second.stderr
    assert "applied 0 migration(s)" in second.stdout

    svc = await start_service(dict(env), tmp_path / "serve.log")
    try:
        async with httpx.AsyncClient(base_url=svc.base_url) as http:
            assert (await http.get("/health")).json()["checks"]["db"] == "ok"
    finally:
        assert stop_service(svc) == 0
    assert not (tmp_path / "data" / "pg" / "postmaster.pid").exists()
