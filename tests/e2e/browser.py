"""Headless Chromium for the browser tests, driven over the Chrome DevTools Protocol.

Debian's ``chromium`` is installed by ``make browser`` (a prerequisite of ``make test``); when it is
missing and we are root with apt-get, :func:`chromium_path` installs it. The protocol client is small:
one page target, JSON commands over a websocket (wsproto, which hypercorn already brings, on a trio TCP
stream), events kept for inspection.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    CloseConnection,
    Message,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)

CHROMIUM = "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


def chromium_path() -> str:
    """Debian's chromium, installed quietly when missing (root with apt-get only), else the test fails."""
    if os.access(CHROMIUM, os.X_OK):
        return CHROMIUM
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(command, env=env, check=False, capture_output=True, timeout=900)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            "Debian's chromium is not installed: run `make browser` (as root), or apt-get install chromium"
        )
    return CHROMIUM


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


class CdpError(Exception):
    """Chromium answered a DevTools command with an error."""


class Page:
    """One page target: send commands, read answers, keep the events (console, exceptions)."""

    def __init__(self, stream: trio.SocketStream, ws: WSConnection) -> None:
        self._stream = stream
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending = ""
        self.events: list[dict[str, Any]] = []

    async def _read_message(self) -> dict[str, Any]:
        while True:
            for event in self._ws.events():
                if isinstance(event, TextMessage):
                    self._pending += event.data
                    if event.message_finished:
                        text, self._pending = self._pending, ""
                        return json.loads(text)
                elif isinstance(event, Ping):
                    await self._stream.send_all(self._ws.send(event.response()))
                elif isinstance(event, CloseConnection):
                    raise CdpError("the browser closed the DevTools connection")
            data = await self._stream.receive_some(1 << 16)
            if not data:
                raise CdpError("the DevTools connection ended")
            self._ws.receive_data(data)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        payload = json.dumps({"id": ident, "method": method, "params": params})
        await self._stream.send_all(self._ws.send(Message(data=payload)))
        while True:
            message = await self._read_message()
            if message.get("id") == ident:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self.events.append(message)

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, within: float = 20.0) -> Any:
        """Poll ``expression`` in the page until it is truthy; return its value."""
        with trio.fail_after(within):
            while True:
                value = await self.evaluate(expression)
                if value:
                    return value
                await trio.sleep(0.2)

    async def screenshot(self, path: Path) -> None:
        result = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        _write(path, base64.b64decode(result["data"]))

    def problems(self) -> list[str]:
        """Uncaught exceptions and console errors the page reported."""
        out = []
        for event in self.events:
            if event["method"] == "Runtime.exceptionThrown":
                out.append(json.dumps(event["params"]["exceptionDetails"])[:500])
            elif event["method"] == "Runtime.consoleAPICalled" and event["params"].get("type") == "error":
                out.append(json.dumps(event["params"].get("args"))[:500])
            elif event["method"] == "Log.entryAdded" and event["params"]["entry"].get("level") == "error":
                out.append(json.dumps(event["params"]["entry"])[:500])
        return out


async def _connect(url: str) -> Page:
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    stream = await trio.open_tcp_stream(parts.hostname, parts.port)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host=f"{parts.hostname}:{parts.port}", target=parts.path)))
    with trio.fail_after(10):
        while True:
            ws.receive_data(await stream.receive_some(1 << 16))
            for event in ws.events():
                if isinstance(event, AcceptConnection):
                    return Page(stream, ws)
                if isinstance(event, RejectConnection):
                    raise CdpError(f"DevTools refused the websocket: {event.status_code}")


def _launch(profile: Path, width: int, height: int) -> subprocess.Popen:
    profile.mkdir(parents=True, exist_ok=True)
    with (profile.parent / "chromium.log").open("wb") as log:
        return subprocess.Popen(
            [
                chromium_path(),
                *FLAGS,
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _devtools_port(profile: Path) -> int | None:
    """The port Chromium chose, once it has written it (``--remote-debugging-port=0``)."""
    try:
        return int((profile / "DevToolsActivePort").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


@asynccontextmanager
async def chromium_page(profile: Path, *, width: int = 1400, height: int = 1000) -> AsyncIterator[Page]:
    """A headless Chromium with a fresh profile, and its one page, ready for commands."""
    process = _launch(profile, width, height)
    try:
        with trio.fail_after(30):
            while (port := _devtools_port(profile)) is None:
                if process.poll() is not None:
                    raise CdpError(f"chromium exited with {process.returncode}")
                await trio.sleep(0.1)
        async with httpx.AsyncClient(timeout=10) as http:
            targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
        target = next(t for t in targets if t.get("type") == "page")
        page = await _connect(target["webSocketDebuggerUrl"])
        for domain in ("Page.enable", "Runtime.enable", "Log.enable"):
            await page.call(domain)
        await page.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        try:
            yield page
        finally:
            with trio.move_on_after(2, shield=True):
                await page._stream.aclose()
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
