"""A private PostgreSQL cluster for a scenario that restarts the server: ``initdb`` + ``pg_ctl`` from the
machine's PostgreSQL binaries, in a temporary folder, on a free port. The shared server on 5432 is never
touched. PostgreSQL refuses to run as root, so as root every command runs as the ``postgres`` user."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

import trio

from tests.conftest import free_port


def _bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    assert found, f"no {name} under /usr/lib/postgresql/*/bin (install the PostgreSQL server package)"
    return found[-1]


class PrivateCluster:
    def __init__(self) -> None:
        # Not under pytest's tmp_path: that is root's 0700 folder, which the postgres user cannot enter.
        self.root = Path(tempfile.mkdtemp(prefix="csvc-faults-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self._as:
            shutil.chown(self.root, "postgres")

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    async def _run(self, *argv: str) -> None:
        result = await trio.run_process(
            [*self._as, *argv], capture_stdout=True, capture_stderr=True, check=False
        )
        if result.returncode != 0:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise AssertionError(
                f"{argv[0]} failed ({result.returncode}): {result.stderr.decode(errors='replace')}\n{tail}"
            )

    async def init(self) -> None:
        await self._run(
            _bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"
        )

    async def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
            " -c synchronous_commit=off -c max_connections=100"
        )
        await self._run(
            _bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start"
        )

    async def stop(self, mode: str = "fast") -> None:
        await self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    async def close(self) -> None:
        with trio.CancelScope(shield=True):
            if (self.data / "postmaster.pid").exists():
                await self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            shutil.rmtree(self.root, ignore_errors=True)
