"""Turns brain messages into what each session's browsers see, and keeps the transcripts.

The in-memory transcript of a session is the authority while the web runs; SQLite gets every
final line in order (write-behind, on the store's own thread) and fills the memory back in after
a restart. Because a new WebSocket takes its snapshot and joins the fan-out in one synchronous
step, no fragment can be missed or applied twice by a tab that connects mid-stream.
"""
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from fasthtml.common import to_xml

from shared.messages import Ack, Chunk, Done, Failed, Note, ToWeb, Waiting
from web.clients import Clients
from web.components import (LIVE, REGENERABLE, RETRYABLE, Append, Bubble, ChunkText, ThinkingText, Transcript,
                            stats_note)
from web.store import Store, StoreThread

log = logging.getLogger("web.relay")
KEPT_PER_SESSION = 200
DROPPED_REMEMBERED = 10_000


@dataclass
class Entry:
    request: str
    role: str  # "user", "reply" or "note"
    text: str = ""
    status: str = "done"
    note: str = ""
    worker: str = ""
    next_seq: int = 0
    thinking: str = ""

    def bubble(self, oob: bool = False):
        return Bubble(self.request, self.role, self.text, self.status, self.note, oob=oob, thinking=self.thinking)


class Relay:
    def __init__(self, clients: Clients, store: Store, db: StoreThread, on_status: Callable[[], None] = lambda: None):
        self.clients, self.store, self.db, self.on_status = clients, store, db, on_status
        self.sessions: dict[str, OrderedDict[tuple, Entry]] = {}
        self.loaded: set[str] = set()
        self.dropped: OrderedDict[str, None] = OrderedDict()  # replies of conversations reset since

    async def load(self, session: str) -> None:
        "Merge what SQLite holds under what memory holds; memory wins for lines in both."
        if session in self.loaded:
            return
        lines = await self.db.call(self.store.transcript, session, KEPT_PER_SESSION)
        if session in self.loaded:
            return
        memory = self.sessions.get(session, OrderedDict())
        merged = OrderedDict(((l.request, l.role), Entry(l.request, l.role, l.text, l.status, l.note,
                                                          thinking=l.thinking or ""))
                             for l in lines if (l.request, l.role) not in memory)
        merged.update(memory)
        self.sessions[session] = merged
        self.loaded.add(session)

    def snapshot(self, session: str):
        return Transcript([e.bubble() for e in self.sessions.get(session, {}).values()])

    def user_said(self, session: str, request: str, text: str, sent: bool) -> None:
        user = self._add(session, Entry(request, "user", text))
        reply = self._add(session, Entry(request, "reply", status="thinking" if sent else "queued"))
        self.db.post(self.store.add_line, session, request, "user", text)
        self.clients.send(session, to_xml(Append(user.bubble(), reply.bubble())))

    def reset(self, session: str) -> None:
        "New chat: an empty transcript for every tab; late words of the old replies are ignored."
        for request, _ in self.sessions.get(session, {}):
            self.dropped[request] = None
        while len(self.dropped) > DROPPED_REMEMBERED:
            self.dropped.popitem(last=False)
        self.sessions[session] = OrderedDict()
        self.db.post(self.store.clear_transcript, session)
        self.clients.send(session, to_xml(Transcript([])))

    def retried(self, session: str, old: str, new: str, sent: bool) -> None:
        "A failed reply is asked for again: the old bubble stays, a new one follows."
        entry = self._reply(session, old)
        self._end(session, entry, "retried", entry.note)
        reply = self._add(session, Entry(new, "reply", status="thinking" if sent else "queued"))
        self.clients.send(session, to_xml(Append(reply.bubble())))

    def newest_finished_reply(self, session: str, request: str) -> bool:
        "True if `request` names the session's newest reply and it is finished, so it may be regenerated."
        replies = [e for e in self.sessions.get(session, {}).values() if e.role == "reply"]
        return bool(replies) and replies[-1].request == request and replies[-1].status in REGENERABLE

    def regenerating(self, session: str, request: str, sent: bool) -> None:
        "The reply is asked for again: its bubble empties and the new answer streams into it."
        entry = self._reply(session, request)
        entry.text, entry.thinking, entry.note, entry.next_seq = "", "", "", 0
        entry.status = "thinking" if sent else "queued"
        self.clients.send(session, to_xml(entry.bubble(oob=True)))

    def stopped_unsent(self, session: str, request: str) -> None:
        "Stop pressed before any brain took the message."
        self._end(session, self._reply(session, request), "stopped", "Stopped before it was sent.")

    def live(self, session: str, request: str) -> Entry | None:
        entry = self._reply(session, request)
        return entry if entry and entry.status in LIVE else None

    def retryable(self, session: str, request: str) -> str | None:
        "The user's text of a reply that failed, if there is such a reply."
        entry, user = self._reply(session, request), self.sessions.get(session, {}).get((request, "user"))
        return user.text if entry and user and entry.status in RETRYABLE else None

    def _add(self, session: str, entry: Entry) -> Entry:
        entries = self.sessions.setdefault(session, OrderedDict())
        entries[(entry.request, entry.role)] = entry
        while len(entries) > KEPT_PER_SESSION:
            entries.popitem(last=False)
        return entry

    def _reply(self, session: str, request: str) -> Entry | None:
        return self.sessions.get(session, {}).get((request, "reply"))

    # The broker's listener interface.

    def brain_message(self, msg: ToWeb) -> None:
        if getattr(msg, "request", None) in self.dropped:
            return
        if isinstance(msg, Chunk):
            self._chunk(msg)
        elif isinstance(msg, (Done, Failed)):
            self._finish(msg)
        elif isinstance(msg, Waiting):
            entry = self._reply(msg.session, msg.request)
            if entry and entry.status in LIVE:
                entry.status, entry.note, entry.worker = "waiting", msg.reason, msg.worker
                self.clients.send(msg.session, to_xml(entry.bubble(oob=True)))
        elif isinstance(msg, Note):
            note = self._add(msg.session, Entry(msg.request, "note", msg.text))
            self.db.post(self.store.add_line, msg.session, msg.request, "note", msg.text)
            self.clients.send(msg.session, to_xml(Append(note.bubble())))
        elif isinstance(msg, Ack):
            entry = self._reply(msg.session, msg.request)
            if entry and entry.status == "queued":
                entry.status, entry.worker = "thinking", msg.worker
                self.clients.send(msg.session, to_xml(entry.bubble(oob=True)))
            elif entry:
                entry.worker = msg.worker

    def brain_status(self, status) -> None:
        self.on_status()

    def brain_lost(self, worker: str) -> None:
        for session, entries in self.sessions.items():
            for entry in list(entries.values()):
                if entry.worker == worker and entry.status in ("thinking", "waiting", "streaming"):
                    self._end(session, entry, "interrupted", "Interrupted: the brain stopped mid-reply.")

    def _chunk(self, msg: Chunk) -> None:
        entry = self._reply(msg.session, msg.request)
        if entry is None:  # a reply the brain started by itself, e.g. a comment on todo changes
            entry = self._add(msg.session, Entry(msg.request, "reply", status="thinking"))
            self.clients.send(msg.session, to_xml(Append(entry.bubble())))
        # An interrupted reply whose worker was only slow, not dead, carries on streaming.
        if entry.status not in (*LIVE, "interrupted") or msg.seq < entry.next_seq:
            return  # late or repeated: the final text will settle it
        if msg.seq > entry.next_seq:
            log.warning("reply %s: chunks %d..%d lost; the final text will repair it",
                        msg.request, entry.next_seq, msg.seq - 1)
        entry.worker, entry.next_seq = msg.worker, msg.seq + 1
        first_thought = msg.thinking and not entry.thinking
        entry.text += msg.text
        entry.thinking += msg.thinking
        if entry.status != "streaming" or first_thought:
            entry.status, entry.note = "streaming", ""
            self.clients.send(msg.session, to_xml(entry.bubble(oob=True)))
            return
        if msg.thinking:
            self.clients.send(msg.session, ThinkingText(msg.request, msg.thinking))
        if msg.text:
            self.clients.send(msg.session, ChunkText(msg.request, msg.text))

    def _finish(self, msg: Done | Failed) -> None:
        entry = self._reply(msg.session, msg.request) or self._add(msg.session, Entry(msg.request, "reply"))
        if entry.status not in LIVE and entry.status != "interrupted":
            return  # already final; a duplicate
        entry.text = msg.text
        if isinstance(msg, Done):
            entry.thinking = msg.thinking or entry.thinking
            self._end(msg.session, entry, "done", stats_note(msg.stats))
        else:
            self._end(msg.session, entry, "stopped" if msg.code == "stopped" else "failed", msg.error)

    def _end(self, session: str, entry: Entry, status: str, note: str) -> None:
        entry.status, entry.note = status, note
        self.db.post(self.store.add_line, session, entry.request, "reply", entry.text, status, note, entry.thinking)
        self.clients.send(session, to_xml(entry.bubble(oob=True)))
