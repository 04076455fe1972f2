"""The web's SQLite data under DATA_DIR: each session's todos and chat transcript.

Todo ids are each session's own: 1, 2, 3, ... in each session, never reused in it (the last one
given is kept apart from the todos), so another session's todos never show in the numbers and a
deleted todo always comes back under its id. A session holds at most `max_todos`.

fastlite makes the tables and answers reads; the writes that happen for every chat message are
plain SQL, because fastlite's insert costs about 270 µs of Python (holding the GIL, which the
event loop then waits for) against about 20 µs.

Calls block for a moment on disk, so async code reaches them through `StoreThread`, which runs
them one at a time, in order, on a thread of their own: a read sees every write posted before it.
"""
import asyncio
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fastlite import database

from shared.messages import BadFrame, ToBrain, Todo, decode, encode
from web.transcript import Line

log = logging.getLogger("web.store")


MAX_ID = 2**63 - 1  # SQLite's integers: a larger id names no todo


class ListFull(ValueError):
    "The session's list holds as many todos as it may; the text says so."


@dataclass
class OutboxRow:
    "A message for a brain that no brain has acked yet, as its two bus frames."
    request: str = ""
    topic: bytes = b""
    payload: bytes = b""


@dataclass
class OwnerRow:
    "Which brain worker holds a session, under which epoch (see web/broker.py)."
    session: str = ""
    worker: str = ""
    epoch: int = 0


@dataclass
class Choice:
    "A session's chosen model."
    session: str = ""
    model: str = ""


