"""Todo with attitude: a todo list whose model comments on every change and acts on the list when asked.

A plain FastHTML app (its data in store.py) with the model in its loop (web/loop.py). Its words
were decided with a real small model (`make eval`, BENCHMARKS.md): each tool's description says
when to call it, since small models otherwise call one on a greeting; an id is "the number after
#", and a title is "a few words", since a title "of 1 to 500 characters" came back as "Oat milk,
500 characters.". Small models get arguments roughly right: a todo may be given by its id ("2" and
"#2" too) or by its title, under another key too, and a tool by a name they invent (`also`).
"""
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fasthtml.common import *

from apps.todo.store import (MAX_ID, MAX_TITLE_CHARS, ListFull, Todo, Todos, clean_title, listed, mentions, names, says_done,
                             state, tell, todo_limit, todo_number)
from shared.config import Settings
from web.loop import Loop, Refused

PERSONA = (
    "You are the assistant inside a todo app, and you have attitude: witty, a little sarcastic, never mean, "
    "always useful. Keep replies short: one or two sentences.\n\n"
    "You can change the user's todo list with your tools: add, tick off, untick, rename, delete, clear the done ones. "
    "The newest app note holds the todo list as it is now; until one arrives, the list is empty."
)
COPIED = re.compile(r"^#\d+\s+")  # a title copied from the list with its number: "#1 buy stamps"
TodoRef = Annotated[int | str, "The todo's number: 2 for #2."]
Title = Annotated[str, "The todo in a few words, e.g. 'buy oat milk'."]

todos = Todos(Path(os.environ.get("DATA_DIR", "data")) / "todo.db",
              todo_limit(int(os.environ.get("MAX_TODOS", "").strip() or 200), Settings.from_env().max_frame_bytes))
app, rt = fast_app()
loop = Loop(app, PERSONA, state=lambda session: state(todos.all(session["sid"])),
            brief=lambda session: listed(todos.all(session["sid"])), title="Todo with attitude",
            placeholder="Talk to your todo list…")


@dataclass
class Changed:
    "What an action did: its words for the model, and the todos before and after it, which its undo puts back."
    text: str
    before: list[Todo] = field(default_factory=list)
    after: list[Todo] = field(default_factory=list)

    def __str__(self):
        return self.text


def find(session, ref) -> Todo:
    """The todo a call means, if the user's message names it (by a word of its title or its number):
    a small model changes todos nobody named ("tell me a joke" deleted the dentist one)."""
    todo = lookup(session, ref)
    if "asked" in session and not names(session["asked"], todo):
        raise Refused(f"the user's message does not name #{todo.id} '{todo.title}'; change only a todo the user names.")
    return todo


def lookup(session, ref) -> Todo:
    """The todo a call gives: by id (2, "2", "#2"), else by title: exact, then ignoring case, then
    the one title holding it. None found or several: the refusal names the candidates."""
    every = todos.all(session["sid"])
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


@loop.action
def add_todo(title: Title, session) -> Changed:
    "Add a new todo. Only when the user asks to add something, put it on the list, or be reminded of it."
    title = clean_title(title)
    if "asked" in session and not mentions(session["asked"], title):
        # A small model adds what it read on the list or made up: "good morning!" added "#1 buy stamps".
        raise Refused(f"the user's message does not mention '{title}'; add only what the user asks for.")
    same = next((t for t in todos.all(session["sid"]) if t.title.lower() in (title.lower(), COPIED.sub("", title).lower())),
                None)
    if same is not None:
        raise Refused(f"'{same.title}' is on the list already, as #{same.id}.")
    todo = todos.add(session["sid"], title)
    return Changed(f"Added #{todo.id} '{todo.title}'.", after=[todo])


@loop.action(also=("mark_done", "mark_todo_done", "complete_todo"))
def set_todo_done(id: TodoRef, session, done: Annotated[bool, "true: done; false: not done."] = True) -> Changed:
    "Tick a todo off (done=true) or back on (done=false). Only when the user says a todo is done or not done yet."
    old = find(session, id)
    new = todos.change(session["sid"], old.id, done=done)
    return Changed(f"Marked #{new.id} '{new.title}' {'done' if new.done else 'not done'}.", [old], [new])


