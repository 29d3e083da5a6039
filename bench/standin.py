"""A lean Messaging Service stand-in for the throughput benchmark: raw sockets + h11, one process.

    python -m bench.standin '{"latency_ms": 0, "internal_auth_secret": null}'

Prints its base URL (ephemeral loopback port) as the first line of stdout, then serves until SIGTERM.

It keeps the contract the service uses (``campaignsvc/integrations/messaging.py``, original-v1 §5.3):
``POST /api/messaging/send`` with ``x-organization-id`` (and ``x-user-id``, ``x-correlation-id``, and
``x-internal-auth`` when a secret is configured) and the JSON body ``contactId``, ``channel``,
``channelId``, ``content``, ``bdAccountId``, ``source``, ``idempotencyKey``; a delivered send is answered
200 with the message row (``id``, ``channel_id``, …), and a key seen before (per organization) is
answered with its first row, as the real service replays it. Requests it cannot take get the real
service's 400/401 bodies. HTTP/1.1 keep-alive: one connection carries any number of requests.

What it leaves out is everything the throughput scenario does not need and the quart-trio sandbox pays
for per request: the ASGI stack, Telegram's pacing and errors, replies and events. Every arrival is
recorded (``time.monotonic()`` when the request's head is parsed, account, idempotency key, contact,
organization, replay or not), so the bench counts duplicates and gaps exactly as it does with the
sandbox's records. The control routes use the sandbox's paths, so ``bench.harness.SandboxProcess``
reads either:

``GET  /sandbox/received`` — ``{"items": [...]}``, one object per send request, in arrival order
``GET  /sandbox/stats``    — ``{"requests", "connections", "replays", "rejected", "accounts": {id: {"requests"}}}``
``POST /sandbox/reset``    — forget every record and counter
``GET  /health``
"""

from __future__ import annotations

import contextlib
import heapq
import hmac
import itertools
import json
import selectors
import signal
import socket
import sys
import time
import uuid
from typing import Any

import h11

SEND_PATH = b"/api/messaging/send"
_JSON = (b"content-type", b"application/json")
_RECEIVE_BYTES = 65536
_MAX_BODY_BYTES = 8 * 1024 * 1024

# The real service's answers to what it refuses (the sandbox's answers.py words them the same way).
UNSUPPORTED_CHANNEL = {"error": "Unsupported channel or sending failed"}
BD_ACCOUNT_REQUIRED = {"error": "bdAccountId is required for Telegram messages"}
UNAUTHORIZED = {"error": "Unauthorized", "code": "UNAUTHORIZED"}
NOT_FOUND = {"error": "Not found"}


def _validation(path: str, message: str) -> dict[str, Any]:
    return {
        "error": "Validation failed",
        "code": "VALIDATION",
        "details": [{"path": path, "message": message}],
    }


