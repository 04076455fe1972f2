"""The open browser WebSockets, grouped by session, each with its own bounded outbox.

Every client has one sender task draining its queue, so a slow or dead tab never stalls the relay
or the other tabs: a tab that falls too far behind (WS_TAB_QUEUE fragments, or WS_TAB_QUEUE_BYTES)
is counted out at once and closed with 1013, which makes htmx-ext-ws reconnect and fetch the
current state afresh.

A fragment is made once and the same string is queued for every tab of its session. A tab's own
copy is the frame it is being sent, made of what it had queued: the server writes it whole into the
socket's buffer, where it stays while the peer does not read, so the bound in bytes is what keeps
a tab that stopped reading from holding a long reply of its own.

Each client knows its tab id (web/exchange.py), so a change a tab made itself is not sent back to it.
"""
import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketDisconnect

log = logging.getLogger("web.clients")
TRY_AGAIN_LATER = 1013


def utf8_size(html: str) -> int:
    "Bytes on the wire (isascii is O(1): the common case costs no copy)."
    return len(html) if html.isascii() else len(html.encode())


class Client:
    def __init__(self, session: str, ws: WebSocket, queue_limit: int, byte_limit: int,
                 gone: Callable[["Client"], None], tab: str = ""):
        self.session, self.ws, self.gone, self.byte_limit, self.tab = session, ws, gone, byte_limit, tab
        self.outbox: asyncio.Queue[tuple[str, int]] = asyncio.Queue(queue_limit)
        self.queued = 0  # bytes in the outbox, but for the fragment at its head
        self.task = asyncio.create_task(self._drain())
        self.closing: asyncio.Task | None = None  # kept, so the task is not collected before it runs

    def send(self, html: str, size: int | None = None) -> None:
        if self.closing:
            return  # it is being closed to resync; what it would be sent comes with its next snapshot
        # What goes out next is not counted, whatever its size: a snapshot or a final reply bigger
        # than the bound must still reach a tab that keeps up.
        counted = 0 if self.outbox.empty() else utf8_size(html) if size is None else size
        if self.queued + counted > self.byte_limit:
            return self._fell_behind()
        try:
            self.outbox.put_nowait((html, counted))
        except asyncio.QueueFull:
            return self._fell_behind()
        self.queued += counted

    def _fell_behind(self) -> None:
        log.warning("client of session %s fell behind (%d fragments, %d bytes waiting); closing it so it resyncs",
                    self.session[:8], self.outbox.qsize(), self.queued)
        self.task.cancel()
        # Let go of what it would have been sent: a peer that stopped reading may hold its socket
        # (and so this client) open long after.
        self.outbox, self.queued = asyncio.Queue(), 0
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
                self.queued -= sum(size for _, size in parts)
                await self.ws.send_text("".join(html for html, _ in parts))
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
    def __init__(self, queue_limit: int = 2000, byte_limit: int = 4 << 20):
        self.queue_limit, self.byte_limit = queue_limit, byte_limit
        self.by_session: dict[str, set[Client]] = defaultdict(set)

    def add(self, session: str, ws: WebSocket, tab: str = "") -> Client:
        client = Client(session, ws, self.queue_limit, self.byte_limit, self.remove, tab)
        self.by_session[session].add(client)
        return client

    def remove(self, client: Client) -> None:
        client.stop()
        group = self.by_session.get(client.session)
        if group is not None:
            group.discard(client)
            if not group:
                del self.by_session[client.session]

    def send(self, session: str, html: str, but: str = "") -> None:
        "To every tab of the session, but the tab `but` (\"\": none)."
        group = tuple(c for c in self.by_session.get(session, ()) if not but or c.tab != but)  # one falling behind leaves the group
        size = utf8_size(html) if group else 0
        for client in group:
            client.send(html, size)

    def send_all(self, html: str) -> None:
        size = utf8_size(html)
        for group in list(self.by_session.values()):
            for client in tuple(group):
                client.send(html, size)

    def watching(self, session: str) -> bool:
        "Whether a tab has the session open."
        return bool(self.by_session.get(session))

    def __len__(self) -> int:
        return sum(len(g) for g in self.by_session.values())
