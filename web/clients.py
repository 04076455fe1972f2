"""The open browser WebSockets, grouped by session, each with its own bounded outbox.

Every client has one sender task draining its queue, so a slow or dead tab never stalls the relay
or the other tabs: a tab that falls too far behind (WS_TAB_QUEUE fragments) is counted out at once
and closed with 1013, which makes htmx-ext-ws reconnect and fetch the current state afresh.
"""
import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("web.clients")
TRY_AGAIN_LATER = 1013


class Client:
    def __init__(self, session: str, ws: WebSocket, queue_limit: int, gone: Callable[["Client"], None]):
        self.session, self.ws, self.gone = session, ws, gone
        self.outbox: asyncio.Queue[str] = asyncio.Queue(queue_limit)
        self.task = asyncio.create_task(self._drain())
        self.closing: asyncio.Task | None = None  # kept, so the task is not collected before it runs

    def send(self, html: str) -> None:
        if self.closing:
            return  # it is being closed to resync; what it would be sent comes with its next snapshot
        try:
            self.outbox.put_nowait(html)
        except asyncio.QueueFull:
            log.warning("client of session %s fell %d frames behind; closing it so it resyncs",
                        self.session[:8], self.outbox.maxsize)
            self.task.cancel()
            self.closing = asyncio.create_task(self._close(TRY_AGAIN_LATER))
            self.gone(self)

    async def _drain(self) -> None:
        try:
            while True:
                parts = [await self.outbox.get()]
                # Whatever piled up while we waited goes out as one frame: htmx-ext-ws swaps
                # each top-level element of a frame in order.
                while not self.outbox.empty():
                    parts.append(self.outbox.get_nowait())
                await self.ws.send_text("".join(parts))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the socket is gone; the receive loop cleans up

    async def _close(self, code: int) -> None:
        try:
            await self.ws.close(code)
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the peer went first: closed all the same

    def stop(self) -> None:
        self.task.cancel()


class Clients:
    def __init__(self, queue_limit: int = 2000):
        self.queue_limit = queue_limit
        self.by_session: dict[str, set[Client]] = defaultdict(set)

    def add(self, session: str, ws: WebSocket) -> Client:
        client = Client(session, ws, self.queue_limit, self.remove)
        self.by_session[session].add(client)
        return client

    def remove(self, client: Client) -> None:
        client.stop()
        group = self.by_session.get(client.session)
        if group is not None:
            group.discard(client)
            if not group:
                del self.by_session[client.session]

    def send(self, session: str, html: str) -> None:
        for client in tuple(self.by_session.get(session, ())):  # a tab that falls behind leaves the group
            client.send(html)

    def send_all(self, html: str) -> None:
        for group in list(self.by_session.values()):
            for client in tuple(group):
                client.send(html)

    def __len__(self) -> int:
        return sum(len(g) for g in self.by_session.values())
