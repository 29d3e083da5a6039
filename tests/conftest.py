"""Fixtures shared by every tier.

- ``aio_loop``: the trio-asyncio loop (asyncpg and aio-pika need it); pytest-trio runs a test's fixtures
  in one context, so the loop a fixture opens is the test's loop.
- ``pg_template`` (session): a database built once by the real migrations; ``database_url``: a clone of
  it per test; ``store``: the pool on that clone; ``org``: an organization with an owner.
- ``amqp``: the real RabbitMQ with names unique to the test.
- ``service``: the real ``campaignsvc serve`` process on a free port, ready.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import attrs
import httpx
import pytest
import trio
import trio_asyncio

from campaignsvc import logs
from campaignsvc.config import Settings
from campaignsvc.http.app import create_app
from campaignsvc.http.context import Services
from campaignsvc.runtime import build
from campaignsvc.storage.store import Store
from tests import pg
from tests.factories import Org, make_org

ROOT = Path(__file__).resolve().parents[1]
AMQP_URL = os.environ.get("CAMPAIGNSVC_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture(scope="session", autouse=True)
def quiet_logs() -> None:
    """Warnings and errors only, readable; pytest shows them for failing tests."""
    logs.configure("warning", "console")


@pytest.fixture(scope="session", autouse=True)
def test_servers(request: pytest.FixtureRequest) -> Iterator[None]:
    """PostgreSQL and RabbitMQ for the collected tests, started for the session when none answers, or
    the run stops saying what is missing (tests/servers.py)."""
    from tests import servers

    with servers.for_session(request.session.items, request.config):
        yield


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    name = pg.build_template("standalone")
    yield name
    pg.drop_database_sync(name)


@pytest.fixture
async def aio_loop() -> AsyncIterator[object]:
    async with trio_asyncio.open_loop() as loop:
        yield loop


@pytest.fixture
async def database_url(aio_loop: object, pg_template: str) -> AsyncIterator[str]:
    name = await pg.clone(pg_template)
    try:
        yield pg.url_for(name)
    finally:
        await pg.drop(name)


@pytest.fixture
async def empty_database_url(aio_loop: object) -> AsyncIterator[str]:
    name = await pg.create_empty()
    try:
        yield pg.url_for(name)
    finally:
        await pg.drop(name)


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    async with Store.open(database_url, min_size=1, max_size=5) as s:
        yield s


@pytest.fixture
async def org(store: Store) -> Org:
    return await make_org(store)


@pytest.fixture
def settings() -> Settings:
    """Settings for in-process tests: no gaps, nothing external."""
    return Settings.from_env({}, min_gap_ms_same_bd_account=0, log_level="warning")


@pytest.fixture
async def services(store: Store, settings: Settings, nursery: trio.Nursery) -> Services:
    runtime = build(settings, store)
    await runtime.start(nursery)
    return runtime.services


@pytest.fixture
async def client(services: Services):
    """The quart test client over the real app, store and supervisor (no sockets)."""
    app = create_app(services)
    return app.test_client()


@attrs.frozen
class AmqpNames:
    url: str
    exchange: str
    queue: str


@pytest.fixture
def amqp() -> AmqpNames:
    suffix = uuid.uuid4().hex[:10]
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError as exc:  # fail loudly: these tests need the real broker
        pytest.fail(f"RabbitMQ is not reachable on 127.0.0.1:5672 ({exc}); start it (see DEVELOPERS.md)")
    return AmqpNames(url=AMQP_URL, exchange=f"events-test-{suffix}", queue=f"campaign-service-test-{suffix}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@attrs.define
class ServiceProcess:
    process: subprocess.Popen
    base_url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


async def start_service(
    env: dict[str, str], log_path: Path, *, args: tuple[str, ...] = ("serve",), ready_timeout: float = 30.0
) -> ServiceProcess:
    """Start ``campaignsvc`` as a real process and wait until ``/ready`` answers 200."""
    port = int(env.setdefault("PORT", str(free_port())))
    env.setdefault("HOST", "127.0.0.1")
    full_env = {**os.environ, **env}
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaignsvc", *args],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    base_url = f"http://127.0.0.1:{port}"
    service = ServiceProcess(process=process, base_url=base_url, log_path=log_path)
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as http:
        with trio.move_on_after(ready_timeout) as scope:
            while True:
                if process.poll() is not None:
                    raise AssertionError(f"service exited with {process.returncode}:\n{service.log()}")
                try:
                    if (await http.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await trio.sleep(0.1)
    if scope.cancelled_caught:
        process.kill()
        raise AssertionError(f"service not ready within {ready_timeout}s:\n{service.log()}")
    return service


def stop_service(service: ServiceProcess, timeout: float = 15.0) -> int:
    if service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(timeout)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
    return service.process.returncode


@pytest.fixture
async def service(database_url: str, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    svc = await start_service(
        {"DATABASE_URL": database_url, "CAMPAIGN_MIN_GAP_MS_SAME_BD_ACCOUNT": "0", "LOG_LEVEL": "info"},
        tmp_path / "service.log",
    )
    try:
        yield svc
    finally:
        stop_service(svc)
