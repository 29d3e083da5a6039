"""Keep-alive HTTP/1.1 to one origin, over trio streams, with h11 for the protocol: the Messaging call's
transport (integrations/messaging.py).

Why not httpx here: measured against the throughput stand-in on this machine, httpx cost 1.4–2.1 ms of
client CPU per request and httpcore's pool alone 1.0–1.6 ms, h11 over a trio stream 0.18–0.26 ms
(docs/performance.md) — and the Messaging call is most of what a send costs. h11 does the protocol (framing,
parsing, keep-alive rules); this module only keeps connections and maps failures to the kinds
:func:`campaignsvc.domain.delivery.classify_transport` knows. Other HTTP clients of the service use httpx.

- At most ``max_connections`` requests in flight (a caller waits for a free one here), each on its own
  connection; idle connections are reused newest first and dropped after ``idle_expiry_s`` (below the 5 s
  keep-alive timeout of a Node.js server) or when the peer has closed them. ``warm()`` connects one ahead
  of a request whose start is known, so its start is not spent connecting.
- Failures raise :class:`TransportFailure` with its kind: ``connect`` (never reached the server: safe to
  call "not sent"), ``timeout``, ``reset`` (the connection broke after the request may have been written),
  ``protocol`` (an answer that is not HTTP/1.1). A connection that failed, was cancelled mid-request or
  must close is closed, never reused.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import attrs
import h11
import trio

MAX_RESPONSE_BYTES = 1 << 20  # a Messaging answer is a small JSON row


class TransportFailure(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@attrs.frozen
class Response:
    status: int
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes


@attrs.define(eq=False)
class _Connection:
    stream: trio.abc.Stream
    socket: trio.socket.SocketType
    h11: h11.Connection = attrs.field(factory=lambda: h11.Connection(h11.CLIENT))
    idle_since: float = 0.0

    def usable(self, now: float, expiry_s: float) -> bool:
        """Reusable: not idle too long, and nothing to read — a readable idle connection was closed by the
        peer (or carries bytes nobody asked for)."""
        return now - self.idle_since < expiry_s and not self.socket.is_readable()


class Http11Pool:
    def __init__(
        self,
        base_url: str,
        *,
        max_connections: int,
        timeout_s: float,
        connect_timeout_s: float,
        idle_expiry_s: float = 4.0,
    ) -> None:
        url = urlsplit(base_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme = url.scheme
        self.host = url.hostname
        self.port = url.port or (443 if url.scheme == "https" else 80)
        self.prefix = url.path.rstrip("/")
        default_port = self.port == (443 if url.scheme == "https" else 80)
        self.authority = self.host if default_port else f"{self.host}:{self.port}"
        self._ssl = ssl.create_default_context() if url.scheme == "https" else None
        self._timeout_s = timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._idle_expiry_s = idle_expiry_s
        self._slots = trio.CapacityLimiter(max_connections)
        self._idle: list[_Connection] = []
        self._closed = False

    async def request(
        self,
        method: bytes,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        *,
        on_sent: Callable[[], None] | None = None,
    ) -> Response:
        """One request, its whole answer read. ``on_sent`` is called once the request has been written (its
        bytes handed to the kernel): the instant it left."""
        async with self._slots:
            conn = self._take_idle() or await self._connect()
            reusable = False
            try:
                with trio.fail_after(self._timeout_s):
                    response, reusable = await self._exchange(conn, method, path, headers, body, on_sent)
                return response
            except trio.TooSlowError:
                raise TransportFailure("timeout", f"no answer within {self._timeout_s:g} s") from None
            finally:
                if reusable and not self._closed:
                    conn.idle_since = trio.current_time()
                    self._idle.append(conn)
                else:
                    await trio.aclose_forcefully(conn.stream)

    async def warm(self) -> None:
        """Have a usable idle connection ready, connecting one if there is none: a request about to go out
        then pays for no connect when it starts. A failed connect is left for the request to meet."""
        now = trio.current_time()
        if self._closed or (self._idle and self._idle[-1].usable(now, self._idle_expiry_s)):
            return
        try:
            conn = await self._connect()
        except TransportFailure:
            return
        if self._closed:
            conn.socket.close()
            return
        conn.idle_since = trio.current_time()
        self._idle.append(conn)

    async def __aenter__(self) -> Http11Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            await trio.aclose_forcefully(conn.stream)

    def _take_idle(self) -> _Connection | None:
        now = trio.current_time()
        while self._idle:
            conn = self._idle.pop()
            if conn.usable(now, self._idle_expiry_s):
                return conn
            conn.socket.close()  # dropped without waiting (an SSL stream's close notify is skipped)
        return None

    async def _connect(self) -> _Connection:
        try:
            with trio.fail_after(self._connect_timeout_s):
                tcp = await trio.open_tcp_stream(self.host, self.port)
                stream: trio.abc.Stream = tcp
                if self._ssl is not None:
                    tls = trio.SSLStream(tcp, self._ssl, server_hostname=self.host, https_compatible=True)
                    await tls.do_handshake()
                    stream = tls
        except (OSError, trio.TooSlowError, trio.BrokenResourceError, ssl.SSLError) as exc:
            raise TransportFailure("connect", f"{type(exc).__name__}: {exc}") from None
        return _Connection(stream=stream, socket=tcp.socket)

    async def _exchange(
        self,
        conn: _Connection,
        method: bytes,
        path: str,
        headers: Sequence[tuple[bytes, bytes]],
        body: bytes,
        on_sent: Callable[[], None] | None,
    ) -> tuple[Response, bool]:
        head = [(b"host", self.authority.encode()), (b"content-length", str(len(body)).encode()), *headers]
        protocol = conn.h11
        try:
            data = protocol.send(
                h11.Request(method=method, target=(self.prefix + path).encode(), headers=head)
            )
            data += protocol.send(h11.Data(data=body)) or b""
            data += protocol.send(h11.EndOfMessage()) or b""
        except h11.LocalProtocolError as exc:
            raise TransportFailure("protocol", f"request not sendable: {exc}") from None
        try:
            await conn.stream.send_all(data or b"")
        except (trio.BrokenResourceError, OSError) as exc:
            raise TransportFailure("reset", f"writing the request: {type(exc).__name__}") from None
        if on_sent is not None:
            on_sent()
        status, size, peer_closed = 0, 0, False
        answer_headers: list[tuple[bytes, bytes]] = []
        chunks: list[bytes] = []
        while True:
            try:
                event = protocol.next_event()
            except h11.RemoteProtocolError as exc:
                # Cut off (the peer closed mid-answer, or before it) vs an answer that is not HTTP/1.1.
                raise TransportFailure("reset" if peer_closed else "protocol", str(exc)) from None
            if event is h11.NEED_DATA:
                try:
                    received = await conn.stream.receive_some(65536)
                except (trio.BrokenResourceError, OSError) as exc:
                    raise TransportFailure("reset", f"reading the answer: {type(exc).__name__}") from None
                peer_closed = not received
                protocol.receive_data(bytes(received))
                continue
            if isinstance(event, h11.Response):
                status, answer_headers = event.status_code, list(event.headers)
            elif isinstance(event, h11.Data):
                size += len(event.data)
                if size > MAX_RESPONSE_BYTES:
                    raise TransportFailure("protocol", f"answer larger than {MAX_RESPONSE_BYTES} bytes")
                chunks.append(bytes(event.data))
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise TransportFailure("reset", "the server closed the connection without an answer")
            # h11.InformationalResponse (100 Continue) and h11.PAUSED need nothing here.
        reusable = protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
        if reusable:
            protocol.start_next_cycle()
        return Response(status, answer_headers, b"".join(chunks)), reusable