class Store:
    def __init__(self, data_dir: Path, max_todos: int = 200):
        self.db, self.max_todos = database(Path(data_dir) / "web.db"), max_todos
        # WAL + NORMAL: no fsync per commit; a power cut may lose the last lines, never corrupt.
        self.db.execute("pragma synchronous = normal")
        self._todo_tables()
        self.lines = self.db.create(Line, name="lines", pk="id", transform=True)
        self.outbox = self.db.create(OutboxRow, name="outbox", pk="request", transform=True)
        self.choices = self.db.create(Choice, name="choices", pk="session", transform=True)
        self.owners = self.db.create(OwnerRow, name="owners", pk="session", transform=True)
        self.db.execute("create index if not exists lines_session on lines(session)")
        self._dedupe_lines()
        self.db.execute("create unique index if not exists lines_key on lines(session, request, role)")

    def _todo_tables(self) -> None:
        "Todos keyed by (session, id); a table from when ids were global is moved over with its ids."
        keys = [name for pk, name in sorted((pk, name) for name, pk in
                                            self.db.execute("select name, pk from pragma_table_info('todos')") if pk)]
        if keys == ["id"]:
            self.db.execute("alter table todos rename to todos_global")
        self.db.execute("create table if not exists todos (session text not null, id integer not null, "
                        "title text not null default '', done integer not null default 0, primary key (session, id))")
        if keys == ["id"]:
            self.db.execute("insert into todos select session, id, title, done from todos_global")
            self.db.execute("drop table todos_global")
        self.db.execute("create table if not exists todo_ids (session text primary key, last integer not null)")

    def todo_list(self, session: str) -> list[Todo]:
        rows = self.db.execute("select id, title, done from todos where session = ? order by id", [session])
        return [Todo(tid, title, bool(done)) for tid, title, done in rows]

    def todo(self, session: str, tid: int) -> Todo | None:
        if not 0 < tid <= MAX_ID:
            return None
        rows = list(self.db.execute("select id, title, done from todos where session = ? and id = ?", [session, tid]))
        return Todo(rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None

    def room(self, session: str) -> int:
        "How many more todos the session's list may hold."
        [(count,)] = self.db.execute("select count(*) from todos where session = ?", [session])
        return self.max_todos - count

    def add_todo(self, session: str, title: str) -> Todo:
        if self.room(session) <= 0:
            raise ListFull(f"The list holds {self.max_todos} todos, as many as it may (MAX_TODOS); delete some first.")
        # The next id is past every id the session has had, so a deleted todo's id is never given again.
        [(tid,)] = self.db.execute(
            "insert into todo_ids (session, last) values (?, (select coalesce(max(id), 0) + 1 from todos where session = ?)) "
            "on conflict (session) do update set last = last + 1 returning last", [session, session])
        self.db.execute("insert into todos (session, id, title, done) values (?, ?, ?, 0)", [session, tid, title])
        return Todo(tid, title, False)

    def toggle_todo(self, session: str, tid: int) -> Todo | None:
        todo = self.todo(session, tid)
        return None if todo is None else self.change_todo(session, tid, done=not todo.done)

    def change_todo(self, session: str, tid: int, *, title: str | None = None, done: bool | None = None) -> Todo | None:
        "Set a todo's title or done; None if the session has no such todo."
        todo = self.todo(session, tid)
        if todo is None:
            return None
        todo = Todo(tid, todo.title if title is None else title, todo.done if done is None else bool(done))
        self.db.execute("update todos set title = ?, done = ? where session = ? and id = ?",
                        [todo.title, todo.done, session, tid])
        return todo

    def restore_todo(self, session: str, todo: Todo) -> Todo:
        "Put a deleted todo back as it was, with its id (which no other todo of the session can have)."
        self.db.execute("insert or ignore into todos (session, id, title, done) values (?, ?, ?, ?)",
                        [session, todo.id, todo.title, todo.done])
        return todo

    def delete_todo(self, session: str, tid: int) -> Todo | None:
        todo = self.todo(session, tid)
        if todo is not None:
            self.db.execute("delete from todos where session = ? and id = ?", [session, tid])
        return todo

    def keep_line(self, line: Line) -> None:
        """Store a line, or its new state: a line keeps its first place in the transcript (its id),
        so a reply that ends after later turns began stays right after its question."""
        self.db.execute(
            "insert into lines (session, request, role, text, status, note, created, thinking, asks, worker, seq, cards) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (session, request, role) do update set "
            "text = excluded.text, status = excluded.status, note = excluded.note, thinking = excluded.thinking, "
            "worker = excluded.worker, seq = excluded.seq, cards = excluded.cards",
            [line.session, line.request, line.role, line.text, line.status, line.note, line.created or time.time(),
             line.thinking, line.asks, line.worker, line.seq, line.cards])

    def _dedupe_lines(self) -> None:
        "Transcripts written before lines kept their place may hold a line twice: keep the newest state."
        self.db.execute("delete from lines where id not in (select max(id) from lines group by session, request, role)")

    def clear_transcript(self, session: str) -> None:
        self.lines.delete_where("session = ?", [session])

    def transcript(self, session: str, limit: int | None = None) -> list[Line]:
        "The newest `limit` lines (all of them without one), oldest first."
        newest = self.lines(where="session = ?", where_args=[session], order_by="id desc", limit=limit)
        return newest[::-1]


    def model_choice(self, session: str) -> str:
        rows = self.choices(where="session = ?", where_args=[session])
        return rows[0].model if rows else ""

    def choose_model(self, session: str, model: str) -> None:
        self.db.execute("insert or replace into choices (session, model) values (?, ?)", [session, model])

    def keep_pending(self, request: str, topic: bytes, payload: bytes) -> None:
        self.db.execute("insert or replace into outbox (request, topic, payload) values (?, ?, ?)",
                        [request, topic, payload])

    def drop_pending(self, request: str) -> None:
        self.db.execute("delete from outbox where request = ?", [request])

    def pending(self, max_bytes: int) -> list[ToBrain]:
        "The outbox, but for what no brain would take (unreadable, or bigger than a frame): dropped for good."
        kept = []
        for row in self.outbox(order_by="rowid"):
            try:
                kept.append(decode([row.topic, row.payload], max_bytes))
            except BadFrame as e:
                log.warning("outbox: dropped an unreadable message %s: %s", row.request, e)
                self.drop_pending(row.request)
        return kept

    def assign(self, session: str, worker: str, epoch: int) -> None:
        self.db.execute("insert or replace into owners (session, worker, epoch) values (?, ?, ?)",
                        [session, worker, epoch])

    def release(self, worker: str) -> None:
        self.db.execute("delete from owners where worker = ?", [worker])

    def assignments(self) -> list[OwnerRow]:
        return list(self.owners())


class StoreThread:
    "Runs Store calls on one thread, in submission order, off the event loop."

    def __init__(self):
        self.pool = ThreadPoolExecutor(1, thread_name_prefix="store")

    async def call(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def post(self, fn, *args) -> None:
        "Fire and forget; a failure is logged, since nobody waits for the result."
        self.pool.submit(fn, *args).add_done_callback(_log_failure)


def _log_failure(future: Future) -> None:
    if future.exception() is not None:
        log.error("store write failed", exc_info=future.exception())


class DiskOutbox:
    "The broker's outbox, kept in SQLite through the store's thread."

    def __init__(self, store: Store, disk: StoreThread):
        self.store, self.disk = store, disk

    def keep(self, msg: ToBrain) -> None:
        self.disk.post(self.store.keep_pending, msg.request, *encode(msg))

    def drop(self, request: str) -> None:
        self.disk.post(self.store.drop_pending, request)

    def assign(self, session: str, owner) -> None:
        self.disk.post(self.store.assign, session, owner.worker, owner.epoch)

    def release(self, worker: str) -> None:
        self.disk.post(self.store.release, worker)
