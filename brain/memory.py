"""Conversations on disk, so a restarted brain still knows every session, and every brain shares
one truth about each: SQLite in DATA_DIR/brain.db for one machine, or PostgreSQL
(BRAIN_DATABASE_URL) for brains on several hosts. Both hold the same tables and behave the same;
only the few lines in `Sqlite` and `Postgres` differ.

Every copy of a conversation belongs to an assignment (`epoch`, given by the web when the session
came to a worker). Reading a session for a new epoch claims it: the stored epoch is raised to it in
the same transaction, so a worker that held the session before can never save it again (its save
raises `Fenced`), and a worker that comes with an older epoch than the stored one is refused. A
worker therefore answers from its cached copy only while it holds the session's current epoch.

Turns change only at the end (appended, or the newest dropped for a regenerate), so saving
writes just the turns after the longest prefix that is as last saved.

The brain reads and writes from its one disk thread (`Disk`, at the end), in the order asked, so a
load after a save of the same session sees the save. What is queued when the thread wakes runs as
one `batch`: one transaction, in which each load's or save's own transaction is a savepoint, so one
that raises (`Fenced`) undoes only itself and the rest commit together, and a hundred sessions
asking at once cost one commit, not a hundred queued one after another. An operation that raises
fails only its own future; a batch whose commit fails fails them all. A future is settled once its
batch has committed: when its callbacks run, what it did is on disk.
"""
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import msgspec

from brain.conversation import Conversation
from shared.messages import Prompt

CONNECT_TIMEOUT_S = 10  # PostgreSQL: a server that does not answer fails the operation, not the brain's disk thread for ever
BUSY_TIMEOUT_S = 10.0  # two brains on one machine write the same file: wait for the other's commit
MAX_BATCH = 200  # bounds how long the first in a batch waits for the rest, and how long the store is held

# The states table: what is not a turn (the app's state, its events the model has not seen yet, the
# state as it was last told, where the context window starts, the app's prompt, ...), the assignment
# that holds the session and the messages acted on. JSON in text columns. (Columns of older
# brains that held one app's own state are left unread: the next app note states the state whole.)
STATE_COLUMNS = {
    "app_state": "text not null default 'null'",
    "unseen": "text not null default '[]'",
    "app_told": "text not null default 'null'",
    "first": "integer not null default 0",
    "tokens_per_char": "double precision not null default 0",
    "model": "text not null default ''",
    "tools_off": "integer not null default 0",
    "epoch": "bigint not null default 0",
    "handled": "text not null default '[]'",
    "prompt": "text not null default ''",
}


class Fenced(Exception):
    "The session is held under a newer assignment; this copy of it may not be used or saved."
    def __init__(self, session: str, mine: int, stored: int):
        super().__init__(f"session {session[:8]} is held at epoch {stored}, not {mine}")
        self.session, self.mine, self.stored = session, mine, stored


class StoreUnavailable(SystemExit):
    "The conversation store cannot be reached at start; the message says where and why."


class Sqlite:
    "One file; writers take turns (BEGIN IMMEDIATE), so the epoch read in a transaction holds to its commit."
    key = "integer primary key"
    lock = ""
    schema_lock = "select 1"  # BEGIN IMMEDIATE already keeps other writers out

    def __init__(self, path: Path):
        # Used from the engine's one disk thread, after being made on another.
        self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S)
        self.conn.execute("pragma journal_mode = wal")
        # WAL + NORMAL: no fsync per commit, which would delay every reply's first token.
        self.conn.execute("pragma synchronous = normal")

    def execute(self, sql: str, params=()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        self.conn.executemany(sql, rows)

    @contextmanager
    def transaction(self):
        "Within another (a batch), a savepoint, as psycopg's transactions nest: what raises in it alone is undone."
        nested = self.conn.in_transaction
        self.conn.execute("savepoint op" if nested else "begin immediate")
        try:
            yield
        except BaseException:
            self.conn.execute("rollback to op" if nested else "rollback")
            raise
        finally:
            if nested:
                self.conn.execute("release op")  # rolled back to or not, it leaves the stack
        if not nested:
            self.conn.execute("commit")

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.execute(f"pragma table_info({table})")}