class StandIn:
    """The records and the answers; one instance per process, touched only by trio tasks."""

    def __init__(self, *, latency_s: float = 0.0, internal_auth_secret: str | None = None) -> None:
        self.latency_s = latency_s
        self.secret = internal_auth_secret.encode() if internal_auth_secret else None
        self.reset()

    def reset(self) -> None:
        # One tuple per arrival: (received_mono, bdAccountId, idempotencyKey, contactId, organizationId,
        # replay). Tuples, not dicts: recording must cost next to nothing.
        self.arrivals: list[tuple[float, Any, Any, Any, str | None, bool]] = []
        self.rows: dict[tuple[str | None, str], bytes] = {}
        self.connections = 0
        self.replays = 0
        self.rejected = 0

    # -- the send route --------------------------------------------------------------------------------

    def send(self, headers: dict[bytes, bytes], raw: bytes, at: float) -> tuple[int, bytes]:
        org_b = headers.get(b"x-organization-id")
        org = org_b.decode() if org_b else None
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        fields = body if isinstance(body, dict) else {}
        account = fields.get("bdAccountId")
        key = fields.get("idempotencyKey")
        contact = fields.get("contactId")
        self.arrivals.append((at, account, key, contact, org, False))
        if self.secret is not None and not hmac.compare_digest(
            headers.get(b"x-internal-auth", b""), self.secret
        ):
            return self._refuse(401, UNAUTHORIZED)
        if not isinstance(body, dict):
            return self._refuse(400, _validation("", "Expected object"))
        channel_id = body.get("channelId")
        if not isinstance(channel_id, str) or not channel_id:
            return self._refuse(400, _validation("channelId", "Required"))
        if not body.get("content") and not body.get("fileBase64"):
            return self._refuse(400, _validation("content", "Either content or fileBase64 is required"))
        if body.get("channel") != "telegram":
            return self._refuse(400, UNSUPPORTED_CHANNEL)
        if not isinstance(account, str) or not account:
            return self._refuse(400, BD_ACCOUNT_REQUIRED)
        if isinstance(key, str):
            first = self.rows.get((org, key))
            if first is not None:
                self.replays += 1
                self.arrivals[-1] = (at, account, key, contact, org, True)
                return 200, first
        user = headers.get(b"x-user-id")
        row = json.dumps(
            {
                "id": str(uuid.uuid4()),
                "organization_id": org,
                "contact_id": contact,
                "bd_account_id": account,
                "channel": "telegram",
                "channel_id": channel_id,
                "direction": "outbound",
                "content": body.get("content") or "",
                "status": "delivered",
                "metadata": {
                    "sentBy": user.decode() if user else None,
                    "idempotencyKey": key,
                    "source": body.get("source"),
                },
            },
            separators=(",", ":"),
        ).encode()
        if isinstance(key, str):
            self.rows[(org, key)] = row
        return 200, row

    def _refuse(self, status: int, body: dict[str, Any]) -> tuple[int, bytes]:
        self.rejected += 1
        return status, json.dumps(body).encode()

    # -- the control routes ----------------------------------------------------------------------------

    def received_json(self) -> bytes:
        items = [
            {
                "seq": seq,
                "received_mono": at,
                "bdAccountId": account,
                "idempotencyKey": key,
                "contactId": contact,
                "organizationId": org,
                "replay": replay,
                "outcome": "replay" if replay else "sent",
            }
            for seq, (at, account, key, contact, org, replay) in enumerate(self.arrivals, start=1)
        ]
        return json.dumps({"items": items}).encode()

    def stats_json(self) -> bytes:
        accounts: dict[str, dict[str, int]] = {}
        for _, account, _, _, _, _ in self.arrivals:
            counted = accounts.setdefault(str(account), {"requests": 0})
            counted["requests"] += 1
        return json.dumps(
            {
                "requests": len(self.arrivals),
                "connections": self.connections,
                "replays": self.replays,
                "rejected": self.rejected,
                "accounts": accounts,
            }
        ).encode()

    def route(
        self, method: bytes, target: bytes, headers: dict[bytes, bytes], raw: bytes, at: float
    ) -> tuple[int, bytes]:
        path = target.split(b"?", 1)[0].rstrip(b"/") or b"/"
        if path == SEND_PATH and method == b"POST":
            return self.send(headers, raw, at)
        if method == b"GET":
            if path == b"/sandbox/received":
                return 200, self.received_json()
            if path == b"/sandbox/stats":
                return 200, self.stats_json()
            if path == b"/health":
                return 200, b'{"status":"ok","service":"messaging-standin"}'
        if path == b"/sandbox/reset" and method == b"POST":
            self.reset()
            return 200, b'{"ok":true}'
        return 404, json.dumps(NOT_FOUND).encode()


class _Connection:
    """One client connection: its h11 state, the request being read, and what is left to write."""

    __slots__ = ("at", "chunks", "closing", "h11", "headers", "method", "out", "sock", "target", "waiting")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.h11 = h11.Connection(h11.SERVER)
        self.method = self.target = b""
        self.headers: dict[bytes, bytes] = {}
        self.chunks: list[bytes] = []
        self.at = 0.0
        self.out = b""  # written in part: the rest waits for the socket to be writable
        self.waiting = False  # a delayed answer is pending: read no further request
        self.closing = False


