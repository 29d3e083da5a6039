"""HTTP/1.1 connections of the real app under hypercorn: a connection whose request was answered before
its body arrived is closed, never left open and silent (a keep-alive client reusing it used to hang)."""

from __future__ import annotations

import uuid

import trio

from campaignsvc.http.app import create_app
from tests.integration.sandbox_helpers import serve_app


async def _response(stream: trio.SocketStream) -> bytes:
    """One whole response (Content-Length framed), or b"" when the server closed the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += await stream.receive_some(65536)
    return head + b"\r\n\r\n" + body


async def _early_answer_then_reuse(url: str, method: str, path: str, headers: str = "") -> bytes:
    host, port = url.removeprefix("http://").split(":")
    body = b'{"contactIds": []}'
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        await stream.send_all(
            f"{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        first = await _response(stream)  # answered before the body was sent
        await trio.sleep(0.05)
        try:
            await stream.send_all(body)
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        except trio.BrokenResourceError:
            return first
        with trio.fail_after(3):  # it used to wait forever here
            assert await _response(stream) == b"", "the server answered on a connection it should close"
        return first


async def test_answered_before_the_body__the_connection_is_closed(services, nursery, org):
    url = await serve_app(nursery, create_app(services))
    path = f"/api/campaigns/{uuid.uuid4()}/audience/conflicts"
    assert (await _early_answer_then_reuse(url, "PUT", path)).startswith(b"HTTP/1.1 405")
    assert (await _early_answer_then_reuse(url, "POST", path)).startswith(b"HTTP/1.1 401")
    assert (
        await _early_answer_then_reuse(
            url,
            "POST",
            "/api/campaigns/nope/audience/conflicts",
            "X-Organization-Id: " + str(org.id) + "\r\n",
        )
    ).startswith(b"HTTP/1.1 400")


async def test_keep_alive__a_connection_serves_request_after_request(services, nursery, org):
    url = await serve_app(nursery, create_app(services))
    host, port = url.removeprefix("http://").split(":")
    body = b'{"name": "Kept alive"}'
    request = (
        f"POST /api/campaigns HTTP/1.1\r\nHost: x\r\nX-Organization-Id: {org.id}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        with trio.fail_after(5):
            for _ in range(3):
                await stream.send_all(request)
                assert (await _response(stream)).startswith(b"HTTP/1.1 201")
            await stream.send_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await _response(stream)).startswith(b"HTTP/1.1 200")