class Postgres:
    "A server all brains reach; the states row is locked (FOR UPDATE) where the epoch is read."
    key = "bigint generated always as identity primary key"
    lock = " for update"
    schema_lock = "select pg_advisory_xact_lock(81511)"  # brains starting at once make the tables once

    def __init__(self, url: str):
        import psycopg  # only brains that use PostgreSQL need it loaded

        self.psycopg, self.url = psycopg, url
        try:
            self.conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as e:
            where = psycopg.conninfo.conninfo_to_dict(url)  # named without its password
            raise StoreUnavailable(f"cannot reach the conversation store (BRAIN_DATABASE_URL: database "
                                   f"{where.get('dbname', '?')} on {where.get('host', '?')}:{where.get('port', 5432)}): "
                                   f"{str(e).strip()}") from None

    def _connected(self):
        "A connection lost (the server restarted, the network broke) is made again at the next use."
        if self.conn.closed or self.conn.broken:
            self.conn = self.psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        return self.conn

    def execute(self, sql: str, params=()) -> list[tuple]:
        cursor = self._connected().execute(sql.replace("?", "%s"), params)
        return cursor.fetchall() if cursor.description else []

    def executemany(self, sql: str, rows: list[tuple]) -> None:
        with self._connected().cursor() as cursor:
            cursor.executemany(sql.replace("?", "%s"), rows)

    @contextmanager
    def transaction(self):
        "Within another (a batch), psycopg makes it a savepoint: what raises in it alone is undone."
        with self._connected().transaction():
            yield

    def columns(self, table: str) -> set[str]:
        return {row[0] for row in self.execute("select column_name from information_schema.columns "
                                               "where table_name = ?", [table])}


class Memory:
    def __init__(self, db: Sqlite | Postgres):
        self.db = db
        self.saved: dict[str, list[tuple]] = {}  # by session: each stored turn's fingerprint, in order
        with db.transaction():
            db.execute(db.schema_lock)
            db.execute(f"create table if not exists turns (id {db.key}, session text not null, role text not null, "
                       "content text not null, extra text not null default '')")
            db.execute("create index if not exists turns_session on turns(session, id)")
            db.execute("create table if not exists states (session text primary key)")
            have = db.columns("states")
            for name, decl in STATE_COLUMNS.items():  # tables of an older brain gain what is new
                if name not in have:
                    db.execute(f"alter table states add column {name} {decl}")

    @classmethod
    def open(cls, database_url: str, data_dir: Path) -> "Memory":
        "PostgreSQL at `database_url` when it is set, else SQLite in `data_dir`."
        return cls(Postgres(database_url) if database_url else Sqlite(Path(data_dir) / "brain.db"))

    @contextmanager
    def batch(self):
        """One transaction for many loads and saves; each one's own transaction is a savepoint in it.
        The body raising, or the commit failing, undoes them all."""
        try:
            with self.db.transaction():
                yield
        except BaseException:
            # What `saved` says is stored may not be (or not be known to be): every session's next
            # save writes it whole.
            self.saved.clear()
            raise

    def _stored_epoch(self, session: str, lock: bool = False) -> int:
        rows = self.db.execute("select epoch from states where session = ?" + (self.db.lock if lock else ""), [session])
        return rows[0][0] if rows else 0

    def load(self, session: str, epoch: int | None = None) -> Conversation:
        """The session as stored. With `epoch`, claimed for that assignment (raises Fenced if the
        stored one is newer); without, read as it is, under the stored epoch."""
        db = self.db
        with db.transaction():
            if epoch is not None:
                db.execute("insert into states (session, epoch) values (?, ?) on conflict (session) do nothing",
                           [session, epoch])
            stored = self._stored_epoch(session, lock=True)
            if epoch is not None and stored > epoch:
                raise Fenced(session, epoch, stored)
            if epoch is not None and epoch != stored:
                db.execute("update states set epoch = ? where session = ?", [epoch, session])
            turns = db.execute("select role, content, extra from turns where session = ? order by id", [session])
            states = db.execute(f"select {', '.join(STATE_COLUMNS)} from states where session = ?", [session])
        conversation = Conversation(turns=[{"role": role, "content": content} | _decode(extra, dict, {})
                                           for role, content, extra in turns])
        if states:
            state = dict(zip(STATE_COLUMNS, states[0]))
            conversation.state = _decode(state["app_state"], str | None, None)
            conversation.unseen = _decode(state["unseen"], list[str], [])
            conversation.told = _decode(state["app_told"], str | None, None)
            conversation.prompt = _decode(state["prompt"], Prompt, conversation.prompt)
            conversation.first = state["first"] or 0
            conversation.tokens_per_char = state["tokens_per_char"] or conversation.tokens_per_char
            conversation.model = state["model"] or ""
            conversation.tools_off = bool(state["tools_off"])
            conversation.handled = _decode(state["handled"], list[str], [])
        conversation.epoch = stored if epoch is None else epoch
        self.saved[session] = [_fingerprint(t) for t in conversation.turns]
        return conversation

    def evict(self, session: str) -> None:
        "The session left the brain's memory; it is read back whole when it returns."
        self.saved.pop(session, None)

    def save(self, session: str, conversation: Conversation, afresh: bool = False) -> None:
        """Write what changed; `afresh` replaces every turn (a new chat). Raises Fenced, writing
        nothing, when the session has been claimed under a newer epoch."""
        db, c = self.db, conversation
        known = self.saved.get(session)
        afresh = afresh or known is None  # what is stored is unknown here (a batch failed): replace it
        before = [] if afresh else known
        after = [_fingerprint(t) for t in c.turns]
        same = min(len(before), len(after))
        while same and before[same - 1] != after[same - 1]:  # changes are at the end: look there first
            same -= 1
        with db.transaction():
            stored = self._stored_epoch(session, lock=True)
            if stored > c.epoch:
                raise Fenced(session, c.epoch, stored)
            if afresh:
                db.execute("delete from turns where session = ?", [session])
            elif len(before) > same:  # the newest turns were dropped or replaced (a regenerate)
                db.execute("delete from turns where id in (select id from turns where session = ? "
                           "order by id desc limit ?)", [session, len(before) - same])
            db.executemany("insert into turns (session, role, content, extra) values (?, ?, ?, ?)",
                           [(session, t["role"], _text(t["content"]), _extra(t)) for t in c.turns[same:]])
            values = [_json(c.state), _json(c.unseen), _json(c.told), c.first, c.tokens_per_char, c.model,
                      int(c.tools_off), c.epoch, _json(c.handled), _json(c.prompt)]
            db.execute(f"insert into states (session, {', '.join(STATE_COLUMNS)}) values (?{', ?' * len(STATE_COLUMNS)}) "
                       f"on conflict (session) do update set {', '.join(f'{n} = excluded.{n}' for n in STATE_COLUMNS)}",
                       [session, *values])
        self.saved[session] = after


