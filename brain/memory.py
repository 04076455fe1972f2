"""Conversations on disk (DATA_DIR/brain.db), so a restarted brain still knows every session, and
every brain on the machine shares one truth about each.

Every copy of a conversation belongs to an assignment (`epoch`, given by the web when the session
came to a worker). Reading a session for a new epoch claims it: the stored epoch is raised to it in
the same transaction, so a worker that held the session before can never save it again (its save
raises `Fenced`), and a worker that comes with an older epoch than the stored one is refused. A
worker therefore answers from its cached copy only while it holds the session's current epoch.

Turns are only ever appended, so saving writes just the turns added since the last save. Saves
are plain SQL: fastlite's insert costs over ten times as much Python, all of it holding the GIL.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import msgspec
from fastlite import database

from brain.conversation import Change, Conversation
from shared.messages import Todo

BUSY_TIMEOUT_MS = 10_000  # two brains on one machine write the same file: wait for the other's commit


class Fenced(Exception):
    "The session is held under a newer assignment; this copy of it may not be used or saved."
    def __init__(self, session: str, mine: int, stored: int):
        super().__init__(f"session {session[:8]} is held at epoch {stored}, not {mine}")
        self.session, self.mine, self.stored = session, mine, stored


@dataclass
class TurnRow:
    "One message of a conversation; `extra` holds its other fields as JSON (a tool call's calls or name)."
    id: int | None = None
    session: str = ""
    role: str = ""
    content: str = ""
    extra: str = ""


@dataclass
class StateRow:
    """What is not a turn: the todo list, app events the model has not seen yet, the list as it was
    last told (JSON), where the context window starts, the assignment that holds the session and
    the requests acted on (JSON)."""
    session: str = ""
    todos: str = "[]"
    unseen: str = "[]"
    told: str = "[]"
    first: int = 0
    tokens_per_char: float = 0.0
    model: str = ""
    tools_off: bool = False
    epoch: int = 0
    handled: str = "[]"


class Memory:
    def __init__(self, data_dir: Path):
        self.db = database(Path(data_dir) / "brain.db")
        self.db.conn.set_busy_timeout(BUSY_TIMEOUT_MS)
        # WAL + NORMAL: no fsync per commit, which would delay every reply's first token.
        self.db.execute("pragma synchronous = normal")
        self.turns = self.db.create(TurnRow, name="turns", pk="id", transform=True)
        self.states = self.db.create(StateRow, name="states", pk="session", transform=True)
        self.db.execute("create index if not exists turns_session on turns(session)")
        self.saved: dict[str, int] = {}

    @contextmanager
    def _transaction(self):
        "Written at once (BEGIN IMMEDIATE), so the epoch read inside cannot change before the commit."
        self.db.execute("begin immediate")
        try:
            yield
        except BaseException:
            self.db.execute("rollback")
            raise
        self.db.execute("commit")

    def _stored_epoch(self, session: str) -> int:
        row = self.db.execute("select epoch from states where session = ?", [session]).fetchone()
        return (row[0] or 0) if row else 0

    def check(self, session: str, epoch: int) -> None:
        "Raises Fenced if the session has been claimed under a newer epoch than `epoch`."
        stored = self._stored_epoch(session)
        if stored > epoch:
            raise Fenced(session, epoch, stored)

    def load(self, session: str, epoch: int | None = None) -> Conversation:
        """The session as stored. With `epoch`, claimed for that assignment (raises Fenced if the
        stored one is newer); without, read as it is, under the stored epoch."""
        with self._transaction():
            stored = self._stored_epoch(session)
            if epoch is not None and stored > epoch:
                raise Fenced(session, epoch, stored)
            if epoch is not None and epoch != stored:
                self.db.execute("insert into states (session, epoch) values (?, ?) "
                                "on conflict (session) do update set epoch = excluded.epoch", [session, epoch])
            rows = self.turns(where="session = ?", where_args=[session], order_by="id")
            states = self.states(where="session = ?", where_args=[session])
        conversation = Conversation(turns=[{"role": r.role, "content": r.content} | (_decode(r.extra, dict) if r.extra else {})
                                           for r in rows])
        if states:
            state = states[0]
            conversation.todos = _decode(state.todos, list[Todo])
            conversation.unseen = _decode(state.unseen, list[Change | str])
            conversation.told = _decode(state.told, list[Todo])
            conversation.first = state.first or 0
            conversation.tokens_per_char = state.tokens_per_char or conversation.tokens_per_char
            conversation.model = state.model or ""
            conversation.tools_off = bool(state.tools_off)
            conversation.handled = _decode(state.handled, list[str])
        conversation.epoch = stored if epoch is None else epoch
        self.saved[session] = len(conversation.turns)
        return conversation

    def evict(self, session: str) -> None:
        "The session left the brain's memory; it is read back whole when it returns."
        self.saved.pop(session, None)

    def save(self, session: str, conversation: Conversation, afresh: bool = False) -> None:
        """Write what changed; `afresh` replaces every turn (a new chat). Raises Fenced, writing
        nothing, when the session has been claimed under a newer epoch."""
        saved = 0 if afresh else self.saved.get(session, 0)
        with self._transaction():
            stored = self._stored_epoch(session)
            if stored > conversation.epoch:
                raise Fenced(session, conversation.epoch, stored)
            if afresh:
                self.db.execute("delete from turns where session = ?", [session])
            elif len(conversation.turns) < saved:  # the newest turns were dropped (a regenerate)
                self.db.execute("delete from turns where id in (select id from turns where session = ? "
                                "order by id desc limit ?)", [session, saved - len(conversation.turns)])
            self.db.conn.executemany("insert into turns (session, role, content, extra) values (?, ?, ?, ?)",
                                     [(session, t["role"], t["content"], _extra(t)) for t in conversation.turns[saved:]])
            self.db.execute("insert or replace into states (session, todos, unseen, told, first, tokens_per_char, "
                            "model, tools_off, epoch, handled) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            [session, _json(conversation.todos), _json(conversation.unseen), _json(conversation.told),
                             conversation.first, conversation.tokens_per_char, conversation.model,
                             conversation.tools_off, conversation.epoch, _json(conversation.handled)])
        self.saved[session] = len(conversation.turns)


def _extra(turn: dict) -> str:
    rest = {k: v for k, v in turn.items() if k not in ("role", "content")}
    return _json(rest) if rest else ""


def _json(value) -> str:
    return msgspec.json.encode(value).decode()


def _decode(raw: str | None, kind):
    """A saved field, or empty when it is missing or of an older shape: the model is then told the
    whole list again, so nothing it needs is lost."""
    try:
        return msgspec.json.decode(raw or "[]", type=kind)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {} if kind is dict else []
