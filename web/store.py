"""The web's SQLite data under DATA_DIR (web.db): each session's chat transcript and model choice,
the bus's outbox and the sessions' assignments. The app keeps its own tables in the same database.

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
from dataclasses import dataclass, replace
from pathlib import Path

from fastlite import database

from shared.messages import BadFrame, ToBrain, decode, encode
from web.transcript import Line

log = logging.getLogger("web.store")


@dataclass
class OutboxRow:
    "A message for a brain that no brain has acked yet, as its two bus frames."
    id: str = ""
    topic: bytes = b""
    payload: bytes = b""


@dataclass
class OwnerRow:
    "Which brain worker holds a session, under which epoch (see web/dispatch.py)."
    session: str = ""
    worker: str = ""
    epoch: int = 0


@dataclass
class GrantRow:
    "A claim the web granted: its message, and the worker and epoch it was granted to."
    id: str = ""
    worker: str = ""
    epoch: int = 0


@dataclass
class Choice:
    "A session's chosen model."
    session: str = ""
    model: str = ""


class Store:
    def __init__(self, data_dir: Path):
        self.db = database(Path(data_dir) / "web.db")
        # WAL + NORMAL: no fsync per commit; a power cut may lose the last lines, never corrupt.
        self.db.execute("pragma synchronous = normal")
        self._reply_column()
        self.lines = self.db.create(Line, name="lines", pk="id", transform=True)
        self.outbox = self.db.create(OutboxRow, name="bus_outbox", pk="id", transform=True)
        self.choices = self.db.create(Choice, name="choices", pk="session", transform=True)
        self.owners = self.db.create(OwnerRow, name="owners", pk="session", transform=True)
        self.grants = self.db.create(GrantRow, name="grants", pk="id", transform=True)
        self.db.execute("create index if not exists lines_session on lines(session)")
        self._key_lines()
        self.db.execute("create unique index if not exists lines_line on lines(session, key)")

    def keep_line(self, line: Line) -> None:
        """Store a line, or its new state: a line keeps its first place in the transcript (its id),
        so a reply that ends after later turns began stays right after its question."""
        self.db.execute(
            "insert into lines (session, key, reply, role, text, status, note, created, thinking, asks, worker, seq, cards) "
            "values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict (session, key) do update set "
            "text = excluded.text, status = excluded.status, note = excluded.note, thinking = excluded.thinking, "
            "worker = excluded.worker, seq = excluded.seq, cards = excluded.cards",
            [line.session, line.key, line.reply, line.role, line.text, line.status, line.note, line.created or time.time(),
             line.thinking, line.asks, line.worker, line.seq, line.cards])

    def _reply_column(self) -> None:
        "A web.db from before named a line's reply id `request`; the bus and the export say `reply`."
        columns = {row[1] for row in self.db.execute("pragma table_info(lines)").fetchall()}
        if "request" in columns and "reply" not in columns:
            self.db.execute("alter table lines rename column request to reply")

    def _key_lines(self) -> None:
        """Lines written before each had its own key were keyed by (reply, role): they get that
        key (a note among them keeps its place, the one note per reply they could hold), and a
        transcript older still, from before lines kept their place, keeps each line's newest state."""
        self.db.execute("drop index if exists lines_key")
        if self.db.execute("select 1 from lines where key is null or key = '' limit 1").fetchone():
            self.db.execute("delete from lines where id not in (select max(id) from lines group by session, reply, role)")
            self.db.execute("update lines set key = role || '-' || reply where key is null or key = ''")

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

    def keep_pending(self, message: str, topic: bytes, payload: bytes) -> None:
        self.db.execute("insert or replace into bus_outbox (id, topic, payload) values (?, ?, ?)",
                        [message, topic, payload])

    def drop_pending(self, message: str) -> None:
        self.db.execute("delete from bus_outbox where id = ?", [message])

    def pending(self, max_bytes: int) -> list[ToBrain]:
        "The outbox, but for what no brain would take (unreadable, or bigger than a frame): dropped for good."
        kept = []
        for row in self.outbox(order_by="rowid"):
            try:
                kept.append(decode([row.topic, row.payload], max_bytes))
            except BadFrame as e:
                log.warning("outbox: dropped an unreadable message %s: %s", row.id, e)
                self.drop_pending(row.id)
        return kept

    def keep_grant(self, message: str, worker: str, epoch: int, remembered: int) -> None:
        "A message granted: out of the outbox, and remembered; only the newest `remembered` grants are kept."
        self.drop_pending(message)
        self.db.execute("insert or replace into grants (id, worker, epoch) values (?, ?, ?)", [message, worker, epoch])
        self.db.execute("delete from grants where rowid <= (select max(rowid) from grants) - ?", [remembered])

    def granted(self) -> list[GrantRow]:
        "The grants remembered, oldest first."
        return list(self.grants(order_by="rowid"))

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


class Transcripts:
    """The sessions' transcripts and model choices as web/sessions.py keeps them: written behind, in
    order, on the store's thread (each line as it was when kept), read back through it."""

    def __init__(self, store: Store, disk: StoreThread):
        self.store, self.disk = store, disk

    def keep(self, line: Line) -> None:
        self.disk.post(self.store.keep_line, replace(line))  # a copy: the line changes on, the write is later

    def choose(self, session: str, model: str) -> None:
        self.disk.post(self.store.choose_model, session, model)

    def clear(self, session: str) -> None:
        self.disk.post(self.store.clear_transcript, session)

    async def read(self, session: str, limit: int) -> tuple[list[Line], str]:
        "The session's newest `limit` lines and its model choice, in one trip to the store's thread."
        return await self.disk.call(lambda: (self.store.transcript(session, limit), self.store.model_choice(session)))


class DiskOutbox:
    "The bus's outbox (web/dispatch.py), kept in SQLite through the store's thread, with the newest `grants` grants."

    def __init__(self, store: Store, disk: StoreThread, grants: int):
        self.store, self.disk, self.grants = store, disk, grants

    def keep(self, msg: ToBrain) -> None:
        self.disk.post(self.store.keep_pending, msg.id, *encode(msg))

    def drop(self, message: str) -> None:
        self.disk.post(self.store.drop_pending, message)

    def granted(self, message: str, owner) -> None:
        self.disk.post(self.store.keep_grant, message, owner.worker, owner.epoch, self.grants)

    def assign(self, session: str, owner) -> None:
        self.disk.post(self.store.assign, session, owner.worker, owner.epoch)

    def release(self, worker: str) -> None:
        self.disk.post(self.store.release, worker)
