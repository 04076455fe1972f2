"""Each session's conversation as the web holds it: its transcript, its chosen model, and the digest
of the app's state last sent to its brain. In memory while in use, on disk always.

Memory stays bounded: past MAX_SESSIONS, the least recently used session that no tab has open and
that has no reply under way is dropped, and read back from SQLite when it returns.
"""
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.lru import LRU
from web.ports import Bus
from web.store import Transcripts
from web.transcript import Line, Move, Role, key_of

MAX_SESSIONS = 1000
KEPT_PER_SESSION = 200
RESET_REMEMBERED = 10_000


@dataclass
class Session:
    lines: OrderedDict[str, Line] = field(default_factory=OrderedDict)  # by key
    model: str = ""  # the chosen model; "" for the brain's default
    loaded: bool = False  # the transcript and choice on disk have been read in
    told: str = ""  # the digest of the app's state as last sent to the brain ("" not known: it states it whole)

    def reply(self, reply_id: str) -> Line | None:
        return self.lines.get(key_of(Role.REPLY, reply_id))

    def question(self, reply_id: str) -> Line | None:
        "The user's message that asked for that reply (what a reply `asks`)."
        return self.lines.get(key_of(Role.USER, reply_id)) if reply_id else None

    def newest_reply(self) -> Line | None:
        return next((line for line in reversed(self.lines.values()) if line.role == Role.REPLY), None)

    @property
    def busy(self) -> bool:
        return any(line.live for line in self.lines.values())


class Sessions:
    """`kept`: where transcripts and choices are written behind and read back; `watched(sid)`:
    whether a tab has the session open (it stays in memory then); `bus` tells which replies'
    messages still wait for a brain."""

    def __init__(self, kept: Transcripts, watched: Callable[[str], bool], bus: Bus, limit: int = MAX_SESSIONS):
        self.kept, self.bus = kept, bus
        self.held: LRU[str, Session] = LRU(limit, evictable=lambda sid, s: not watched(sid) and not s.busy)
        self.reset_replies: LRU[str, bool] = LRU(RESET_REMEMBERED)  # so their late words are ignored

    def get(self, sid: str) -> Session:
        return self.held.setdefault(sid, Session)

    def items(self):
        return self.held.items()

    async def open(self, sid: str) -> Session:
        "The session with its transcript and model choice read in (once)."
        session = self.get(sid)
        if not session.loaded:
            lines, model = await self.kept.read(sid, KEPT_PER_SESSION)
            session = self.get(sid)  # it may have been dropped and made anew meanwhile
            if not session.loaded:
                # What arrived while reading (a reply streaming) wins over what the disk held.
                merged = OrderedDict((line.key, self._revived(line)) for line in lines if line.key not in session.lines)
                merged.update(session.lines)
                session.lines, session.model, session.loaded = merged, session.model or model, True
        return session

    def _revived(self, line: Line) -> Line:
        """A line left under way by a web that stopped: queued while its message waits in the
        outbox, otherwise interrupted (it carries on if its brain is still answering it)."""
        if line.live:
            if self.bus.asking(line.reply):
                line.move(Move.REQUEUED)
            else:
                line.move(Move.INTERRUPTED, "Interrupted: the web restarted mid-reply.")
        return line

    def add(self, sid: str, line: Line) -> Line:
        line.session = sid
        lines = self.get(sid).lines
        lines[line.key] = line
        while len(lines) > KEPT_PER_SESSION:
            lines.popitem(last=False)
        self.keep(line)
        return line

    def keep(self, line: Line) -> None:
        self.kept.keep(line)

    def move(self, line: Line, move: Move, note: str) -> bool:
        "Make `move` on a line and keep it; False, keeping nothing, when its life does not allow it."
        if not line.move(move, note):
            return False
        self.keep(line)
        return True

    def choose(self, sid: str, model: str) -> None:
        self.get(sid).model = model
        self.kept.choose(sid, model)

    def reset(self, sid: str) -> None:
        "New chat: an empty transcript."
        session = self.get(sid)
        for line in session.lines.values():
            self.reset_replies.put(line.reply, True)
        session.lines = OrderedDict()
        self.kept.clear(sid)

    def was_reset(self, reply: str) -> bool:
        return reply in self.reset_replies
