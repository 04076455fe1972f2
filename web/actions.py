"""The model's actions on the todo list (its tool calls), applied by the web, which owns the todos.

A call is checked as a user's input is (its arguments against the tool's schema, the todo belongs
to the session, the same title rules), applied through the store as a click would be, and kept by
its call id: a call that comes again (a message re-sent after a restart) is answered from what was
kept and never applied twice, and a kept action can be undone exactly, a deleted todo coming back
with its id, title and state. Everything here runs on the store's thread, one call at a time.
"""
from dataclasses import dataclass

import msgspec

from shared.config import Settings
from shared.messages import Todo
from web.store import ListFull, Store

MAX_TITLE_CHARS = 500
TODO_MAX_BYTES = MAX_TITLE_CHARS * 6 + 64  # a todo in JSON at worst: every character escaped, with its id and done
FRAME_MARGIN = 16_384  # what a todo event or tool result carries besides the list


def todo_limit(settings: Settings) -> int:
    """MAX_TODOS, or fewer when a bus frame (BUS_MAX_FRAME_BYTES) could not carry that many of the
    longest todos: every todo event and tool result carries the whole list."""
    return max(1, min(settings.max_todos, (settings.max_frame_bytes - FRAME_MARGIN) // TODO_MAX_BYTES))


def clean_title(title: str) -> str | None:
    """A todo title as the app keeps it (spaces folded), or None when it is empty, too long, or
    holds a lone surrogate (which no store or message could encode)."""
    title = " ".join(str(title).split())
    try:
        title.encode()
    except UnicodeEncodeError:
        return None
    return title if 0 < len(title) <= MAX_TITLE_CHARS else None


# Small models get arguments roughly right: unknown keys are ignored, and a todo may be given by
# its id ("2" and "#2" too) or by its title (see `Actions._find`).
TodoRef = int | str


class AddTodo(msgspec.Struct):
    title: str


class SetTodoDone(msgspec.Struct):
    id: TodoRef
    done: bool = True  # "tick off the stamps" often comes without it


class RenameTodo(msgspec.Struct):
    id: TodoRef
    title: str


class DeleteTodo(msgspec.Struct):
    id: TodoRef


class ClearDone(msgspec.Struct):
    pass


ARGUMENTS = {"add_todo": AddTodo, "set_todo_done": SetTodoDone, "rename_todo": RenameTodo,
             "delete_todo": DeleteTodo, "clear_done": ClearDone}
# Names small models gave these tools in `make eval` (BENCHMARKS.md): taken for the tool they mean.
ALIASES = {"remove_todo": "delete_todo", "mark_done": "set_todo_done", "mark_todo_done": "set_todo_done",
           "complete_todo": "set_todo_done", "clear_completed": "clear_done"}
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
        # Keyed by session too: call ids come from the model, and two sessions' may well be the same.
        self.rows = store.db.create(ActionRow, name="actions", pk=["session", "call"], transform=True)

    def _kept(self, session: str, call: str, where: str = "") -> ActionRow | None:
        rows = self.rows(where=f"call = ? and session = ?{where}", where_args=[call, session])
        if not rows:
            return None
        row = rows[0]
        row.ok, row.undone = bool(row.ok), bool(row.undone)  # SQLite gives booleans back as 0 and 1
        return row

    def act(self, session: str, reply: str, call: str, name: str, arguments: dict) -> tuple[ActionRow, list[Change]]:
        "Apply a call once; a call seen before is answered as it was, with no change."
        kept = self._kept(session, call)
        if kept:
            return kept, []
        name = ALIASES.get(name, name)
        row = ActionRow(call=call, session=session, reply=reply, name=name)
        changes: list[Change] = []
        try:
            changes = self._apply(session, name, self._arguments(name, arguments), row)
            row.ok = True
        except (Refused, ListFull) as e:
            row.text = f"Error: {e}"
        self.rows.insert(row)
        return row, changes

    def undo(self, session: str, call: str) -> tuple[ActionRow | None, list[Change]]:
        """Revert exactly what an action did; None when there is no such action left to undo.
        Raises ListFull, changing nothing, when the todos it would bring back do not fit."""
        row = self._kept(session, call, " and ok and not undone")
        if row is None:
            return None, []
        before = msgspec.json.decode(row.before, type=list[Todo])
        after = msgspec.json.decode(row.after, type=list[Todo])
        back = sum(1 for b in before if not any(a.id == b.id for a in after))
        gone = sum(1 for a in after if not any(b.id == a.id for b in before))
        if back - gone > self.store.room(session):
            raise ListFull(f"Undoing that would bring back {back} todos, more than the list has room for (MAX_TODOS).")
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
        if "id" in kind.__struct_fields__ and "id" not in arguments:
            # The todo named under another key: {"todo": ...}, or its title where no new title is asked.
            ref = next((arguments[k] for k in ("todo", "todo_id", "name", "title")
                        if k in arguments and not (k == "title" and "title" in kind.__struct_fields__)), None)
            arguments = {**arguments, "id": ref} if ref is not None else arguments
        try:
            return msgspec.convert(arguments, kind, strict=False)
        except msgspec.ValidationError as e:
            fields = ", ".join(kind.__struct_fields__) or "no arguments"
            raise Refused(f"{name} takes {fields}: {e}.") from None

    def _find(self, session: str, ref: TodoRef) -> Todo:
        """The todo a call means: by id (2, "2", "#2"), else by title: exact, then ignoring case,
        then the one title holding it. None found or several: the error names the candidates."""
        todos = self.store.todo_list(session)
        text = str(ref).strip()
        if isinstance(ref, int) or text.lstrip("#").isdigit():
            tid = int(text.lstrip("#")) if text.lstrip("#").isdigit() else ref
            found = next((t for t in todos if t.id == tid), None)
            if found is None:
                raise Refused(f"there is no todo #{tid}. {_listed(todos)}")
            return found
        for match in (lambda t: t.title == text, lambda t: t.title.lower() == text.lower(),
                      lambda t: text.lower() in t.title.lower()):
            found = [t for t in todos if match(t)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise Refused(f"{text!r} could be " + " or ".join(f"#{t.id} '{t.title}'" for t in found) + "; give the id.")
        raise Refused(f"no todo is called {text!r}. {_listed(todos)}")

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
        old = self._find(session, args.id)
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
    def _title(title) -> str:
        clean = clean_title(title)
        if clean is None:
            raise Refused(f"a title must be 1 to {MAX_TITLE_CHARS} characters.")
        return clean


def _listed(todos: list[Todo]) -> str:
    if not todos:
        return "The list is empty."
    return "The list: " + "; ".join(f"#{t.id} {t.title}{' (done)' if t.done else ''}" for t in todos) + "."
