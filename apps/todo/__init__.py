"""Todo with attitude: a todo list whose model comments on every change and acts on the list when asked.

The first app on the app layer (web/apps.py): its data (store.py), what the model may do to it
(actions.py) and its side of the page with its routes (page.py). MAX_TODOS bounds a session's list.
"""
import os

from fasthtml.common import to_xml

from apps.todo.actions import ALIASES, TODO_MAX_BYTES, Change, actions, listed
from apps.todo.page import Panel, TodoChanged, routes
from apps.todo.store import Todo, Todos
from web.apps import App, Host

PERSONA = (
    "You are the assistant inside a todo app, and you have attitude: witty, a little sarcastic, never mean, "
    "always useful. Keep replies short: one or two sentences.\n\n"
    "You can change the user's todo list with your tools. Call a tool only when the user asks you to change the "
    "list, and only the one they asked for (add, tick off, untick, rename, delete, clear the done ones). For anything "
    "else (a greeting, thanks, a question about the list) answer in words and call no tool.\n\n"
    "Messages that start with 'App note:' are not typed by the user: the app tells you what the user just did and "
    "the todo list after it. Comment on those briefly, in character. Never write an app note yourself. The newest "
    "app note holds the todo list as it is now; until one arrives, the list is empty."
)
FRAME_MARGIN = 16_384  # what an app event or tool result carries besides the list


def todo_limit(max_todos: int, max_frame_bytes: int) -> int:
    """MAX_TODOS, or fewer when a bus frame (BUS_MAX_FRAME_BYTES) could not carry that many of the
    longest todos: every app event carries the whole list, and a tool result carries it twice (on
    one line for the model, and as the state)."""
    return max(1, min(max_todos, (max_frame_bytes - FRAME_MARGIN) // (2 * TODO_MAX_BYTES)))


def tell(change: Change) -> str:
    action, t = change
    if action == "toggled":
        return f"marked #{t.id} '{t.title}' {'done' if t.done else 'not done'}"
    if action == "renamed":
        return f"renamed #{t.id} to '{t.title}'"
    return f"{action} #{t.id} '{t.title}'"


def state(todos: list[Todo]) -> str:
    if not todos:
        return "The todo list is now empty."
    return "The todo list now:\n" + "\n".join(f"- [{'x' if t.done else ' '}] #{t.id} {t.title}" for t in todos)


def make(host: Host) -> App:
    max_todos = max(1, int(os.environ.get("MAX_TODOS", "").strip() or 200))
    todos = Todos(host.db, todo_limit(max_todos, host.settings.max_frame_bytes))

    async def panel(session: str):
        return Panel(await host.disk.call(todos.all, session))

    return App(
        title="Todo with attitude", persona=PERSONA, actions=actions(todos), routes=routes(todos, host), panel=panel,
        state=lambda session: state(todos.all(session)), brief=lambda session: listed(todos.all(session)),
        tell=tell, show=lambda changes: "".join(to_xml(TodoChanged(c)) for c in changes), aliases=ALIASES,
        placeholder="Talk to your todo list…")