@loop.action
def rename_todo(id: TodoRef, title: Title, session) -> Changed:
    "Give a todo a new title. Only when the user asks to rename or reword it."
    old = find(session, id)
    new = todos.change(session["sid"], old.id, title=clean_title(title))
    return Changed(f"Renamed #{old.id} '{old.title}' to '{new.title}'.", [old], [new])


@loop.action(also=("remove_todo",))
def delete_todo(id: TodoRef, session) -> Changed:
    "Remove one todo. Only when the user asks to delete, remove or drop it."
    old = find(session, id)
    todos.delete(session["sid"], old.id)
    return Changed(f"Deleted #{old.id} '{old.title}'.", [old])


@loop.action(also=("clear_completed", "clean_done"))
def clear_done(session) -> Changed:
    "Remove every todo that is ticked off. Only when the user asks to clear the done ones."
    done = [t for t in todos.all(session["sid"]) if t.done]
    if "asked" in session and not (says_done(session["asked"]) or any(names(session["asked"], t) for t in done)):
        # After a refusal a small model reaches for the tool that needs no todo ("remind me to …" cleared the done ones).
        raise Refused("the user's message does not ask to clear the done todos; clear them only when it does.")
    for t in done:
        todos.delete(session["sid"], t.id)
    return Changed(f"Deleted the {len(done)} done todos: " + ", ".join(f"#{t.id} '{t.title}'" for t in done) + "."
                   if done else "There were no done todos to delete.", done)


@add_todo.undo
@set_todo_done.undo
@rename_todo.undo
@delete_todo.undo
@clear_done.undo
def put_back(changed: Changed, session):
    "Revert exactly what an action did: a deleted todo comes back with its id, title and state."
    sid, before, after = session["sid"], changed.before, changed.after
    back = sum(1 for b in before if not any(a.id == b.id for a in after))
    if back - sum(1 for a in after if not any(b.id == a.id for b in before)) > todos.room(sid):
        raise Refused(f"Undoing that would bring back {back} todos, more than the list has room for (MAX_TODOS).")
    for todo in after:
        if not any(b.id == todo.id for b in before):
            todos.delete(sid, todo.id)
    for todo in before:
        if any(a.id == todo.id for a in after):
            todos.change(sid, todo.id, title=todo.title, done=todo.done)
        else:
            todos.restore(sid, todo)


def TodoItem(t: Todo):
    tid = f"todo-{t.id}"
    return Li(id=tid, cls="item done" if t.done else "item")(
        Input(type="checkbox", checked=t.done, hx_post=f"/todos/{t.id}/toggle", hx_target=f"#{tid}",
              hx_swap="outerHTML", aria_label=f"Mark '{t.title}' {'not done' if t.done else 'done'}"),
        Span(t.title, cls="title"),
        Button("×", hx_delete=f"/todos/{t.id}", hx_target=f"#{tid}", hx_swap="outerHTML",
               cls="delete outline secondary", aria_label=f"Delete '{t.title}'"))


@rt("/")
def get(session):
    form = Form(id="todo-form", hx_post="/todos", hx_target="#todo-list", hx_swap="beforeend")(
        Input(id="title", name="title", placeholder="What needs doing?", required=True, maxlength=MAX_TITLE_CHARS,
              autocomplete="off"),
        Button("Add"))
    return Titled("Todo with attitude", form, Div(id="app-notice", cls="notice", role="alert"),
                  Ul(*map(TodoItem, todos.all(session["sid"])), id="todo-list", cls="items"))


def told(todo: Todo | None, action: str):
    "A route's change: told in the app's words, and what htmx swaps in; 404 when the session has no such todo."
    if todo is None:
        return Response("No such todo", status_code=404)
    Loop.tell(tell(action, todo))
    return "" if action == "deleted" else TodoItem(todo)


@app.post("/todos")
def add(session, title: str = ""):
    try:
        todo = todos.add(session["sid"], clean_title(title))
    except ListFull as e:
        return Response(str(e), status_code=400)
    except Refused as e:
        return Response(f"Not added: {e}", status_code=400)
    return told(todo, "added")


@app.post("/todos/{tid}/toggle")
def toggle(session, tid: int):
    return told(todos.toggle(session["sid"], tid), "toggled")


@app.delete("/todos/{tid}")
def delete(session, tid: int):
    return told(todos.delete(session["sid"], tid), "deleted")
