"""The model's actions on the todo list (its tool calls), applied by the web, which owns the todos.

A call is checked as a user's input is (its arguments against the tool's schema, the todo belongs
to the session, the same title rules), applied through the store as a click would be, and kept by
its call id: a call that comes again (a message re-sent after a restart) is answered from what was
kept and never applied twice, and a kept action can be undone exactly, a deleted todo coming back
with its id, title and state. Everything here runs on the store's thread, one call at a time.
"""
from dataclasses import dataclass

import msgspec

from shared.messages import Todo
from web.store import Store

MAX_TITLE_CHARS = 500


def clean_title(title: str) -> str | None:
    "A todo title as the app keeps it (spaces folded), or None when it is empty or too long."
    title = " ".join(str(title).split())
    return title if 0 < len(title) <= MAX_TITLE_CHARS else None


class AddTodo(msgspec.Struct, forbid_unknown_fields=True):
    title: str


class SetTodoDone(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    done: bool


class RenameTodo(msgspec.Struct, forbid_unknown_fields=True):
    id: int
    title: str


class DeleteTodo(msgspec.Struct, forbid_unknown_fields=True):
    id: int


class ClearDone(msgspec.Struct, forbid_unknown_fields=True):
    pass


ARGUMENTS = {"add_todo": AddTodo, "set_todo_done": SetTodoDone, "rename_todo": RenameTodo,
             "delete_todo": DeleteTodo, "clear_done": ClearDone}
Change = tuple[str, Todo]  # (added | toggled | renamed | deleted | restored, the todo after it)


@dataclass
class ActionRow:
    "One tool call as applied (or refused): `before` and `after` hold the todos it touched (JSON)."
    call: str = ""
    session: str = ""
    reply: str = ""
    name: str = ""
    ok: bool = False
    text: str = ""
    before: str = "[]"
    after: str = "[]"
    undone: bool = False


class Refused(Exception):
    "A call that cannot be applied; the text tells the model what to do instead."


class Actions:
    def __init__(self, store: Store):
        self.store = store
        self.rows = store.db.create(ActionRow, name="actions", pk="call", transform=True)

    def act(self, session: str, reply: str, call: str, name: str, arguments: dict) -> tuple[ActionRow, list[Change]]:
        "Apply a call once; a call seen before is answered as it was, with no change."
        kept = self.rows(where="call = ? and session = ?", where_args=[call, session])
        if kept:
            return kept[0], []
        row = ActionRow(call=call, session=session, reply=reply, name=name)
        changes: list[Change] = []
        try:
            changes = self._apply(session, name, self._arguments(name, arguments), row)
            row.ok = True
        except Refused as e:
            row.text = f"Error: {e}"
        self.rows.insert(row)
        return row, changes

    def undo(self, session: str, call: str) -> tuple[ActionRow | None, list[Change]]:
        "Revert exactly what an action did; None when there is no such action left to undo."
        rows = self.rows(where="call = ? and session = ? and ok and not undone", where_args=[call, session])
        if not rows:
            return None, []
        row = rows[0]
        before = msgspec.json.decode(row.before, type=list[Todo])
        after = msgspec.json.decode(row.after, type=list[Todo])
        changes: list[Change] = []
        for todo in after:
            if not any(b.id == todo.id for b in before) and self.store.delete_todo(session, todo.id):
                changes.append(("deleted", todo))
        for todo in before:
            if not any(a.id == todo.id for a in after):
                changes.append(("restored", self.store.restore_todo(session, todo)))
            elif (now := self.store.change_todo(session, todo.id, title=todo.title, done=todo.done)) is not None:
                changes.append(("renamed" if row.name == "rename_todo" else "toggled", now))
        row.undone = True
        self.rows.update(row)
        return row, changes

    @staticmethod
    def _arguments(name: str, arguments: dict):
        kind = ARGUMENTS.get(name)
        if kind is None:
            raise Refused(f"there is no tool named {name!r}; the tools are {', '.join(ARGUMENTS)}.")
        try:
            return msgspec.convert(arguments, kind)
        except msgspec.ValidationError as e:
            fields = ", ".join(kind.__struct_fields__) or "no arguments"
            raise Refused(f"{name} takes {fields}: {e}.") from None

    def _apply(self, session: str, name: str, args, row: ActionRow) -> list[Change]:
        store = self.store
        if isinstance(args, ClearDone):
            done = [t for t in store.todo_list(session) if t.done]
            for t in done:
                store.delete_todo(session, t.id)
            row.text = (f"Deleted the {len(done)} done todos: " + ", ".join(f"#{t.id} '{t.title}'" for t in done) + "."
                        if done else "There were no done todos to delete.")
            row.before = msgspec.json.encode(done).decode()
            return [("deleted", t) for t in done]
        if isinstance(args, AddTodo):
            title = self._title(args.title)
            todo = store.add_todo(session, title)
            row.text, row.after = f"Added #{todo.id} '{todo.title}'.", msgspec.json.encode([todo]).decode()
            return [("added", todo)]
        old = store.todo(session, args.id)
        if old is None:
            raise Refused(f"there is no todo with id {args.id}; use an id from the list.")
        row.before = msgspec.json.encode([old]).decode()
        if isinstance(args, DeleteTodo):
            store.delete_todo(session, old.id)
            row.text = f"Deleted #{old.id} '{old.title}'."
            return [("deleted", old)]
        if isinstance(args, RenameTodo):
            new = store.change_todo(session, old.id, title=self._title(args.title))
            row.text, change = f"Renamed #{old.id} '{old.title}' to '{new.title}'.", ("renamed", new)
        else:
            new = store.change_todo(session, old.id, done=args.done)
            row.text, change = f"Marked #{new.id} '{new.title}' {'done' if new.done else 'not done'}.", ("toggled", new)
        row.after = msgspec.json.encode([new]).decode()
        return [change]

    @staticmethod
    def _title(title: str) -> str:
        clean = clean_title(title)
        if clean is None:
            raise Refused(f"a title must be 1 to {MAX_TITLE_CHARS} characters.")
        return clean
