"""The Messaging call's transport (integrations/http11.py) against real sockets: keep-alive reuse, a peer
that closed an idle connection, the bound on connections, and each failure kind the send path classifies."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

import h11
import pytest
import trio

from campaignsvc.integrations.http11 import Http11Pool, TransportFailure

Handler = Callable[[trio.SocketStream, h11.Connection, h11.Request], Awaitable[bool]]


async def _answer(
    stream: trio.SocketStream, conn: h11.Connection, status: int = 200, body: bytes = b"{}"
) -> None:
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    await stream.send_all(
        conn.send(h11.Response(status_code=status, headers=headers))
        + (conn.send(h11.Data(data=body)) or b"")
        + (conn.send(h11.EndOfMessage()) or b"")
    )


async def _ok(stream: trio.SocketStream, conn: h11.Connection, request: h11.Request) -> bool:
    await _answer(stream, conn, body=b'{"path": "%s"}' % request.target)
    return True  # keep the connection


class Server:
    def __init__(self, handler: Handler = _ok) -> None:
        self.handler = handler
        self.connections = 0
        self.requests = 0
        self.in_flight = 0
        self.most_in_flight = 0

    async def serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some(65536)
                    if not data:
                        return
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    request = event
                    continue
                if isinstance(event, h11.EndOfMessage):
                    self.requests += 1
                    self.in_flight += 1
                    self.most_in_flight = max(self.most_in_flight, self.in_flight)
                    try:
                        keep = await self.handler(stream, conn, request)
                    finally:
                        self.in_flight -= 1
                    if not keep or conn.our_state is not h11.DONE:
                        return
                    conn.start_next_cycle()


async def _start(nursery: trio.Nursery, server: Server) -> str:
    (listener,) = await nursery.start(functools.partial(trio.serve_tcp, server.serve, 0, host="127.0.0.1"))
    host, port = listener.socket.getsockname()[:2]
    return f"http://{host}:{port}"


def _pool(
    url: str, *, max_connections: int = 4, timeout_s: float = 5.0, idle_expiry_s: float = 4.0
) -> Http11Pool:
    return Http11Pool(
        url,
        max_connections=max_connections,
        timeout_s=timeout_s,
        connect_timeout_s=2.0,
        idle_expiry_s=idle_expiry_s,
    )


async def test_requests__reuse_a_kept_alive_connection(nursery):
    server = Server()
    async with _pool(await _start(nursery, server)) as pool:
        sent: list[bool] = []
        for _ in range(20):
            response = await pool.request(b"POST", "/api/x", [], b"{}", on_sent=lambda: sent.append(True))
            assert (response.status, response.body) == (200, b'{"path": "/api/x"}')
        assert (server.requests, server.connections, len(sent)) == (20, 1, 20)


async def test_an_idle_connection_the_server_closed__is_not_reused(nursery):
    async def once(stream: trio.SocketStream, conn: h11.Connection, request: h11.Request) -> bool:
        await _answer(stream, conn)
        return False  # answered, then the server closes the connection (as an idle keep-alive timeout does)

    server = Server(once)
    async with _pool(await _start(nursery, server)) as pool:
        for _ in range(3):
            assert (await pool.request(b"POST", "/", [], b"")).status == 200
            await trio.sleep(0.05)  # the close reaches us while the connection is idle
        assert server.connections == 3


async def test_idle_connections_expire(nursery):
    server = Server()
    async with _pool(await _start(nursery, server), idle_expiry_s=0.2) as pool:
        await pool.request(b"POST", "/", [], b"")
        await trio.sleep(0.3)
        await pool.request(b"POST", "/", [], b"")
        assert server.connections == 2


async def test_warm__connects_ahead_once_and_the_request_uses_that_connection(nursery):
    server = Server()
    async with _pool(await _start(nursery, server), idle_expiry_s=0.2) as pool:
        await pool.warm()
        await pool.warm()  # an idle, usable connection is there already
        await trio.sleep(0.01)
        assert (server.connections, server.requests) == (1, 0)
        assert (await pool.request(b"POST", "/", [], b"")).status == 200
        assert (server.connections, server.requests) == (1, 1)
        await trio.sleep(0.3)  # expired while idle: warming connects a new one
        await pool.warm()
        await pool.request(b"POST", "/", [], b"")
        assert (server.connections, server.requests) == (2, 2)


async def test_warm__a_refused_connect_is_left_for_the_request(nursery):
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused
        async with _pool(f"http://127.0.0.1:{port}") as pool:
            await pool.warm()
            with pytest.raises(TransportFailure) as failure:
                await pool.request(b"POST", "/", [], b"")
    assert failure.value.kind == "connect"


async def test_calls_in_flight__never_exceed_the_bound(nursery):
    async def slow(stream: trio.SocketStream, conn: h11.Connection, request: h11.Request) -> bool:
        await trio.sleep(0.05)
        await _answer(stream, conn)
        return True

    server = Server(slow)
    async with _pool(await _start(nursery, server), max_connections=3) as pool:
        async with trio.open_nursery() as calls:
            for _ in range(12):
                calls.start_soon(pool.request, b"POST", "/", [], b"")
        assert server.requests == 12
        assert server.most_in_flight == 3 and server.connections == 3


async def test_a_refused_connection__is_connect(nursery):
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    await listener.aclose()  # nothing listens there now
    with pytest.raises(TransportFailure) as failed:
        async with _pool(f"http://127.0.0.1:{port}") as pool:
            await pool.request(b"POST", "/", [], b"")
    assert failed.value.kind == "connect"


async def test_no_answer_in_time__is_timeout_and_the_connection_is_dropped(nursery):
    async def hang(stream: trio.SocketStream, conn: h11.Connection, request: h11.Request) -> bool:
        await trio.sleep_forever()
        return False

    server = Server(hang)
    async with _pool(await _start(nursery, server), timeout_s=0.2) as pool:
        with pytest.raises(TransportFailure) as failed:
            await pool.request(b"POST", "/", [], b"")
        assert failed.value.kind == "timeout"
        server.handler = _ok
        assert (await pool.request(b"POST", "/", [], b"")).status == 200
        assert server.connections == 2


async def test_a_connection_closed_before_the_answer__is_reset(nursery):
    async def drop(stream: trio.SocketStream, conn: h11.Connection, request: h11.Request) -> bool:
        return False  # read the request, close without answering

    async with _pool(await _start(nursery, Server(drop))) as pool:
        with pytest.raises(TransportFailure) as failed:
            await pool.request(b"POST", "/", [], b"")
        assert failed.value.kind == "reset"


async def test_an_answer_that_is_not_http__is_protocol(nursery):
    async def junk(stream: trio.SocketStream, conn: h11.Connection, request: h11.Request) -> bool:
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n")
        return False

    async with _pool(await _start(nursery, Server(junk))) as pool:
        with pytest.raises(TransportFailure) as failed:
            await pool.request(b"POST", "/", [], b"")
        assert failed.value.kind == "protocol"
