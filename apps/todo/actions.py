"""What the model may do to the todo list: the tools, their typed parameters, and their undo.

Decided with a real small model (`make eval`, BENCHMARKS.md): each description says when to call
the tool, since small models otherwise call one on a greeting; an id is "the number after #", and
a title is "a few words", since a title "of 1 to 500 characters" came back as "Oat milk, 500
characters.". Small models get arguments roughly right: a todo may be given by its id ("2" and
"#2" too) or by its title, and under another key (`todo`, `name`).
"""
import re
from typing import Annotated

import msgspec

from apps.todo.store import MAX_ID, Todo, Todos
from web.apps import Action, Outcome, Refused, plain_text

MAX_TITLE_CHARS = 500
TODO_MAX_BYTES = MAX_TITLE_CHARS * 6 + 64  # a todo in JSON at worst: every character escaped, with its id and done
NUMBER = re.compile(r"#?([0-9]+)")  # ASCII digits: str.isdigit() takes "²" too
TodoRef = Annotated[int | str, msgspec.Meta(description="The todo's number: 2 for #2.")]
Title = Annotated[str, msgspec.Meta(description="The todo in a few words, e.g. 'buy oat milk'.")]
Change = tuple[str, Todo]  # (added | toggled | renamed | deleted | restored, the todo after it)


class AddTodo(msgspec.Struct):
    title: Title


class SetTodoDone(msgspec.Struct):
    id: TodoRef
    done: Annotated[bool, msgspec.Meta(description="true: done; false: not done.")] = True  # often left out


class RenameTodo(msgspec.Struct):
    id: TodoRef
    title: Title


class DeleteTodo(msgspec.Struct):
    id: TodoRef


class ClearDone(msgspec.Struct):
    pass


# Names small models gave these tools in `make eval` (BENCHMARKS.md): taken for the tool they mean.
ALIASES = {"remove_todo": "delete_todo", "mark_done": "set_todo_done", "mark_todo_done": "set_todo_done",
           "complete_todo": "set_todo_done", "clear_completed": "clear_done", "clean_done": "clear_done"}


def clean_title(title) -> str:
    "A todo title as the app keeps it (`plain_text`), or Refused with why, also when empty or too long."
    title = plain_text(title, "a title")
    if not 0 < len(title) <= MAX_TITLE_CHARS:
        raise Refused(f"a title must be 1 to {MAX_TITLE_CHARS} characters.")
    return title


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


def listed(todos: list[Todo]) -> str:
    "The list on one line, for the model (a tool's result, an error): small models echo a Markdown list back."
    if not todos:
        return "The todo list is now empty."
    return "The todo list is now: " + "; ".join(f"#{t.id} {t.title}{' (done)' if t.done else ''}" for t in todos) + "."


def _named(arguments: dict, takes_title: bool) -> dict:
    "The todo named under another key: {\"todo\": ...}, or its title where no new title is asked."
    if "id" in arguments:
        return arguments
    ref = next((arguments[k] for k in ("todo", "todo_id", "name", "title")
                if k in arguments and not (k == "title" and takes_title)), None)
    return {**arguments, "id": ref} if ref is not None else arguments


def _json(todos: list[Todo]) -> list[dict]:
    return msgspec.to_builtins(todos)


