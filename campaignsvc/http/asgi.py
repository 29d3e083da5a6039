"""The ASGI connection class both quart-trio apps use (the service and the sandbox)."""

from __future__ import annotations

import trio
from hypercorn.typing import ASGISendCallable, ASGISendEvent
from quart_trio.asgi import TrioASGIHTTPConnection


class HTTPConnection(TrioASGIHTTPConnection):
    """quart-trio's HTTP connection with the last send of each response shielded from cancellation.

    Hypercorn finishes a request inside that send: it closes the stream, which hands the app
    ``http.disconnect``, on which quart-trio cancels the request's tasks, the sending one included. The
    rest of hypercorn's work in that same call was then cancelled half-way: closing the socket when the
    request's body had not been read (a 401, 404 or 405 answered before it arrived), or restarting the
    keep-alive timer. The connection stayed open and never answered again, so a client reusing it hung.
    Shielded, the send only writes what is buffered and closes or recycles the connection.
    """

    async def _send_response(self, send: ASGISendCallable, response: object) -> None:
        async def send_last_shielded(message: ASGISendEvent) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                with trio.CancelScope(shield=True):
                    await send(message)
            else:
                await send(message)

        await super()._send_response(send_last_shielded, response)  # type: ignore[arg-type]
