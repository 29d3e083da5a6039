"""Real processes for end-to-end tests: the sandbox Messaging Service, and an adapter that lets the
API helpers of tests/integration drive a real service over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.conftest import ROOT


async def start_sandbox_process(log_path: Path, port: int, *args: str) -> subprocess.Popen:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaignsvc", "sandbox", "--port", str(port), *args],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "LOG_LEVEL": "warning"},
        )
    async with httpx.AsyncClient() as http:
        with trio.fail_after(20):
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200:
                        return process
                except httpx.TransportError:
                    await trio.sleep(0.1)


class HttpClient:
    """The part of the quart test client that ``tests.integration.dispatch_helpers.Env`` uses, over httpx."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self._http = http

    async def open(
        self, path: str, method: str, json: Any = None, headers: Any = None, **kw: Any
    ) -> _Response:
        return _Response(await self._http.request(method, path, json=json, headers=headers))


class _Response:
    def __init__(self, response: httpx.Response) -> None:
        self.status_code = response.status_code
        self._response = response

    async def get_json(self) -> Any:
        return self._response.json() if self._response.content else None
