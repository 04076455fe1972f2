"""A browser tab's chat WebSocket as a connection object, which the /ws handler (web/server.py) is a
thin loop over: it opens with the session's snapshot, then takes each frame where it arrives —
counted against the session's rate, read once into a typed frame (`read_frame`, web/commands.py),
handed to the commands — and is removed in one place when the socket ends. A new tab takes its
snapshot and joins the fan-out in one synchronous step, so it can neither miss a fragment nor apply
one twice."""
import logging

from starlette.websockets import WebSocket

from web.clients import Client, Clients
from web.commands import Commands, Frame, Unreadable, read_frame
from web.components import notify
from web.limits import Admission, Rate
from web.sessions import Sessions
from web.views import Views

log = logging.getLogger("web.tabs")


class Tabs:
    "What every tab's connection shares; `max_chars` is the longest frame read (WS_MAX_FRAME_CHARS)."

    def __init__(self, clients: Clients, sessions: Sessions, views: Views, commands: Commands, rate: Rate, max_chars: int):
        self.clients, self.sessions, self.views, self.commands = clients, sessions, views, commands
        self.rate, self.max_chars = rate, max_chars

    async def connect(self, sid: str, ws: WebSocket, tab: str = "") -> "Tab":
        await self.sessions.open(sid)
        return Tab(self, sid, self.clients.add(sid, ws, tab))


class Tab:
    def __init__(self, tabs: Tabs, sid: str, client: Client):
        self.tabs, self.sid, self.client = tabs, sid, client

    @property
    def closing(self) -> bool:
        "Closed for falling behind: the tab reconnects and resyncs."
        return bool(self.client.closing)

    def opened(self) -> None:
        self.client.send(self.tabs.views.snapshot(self.sid))

    def receive(self, text: str | None) -> None:
        try:
            frame = self.decode(text)
            if frame is not None:
                self.tabs.commands.do(self.sid, self.client, frame)
        except Exception:
            # One frame the web could not handle must not drop the tab without a word.
            log.exception("a frame of session %s could not be handled", self.sid[:8])
            notify(self.client, "That message could not be handled; nothing was sent.")

    def decode(self, text: str | None) -> Frame | None:
        "The frame, or None when it goes no further (past the session's rate, or unreadable: the tab is told)."
        verdict = self.tabs.rate.take(self.sid)
        if verdict is not Admission.TAKEN:
            if verdict is Admission.REFUSED:
                notify(self.client, self.tabs.rate.refusal)
            return None
        try:
            return read_frame(text, self.tabs.max_chars)
        except Unreadable as e:
            notify(self.client, str(e))
            return None

    def close(self) -> None:
        self.tabs.clients.remove(self.client)