def _fingerprint(turn: dict) -> tuple:
    return turn["role"], turn["content"], _extra(turn)


def _text(value: str) -> str:
    "PostgreSQL text cannot hold NUL; neither store keeps it, so both hold the same."
    return value.replace("\x00", "")


def _extra(turn: dict) -> str:
    rest = {k: v for k, v in turn.items() if k not in ("role", "content")}
    return _text(_json(rest)) if rest else ""


def _json(value) -> str:
    return msgspec.json.encode(value).decode()


def _decode(raw: str | None, kind, empty):
    """A saved field, or `empty` when it is missing or of an older shape: the model is then told the
    app's state whole again, so nothing it needs is lost."""
    try:
        return msgspec.json.decode(raw, type=kind) if raw else empty
    except (msgspec.DecodeError, msgspec.ValidationError):
        return empty


class Disk(Executor):
    def __init__(self, batch: Callable[[], AbstractContextManager], name: str = "memory", limit: int = MAX_BATCH):
        self.batch, self.limit = batch, limit
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.closed, self.lock = False, threading.Lock()
        # A daemon, so a process that never shuts it down still exits; the worker does, to finish the queue.
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()
        with self.lock:  # nothing may be queued behind the sentinel that stops the thread
            if self.closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self.queue.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True) -> None:
        "What is queued still runs; `wait`: until it has."
        with self.lock:
            if not self.closed:
                self.closed = True
                self.queue.put(None)
        if wait:
            self.thread.join()

    def _work(self) -> None:
        while True:
            jobs = [self.queue.get()]
            while len(jobs) < self.limit and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            stop = jobs[-1] is None  # the sentinel is always the last thing queued
            self._run([job for job in jobs if job is not None and job[0].set_running_or_notify_cancel()])
            if stop:
                return

    def _run(self, jobs: list[tuple]) -> None:
        if not jobs:
            return
        outcomes = []
        try:
            with self.batch():
                for future, fn, args, kwargs in jobs:
                    try:
                        outcomes.append((future.set_result, fn(*args, **kwargs)))
                    except BaseException as e:  # noqa: BLE001 - its future tells, as a ThreadPoolExecutor's would
                        outcomes.append((future.set_exception, e))
        except BaseException as e:  # noqa: BLE001 - the commit failed: nothing of the batch is known to be on disk
            for future, *_ in jobs:
                future.set_exception(e)
            return
        for settle, value in outcomes:
            settle(value)