class Server:
    """HTTP/1.1 on non-blocking sockets and one ``selectors`` loop (epoll here), h11 for the protocol.

    No event-loop framework: per request it costs one ``recv``, one ``send`` and h11's parsing, which is
    what keeps the stand-in far cheaper than anything it is asked to measure. Requests on a connection are
    answered in order (h11 pauses a pipelined one until the answer to the previous is written)."""

    def __init__(self, standin: StandIn, host: str = "127.0.0.1", port: int = 0) -> None:
        self.standin = standin
        self.listener = socket.create_server((host, port), backlog=1024)
        self.listener.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, None)
        self.delayed: list[tuple[float, int, _Connection, int, bytes]] = []
        self._order = itertools.count()
        self.running = True

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def serve_forever(self) -> None:
        select = self.selector.select
        try:
            while self.running:
                timeout = None
                if self.delayed:
                    timeout = max(0.0, self.delayed[0][0] - time.monotonic())
                for key, mask in select(timeout):
                    conn = key.data
                    if conn is None:
                        self._accept()
                        continue
                    if mask & selectors.EVENT_WRITE:
                        self._flush(conn)
                    if mask & selectors.EVENT_READ and not conn.closing:
                        self._readable(conn)
                now = time.monotonic()
                while self.delayed and self.delayed[0][0] <= now:
                    _, _, conn, status, payload = heapq.heappop(self.delayed)
                    conn.waiting = False
                    if not conn.closing:
                        self._answer(conn, status, payload)
                        self._process(conn)
        finally:
            for key in list(self.selector.get_map().values()):
                key.fileobj.close()  # type: ignore[union-attr]
            self.selector.close()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.standin.connections += 1
            self.selector.register(sock, selectors.EVENT_READ, _Connection(sock))

    def _readable(self, conn: _Connection) -> None:
        try:
            data = conn.sock.recv(_RECEIVE_BYTES)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        if not data and conn.waiting:  # the client is gone before its delayed answer: nobody to tell
            self._close(conn)
            return
        conn.h11.receive_data(data)  # b"": the client closed its side
        self._process(conn)

    def _process(self, conn: _Connection) -> None:
        """Handle every complete event h11 has buffered for this connection."""
        while not conn.waiting and not conn.closing:
            try:
                event = conn.h11.next_event()
            except h11.RemoteProtocolError:
                self._bad_request(conn)
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                conn.at = time.monotonic()
                conn.method, conn.target = event.method, event.target
                conn.headers = dict(event.headers)
                conn.chunks = []
            elif isinstance(event, h11.Data):
                conn.chunks.append(event.data)
                if sum(len(c) for c in conn.chunks) > _MAX_BODY_BYTES:
                    self._close(conn)
                    return
            elif isinstance(event, h11.EndOfMessage):
                raw = b"".join(conn.chunks)
                conn.chunks = []
                status, payload = self.standin.route(conn.method, conn.target, conn.headers, raw, conn.at)
                latency = self.standin.latency_s
                if latency and conn.target.startswith(SEND_PATH):
                    conn.waiting = True
                    due = time.monotonic() + latency
                    heapq.heappush(self.delayed, (due, next(self._order), conn, status, payload))
                    return
                self._answer(conn, status, payload)
            else:  # ConnectionClosed
                self._close(conn)
                return

    def _answer(self, conn: _Connection, status: int, payload: bytes) -> None:
        try:
            head = conn.h11.send(
                h11.Response(
                    status_code=status, headers=[_JSON, (b"content-length", str(len(payload)).encode())]
                )
            )
            body = conn.h11.send(h11.Data(data=payload))
            tail = conn.h11.send(h11.EndOfMessage())
        except h11.LocalProtocolError:
            self._close(conn)
            return
        self._write(conn, b"".join(part for part in (head, body, tail) if part))
        if conn.h11.our_state is h11.MUST_CLOSE:
            conn.closing = True
            if not conn.out:
                self._close(conn)
        elif not conn.closing:
            conn.h11.start_next_cycle()

    def _write(self, conn: _Connection, data: bytes) -> None:
        if conn.out:
            conn.out += data
            return
        try:
            sent = conn.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._close(conn)
            return
        if sent < len(data):
            conn.out = data[sent:]
            self.selector.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)

    def _flush(self, conn: _Connection) -> None:
        try:
            sent = conn.sock.send(conn.out)
        except BlockingIOError:
            return
        except OSError:
            self._close(conn)
            return
        conn.out = conn.out[sent:]
        if not conn.out:
            if conn.closing:
                self._close(conn)
            else:
                self.selector.modify(conn.sock, selectors.EVENT_READ, conn)

    def _bad_request(self, conn: _Connection) -> None:
        if conn.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            payload = json.dumps(_validation("", "Malformed HTTP request")).encode()
            self._answer(conn, 400, payload)
        conn.closing = True
        if not conn.out:
            self._close(conn)

    def _close(self, conn: _Connection) -> None:
        conn.closing = True
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn.sock)
        conn.sock.close()


def main(argv: list[str]) -> None:
    spec: dict[str, Any] = json.loads(argv[0]) if argv else {}
    standin = StandIn(
        latency_s=float(spec.get("latency_ms", 0.0)) / 1000.0,
        internal_auth_secret=spec.get("internal_auth_secret"),
    )
    server = Server(standin, spec.get("host", "127.0.0.1"), int(spec.get("port", 0)))

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(server.url, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
