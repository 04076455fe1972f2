"""What the tabs are sent: transcript lines rendered as htmx-ext-ws fragments and fanned out to
every tab of a session. It holds no state: the commands, replies and tool calls decide what changed."""
from fasthtml.common import to_xml

from web.clients import Client, Clients
from web.components import Append, Bubble, ChunkText, Notice, Refresh, ThinkingText, Transcript
from web.transcript import Line


class Relay:
    def __init__(self, clients: Clients):
        self.clients = clients

    def append(self, session: str, *lines: Line) -> None:
        "New lines at the end of the transcript."
        self.clients.send(session, to_xml(Append(*[Bubble(line) for line in lines])))

    def show(self, session: str, line: Line) -> None:
        "A line changed: it is replaced where it stands."
        self.clients.send(session, to_xml(Bubble(line, oob=True)))

    def words(self, session: str, reply: str, text: str, thinking: str) -> None:
        "Streamed words appended to a reply (the hot path: string templates, not FT trees)."
        if thinking:
            self.clients.send(session, ThinkingText(reply, thinking))
        if text:
            self.clients.send(session, ChunkText(reply, text))

    def refresh(self, session: str, but: str = "") -> None:
        """The app changed: every tab of the session fetches its part of the page again (but the tab
        `but`, which made the change itself and has it from its own request)."""
        self.clients.send(session, to_xml(Refresh()), but)

    def fragments(self, session: str, html: str) -> None:
        "What the views rendered (the picker, the status line…), for every tab of the session."
        self.clients.send(session, html)

    def transcript(self, session: str, lines: list[Line]) -> None:
        self.clients.send(session, to_xml(Transcript([Bubble(line) for line in lines])))

    def notice(self, client: Client, text: str) -> None:
        "A one-off message for one tab, such as a refused input (empty: clear it)."
        client.send(to_xml(Notice(text)))