def actions(todos: Todos) -> list[Action]:
    def find(session: str, ref) -> Todo:
        """The todo a call means: by id (2, "2", "#2"), else by title: exact, then ignoring case,
        then the one title holding it. None found or several: the error names the candidates."""
        every = todos.all(session)
        tid = todo_number(ref)
        if tid is not None:
            found = next((t for t in every if t.id == tid), None)
            if found is None:  # the result adds the list
                raise Refused(f"there is no todo #{tid}." if 0 < tid <= MAX_ID else "there is no todo with that number.")
            return found
        text = str(ref).strip()
        for match in (lambda t: t.title == text, lambda t: t.title.lower() == text.lower(),
                      lambda t: text.lower() in t.title.lower()):
            found = [t for t in every if match(t)]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise Refused(f"{text!r} could be " + " or ".join(f"#{t.id} '{t.title}'" for t in found) + "; give the id.")
        raise Refused(f"no todo is called {text!r}.")

    def add(session: str, args: AddTodo) -> Outcome:
        todo = todos.add(session, clean_title(args.title))
        return Outcome(f"Added #{todo.id} '{todo.title}'.", [("added", todo)], {"after": _json([todo])})

    def set_done(session: str, args: SetTodoDone) -> Outcome:
        old = find(session, args.id)
        new = todos.change(session, old.id, done=args.done)
        return Outcome(f"Marked #{new.id} '{new.title}' {'done' if new.done else 'not done'}.", [("toggled", new)],
                       {"before": _json([old]), "after": _json([new])})

    def rename(session: str, args: RenameTodo) -> Outcome:
        old = find(session, args.id)
        new = todos.change(session, old.id, title=clean_title(args.title))
        return Outcome(f"Renamed #{old.id} '{old.title}' to '{new.title}'.", [("renamed", new)],
                       {"before": _json([old]), "after": _json([new]), "renamed": True})

    def delete(session: str, args: DeleteTodo) -> Outcome:
        old = find(session, args.id)
        todos.delete(session, old.id)
        return Outcome(f"Deleted #{old.id} '{old.title}'.", [("deleted", old)], {"before": _json([old])})

    def clear_done(session: str, args: ClearDone) -> Outcome:
        done = [t for t in todos.all(session) if t.done]
        for t in done:
            todos.delete(session, t.id)
        text = (f"Deleted the {len(done)} done todos: " + ", ".join(f"#{t.id} '{t.title}'" for t in done) + "."
                if done else "There were no done todos to delete.")
        return Outcome(text, [("deleted", t) for t in done], {"before": _json(done)})

    def undo(session: str, kept: dict) -> list[Change]:
        "Revert exactly what an action did: a deleted todo comes back with its id, title and state."
        before = msgspec.convert(kept.get("before", []), list[Todo])
        after = msgspec.convert(kept.get("after", []), list[Todo])
        back = sum(1 for b in before if not any(a.id == b.id for a in after))
        gone = sum(1 for a in after if not any(b.id == a.id for b in before))
        if back - gone > todos.room(session):
            raise Refused(f"Undoing that would bring back {back} todos, more than the list has room for (MAX_TODOS).")
        changes: list[Change] = []
        for todo in after:
            if not any(b.id == todo.id for b in before) and todos.delete(session, todo.id):
                changes.append(("deleted", todo))
        for todo in before:
            if not any(a.id == todo.id for a in after):
                changes.append(("restored", todos.restore(session, todo)))
            elif (now := todos.change(session, todo.id, title=todo.title, done=todo.done)) is not None:
                changes.append(("renamed" if kept.get("renamed") else "toggled", now))
        return changes

    return [
        Action("add_todo", "Add a new todo. Only when the user asks to add something, put it on the list, or be "
                           "reminded of it.", AddTodo, add, undo),
        Action("set_todo_done", "Tick a todo off (done=true) or back on (done=false). Only when the user says a todo "
                                "is done or not done yet.", SetTodoDone, set_done, undo,
               prepare=lambda a: _named(a, takes_title=False)),
        Action("rename_todo", "Give a todo a new title. Only when the user asks to rename or reword it.", RenameTodo,
               rename, undo, prepare=lambda a: _named(a, takes_title=True)),
        Action("delete_todo", "Remove one todo. Only when the user asks to delete, remove or drop it.", DeleteTodo,
               delete, undo, prepare=lambda a: _named(a, takes_title=False)),
        Action("clear_done", "Remove every todo that is ticked off. Only when the user asks to clear the done ones.",
               ClearDone, clear_done, undo),
    ]
