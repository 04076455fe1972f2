"""Conversations on disk (DATA_DIR/brain.db), so a restarted brain still knows every session.

Turns are only ever appended, so saving writes just the turns added since the last save. Saves
are plain SQL: fastlite's insert costs over ten times as much Python, all of it holding the GIL.
"""
from dataclasses import dataclass
from pathlib import Path

import msgspec
from fastlite import database

from brain.conversation import Change, Conversation
from shared.messages import Todo


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
    last told (JSON), and where the context window starts."""
    session: str = ""
    todos: str = "[]"
    unseen: str = "[]"
    told: str = "[]"
    first: int = 0
    tokens_per_char: float = 0.0
    model: str = ""
    tools_off: bool = False


class Memory:
    def __init__(self, data_dir: Path):
        self.db = database(Path(data_dir) / "brain.db")
        # WAL + NORMAL: no fsync per commit, which would delay every reply's first token.
        self.db.execute("pragma synchronous = normal")
        self.turns = self.db.create(TurnRow, name="turns", pk="id", transform=True)
        self.states = self.db.create(StateRow, name="states", pk="session", transform=True)
        self.db.execute("create index if not exists turns_session on turns(session)")
        self.saved: dict[str, int] = {}

    def load(self, session: str) -> Conversation:
        rows = self.turns(where="session = ?", where_args=[session], order_by="id")
        states = self.states(where="session = ?", where_args=[session])
        conversation = Conversation(turns=[{"role": r.role, "content": r.content} | (_decode(r.extra, dict) if r.extra else {})
                                           for r in rows])
        if states:
            conversation.todos = _decode(states[0].todos, list[Todo])
            conversation.unseen = _decode(states[0].unseen, list[Change | str])
            conversation.told = _decode(states[0].told, list[Todo])
            conversation.first = states[0].first or 0
            conversation.tokens_per_char = states[0].tokens_per_char or conversation.tokens_per_char
            conversation.model = states[0].model or ""
            conversation.tools_off = bool(states[0].tools_off)
        self.saved[session] = len(conversation.turns)
        return conversation

    def evict(self, session: str) -> None:
        "The session left the brain's memory; it is read back whole when it returns."
        self.saved.pop(session, None)

    def forget_turns(self, session: str) -> None:
        self.db.execute("delete from turns where session = ?", [session])
        self.saved[session] = 0

    def save(self, session: str, conversation: Conversation) -> None:
        saved = self.saved.get(session, 0)
        new = conversation.turns[saved:]
        with self.db.conn:
            if len(conversation.turns) < saved:  # the newest turns were dropped (a regenerate)
                self.db.execute("delete from turns where id in (select id from turns where session = ? "
                                "order by id desc limit ?)", [session, saved - len(conversation.turns)])
            self.db.conn.executemany("insert into turns (session, role, content, extra) values (?, ?, ?, ?)",
                                     [(session, t["role"], t["content"], _extra(t)) for t in new])
            self.db.execute("insert or replace into states (session, todos, unseen, told, first, "
                            "tokens_per_char, model, tools_off) values (?, ?, ?, ?, ?, ?, ?, ?)",
                            [session, _json(conversation.todos), _json(conversation.unseen), _json(conversation.told),
                             conversation.first, conversation.tokens_per_char, conversation.model,
                             conversation.tools_off])
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
