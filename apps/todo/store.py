"""The todo app's data: each session's todos, in its own SQLite file (`todo.db` in DATA_DIR).

Todo ids are each session's own: 1, 2, 3, ... in each session, never reused in it (the last one
given is kept apart from the todos), so another session's todos never show in the numbers and a
deleted todo always comes back under its id. A session holds at most `max_todos`. The file is
opened on first use; one lock makes each change whole, since routes run on the web's threads and
the model's actions on the store's.
"""
import re
import threading
from functools import cached_property
from pathlib import Path

import msgspec
from fastlite import database

from web.apps import Refused, plain_text

MAX_ID = 2**63 - 1  # SQLite's integers: a larger id names no todo
MAX_TITLE_CHARS = 500
TODO_MAX_BYTES = MAX_TITLE_CHARS * 6 + 64  # a todo in JSON at worst: every character escaped, with its id and done
FRAME_MARGIN = 16_384  # what an app event or tool result carries besides the list
NUMBER = re.compile(r"#?([0-9]+)")  # ASCII digits: str.isdigit() takes "²" too


class Todo(msgspec.Struct, frozen=True):
    id: int
    title: str
    done: bool


class ListFull(Refused):
    "The session's list holds as many todos as it may; the text says so."


def todo_limit(max_todos: int, max_frame_bytes: int) -> int:
    """MAX_TODOS, or fewer when a bus frame (BUS_MAX_FRAME_BYTES) could not carry that many of the
    longest todos: every app event carries the whole list, and a tool result carries it twice (on
    one line for the model, and as the state)."""
    return max(1, min(max_todos, (max_frame_bytes - FRAME_MARGIN) // (2 * TODO_MAX_BYTES)))


def listed(todos: list[Todo]) -> str:
    "The list on one line, as the model is told it after a tool call (small models echo a Markdown list back)."
    if not todos:
        return "The todo list is now empty."
    return "The todo list is now: " + "; ".join(f"#{t.id} {t.title}{' (done)' if t.done else ''}" for t in todos) + "."


def state(todos: list[Todo]) -> str:
    "The list as the model is told it after a change of the user's."
    if not todos:
        return "The todo list is now empty."
    return "The todo list now:\n" + "\n".join(f"- [{'x' if t.done else ' '}] #{t.id} {t.title}" for t in todos)


def tell(action: str, t: Todo) -> str:
    "A change in the app's words (added, toggled, renamed, deleted), as its routes tell it."
    if action == "toggled":
        return f"marked #{t.id} '{t.title}' {'done' if t.done else 'not done'}"
    return f"renamed #{t.id} to '{t.title}'" if action == "renamed" else f"{action} #{t.id} '{t.title}'"


def clean_title(title) -> str:
    "A todo title as the app keeps it (`plain_text`), or Refused with why, also when empty or too long."
    title = plain_text(title, "a title")
    if not 0 < len(title) <= MAX_TITLE_CHARS:
        raise Refused(f"a title must be 1 to {MAX_TITLE_CHARS} characters.")
    return title


NOT_NAMES = frozenset({"the", "and", "for", "with", "from", "that", "this", "one", "ones", "todo", "todos", "list", "done",
                       "not", "are", "all", "yet", "now"})


def _words(text: str) -> set[str]:
    "A text's words as they are compared: 3 letters or more, each cut to its first 4 (so 'watered' is 'water')."
    return {w[:4] for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) >= 3 and w not in NOT_NAMES}


def mentions(asked: str, title: str) -> bool:
    "Whether a message has a word of a title in it."
    return bool(_words(title) & _words(asked))


DONE_WORDS = re.compile(r"\b(?:done|finish|complet|tick|check|clear|cross)", re.I)


def says_done(asked: str) -> bool:
    "Whether a message speaks of todos being done (done, finished, completed, ticked, checked, cleared, crossed off)."
    return bool(DONE_WORDS.search(asked))


def names(asked: str, todo: Todo) -> bool:
    "Whether a message names a todo: by its number (#2) or by a word of its title."
    return bool(re.search(rf"(?<![\w.]){todo.id}(?![\w.])", asked)) or mentions(asked, todo.title)


def todo_number(ref) -> int | None:
    """The id a call gives (2, "2", "#2"), or None when it names the todo by its title. Only ASCII
    digits make a number ("²" is a title, which int() could not read), and no id has more digits
    than SQLite's integers: a longer number is 0, which names no todo (and int() of thousands of
    digits would raise)."""
    if isinstance(ref, int):
        return ref
    digits = NUMBER.fullmatch(str(ref).strip())
    if digits is None:
        return None
    return int(digits[1]) if len(digits[1]) <= len(str(MAX_ID)) else 0


class Todos:
    def __init__(self, path: Path, max_todos: int = 200):
        self.path, self.max_todos, self.lock = Path(path), max_todos, threading.RLock()

    @cached_property
    def db(self):
        db = database(self.path)
        db.execute("create table if not exists todos (session text not null, id integer not null, title text not null "
                   "default '', done integer not null default 0, primary key (session, id))")
        db.execute("create table if not exists todo_ids (session text primary key, last integer not null)")
        self._take_over(db, self.path.parent / "web.db")
        return db

    @staticmethod
    def _take_over(db, older: Path) -> None:
        """Todos an older version kept in the web's own database (web.db) move here once, with their
        ids (and from a table of global ids, each under its session), so an upgrade loses none."""
        if not older.exists() or list(db.execute("select 1 from todos limit 1")):
            return
        db.execute("attach database ? as older", [str(older)])
        try:
            tables = {name for (name,) in db.execute("select name from older.sqlite_master where type = 'table'")}
            if "todos" in tables:
                db.execute("insert or ignore into todos select session, id, title, done from older.todos")
            if "todo_ids" in tables:
                db.execute("insert or ignore into todo_ids select session, last from older.todo_ids")
        finally:
            db.execute("detach database older")

    def all(self, session: str) -> list[Todo]:
        rows = self.db.execute("select id, title, done from todos where session = ? order by id", [session])
        return [Todo(tid, title, bool(done)) for tid, title, done in rows]

    def get(self, session: str, tid: int) -> Todo | None:
        if not 0 < tid <= MAX_ID:
            return None
        rows = list(self.db.execute("select id, title, done from todos where session = ? and id = ?", [session, tid]))
        return Todo(rows[0][0], rows[0][1], bool(rows[0][2])) if rows else None

    def room(self, session: str) -> int:
        "How many more todos the session's list may hold."
        [(count,)] = self.db.execute("select count(*) from todos where session = ?", [session])
        return self.max_todos - count

    def add(self, session: str, title: str) -> Todo:
        with self.lock:
            if self.room(session) <= 0:
                raise ListFull(f"The list holds {self.max_todos} todos, as many as it may (MAX_TODOS); delete some first.")
            # The next id is past every id the session has had, so a deleted todo's id is never given again.
            [(tid,)] = self.db.execute(
                "insert into todo_ids (session, last) values (?, (select coalesce(max(id), 0) + 1 from todos where "
                "session = ?)) on conflict (session) do update set last = last + 1 returning last", [session, session])
            self.db.execute("insert into todos (session, id, title, done) values (?, ?, ?, 0)", [session, tid, title])
            return Todo(tid, title, False)

    def toggle(self, session: str, tid: int) -> Todo | None:
        with self.lock:
            todo = self.get(session, tid)
            return None if todo is None else self.change(session, tid, done=not todo.done)

    def change(self, session: str, tid: int, *, title: str | None = None, done: bool | None = None) -> Todo | None:
        "Set a todo's title or done; None if the session has no such todo."
        with self.lock:
            todo = self.get(session, tid)
            if todo is None:
                return None
            todo = Todo(tid, todo.title if title is None else title, todo.done if done is None else bool(done))
            self.db.execute("update todos set title = ?, done = ? where session = ? and id = ?",
                            [todo.title, todo.done, session, tid])
            return todo

    def restore(self, session: str, todo: Todo) -> Todo:
        "Put a deleted todo back as it was, with its id (which no other todo of the session can have)."
        self.db.execute("insert or ignore into todos (session, id, title, done) values (?, ?, ?, ?)",
                        [session, todo.id, todo.title, todo.done])
        return todo

    def delete(self, session: str, tid: int) -> Todo | None:
        with self.lock:
            todo = self.get(session, tid)
            if todo is not None:
                self.db.execute("delete from todos where session = ? and id = ?", [session, tid])
            return todo
