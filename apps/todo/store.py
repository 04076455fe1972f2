"""The todo app's data: each session's todos, in the web's SQLite database.

Todo ids are each session's own: 1, 2, 3, ... in each session, never reused in it (the last one
given is kept apart from the todos), so another session's todos never show in the numbers and a
deleted todo always comes back under its id. A session holds at most `max_todos`. Every call runs
on the store's thread (web/store.py), one at a time.
"""
import msgspec
from fastlite import Database

from web.apps import Refused

MAX_ID = 2**63 - 1  # SQLite's integers: a larger id names no todo


class Todo(msgspec.Struct, frozen=True):
    id: int
    title: str
    done: bool


class ListFull(Refused):
    "The session's list holds as many todos as it may; the text says so."


class Todos:
    def __init__(self, db: Database, max_todos: int = 200):
        self.db, self.max_todos = db, max_todos
        self._tables()

    def _tables(self) -> None:
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
        if self.room(session) <= 0:
            raise ListFull(f"The list holds {self.max_todos} todos, as many as it may (MAX_TODOS); delete some first.")
        # The next id is past every id the session has had, so a deleted todo's id is never given again.
        [(tid,)] = self.db.execute(
            "insert into todo_ids (session, last) values (?, (select coalesce(max(id), 0) + 1 from todos where session = ?)) "
            "on conflict (session) do update set last = last + 1 returning last", [session, session])
        self.db.execute("insert into todos (session, id, title, done) values (?, ?, ?, 0)", [session, tid, title])
        return Todo(tid, title, False)

    def toggle(self, session: str, tid: int) -> Todo | None:
        todo = self.get(session, tid)
        return None if todo is None else self.change(session, tid, done=not todo.done)

    def change(self, session: str, tid: int, *, title: str | None = None, done: bool | None = None) -> Todo | None:
        "Set a todo's title or done; None if the session has no such todo."
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
        todo = self.get(session, tid)
        if todo is not None:
            self.db.execute("delete from todos where session = ? and id = ?", [session, tid])
        return todo
