"""The todo app's side of the page: its FT components and its htmx routes.

All text is escaped by FT rendering: todo titles (the user's, or the model's) are never markup.
Each route tells the model what it changed (`host.changed`)."""
from fasthtml.common import H2, Button, Div, Form, Input, Li, Response, Section, Span, Ul

from apps.todo.actions import MAX_TITLE_CHARS, Change, clean_title
from apps.todo.store import ListFull, Todo, Todos
from web.apps import Host, Refused, Route


def TodoItem(t: Todo, oob: bool = False):
    tid = f"todo-{t.id}"
    return Li(id=tid, cls="item done" if t.done else "item", hx_swap_oob="true" if oob else None)(
        Input(type="checkbox", checked=t.done, hx_post=f"/todos/{t.id}/toggle", hx_target=f"#{tid}",
              hx_swap="outerHTML", aria_label=f"Mark '{t.title}' {'not done' if t.done else 'done'}"),
        Span(t.title, cls="title"),
        Button("×", hx_delete=f"/todos/{t.id}", hx_target=f"#{tid}", hx_swap="outerHTML",
               cls="delete outline secondary", aria_label=f"Delete '{t.title}'"))


def TodoChanged(change: Change):
    "A change to the list pushed to every tab of the session (the model acted, or an Undo)."
    action, todo = change
    if action in ("added", "restored"):
        return Ul(TodoItem(todo), id="todo-list", hx_swap_oob="beforeend")
    if action == "deleted":
        return Li(id=f"todo-{todo.id}", hx_swap_oob="delete")
    return TodoItem(todo, oob=True)


def Panel(todos: list[Todo]):
    return Section(H2("Todos"), cls="app")(
        Form(id="todo-form", cls="app-form", hx_post="/todos", hx_target="#todo-list", hx_swap="beforeend")(
            Input(id="title", name="title", placeholder="What needs doing?", required=True,
                  maxlength=MAX_TITLE_CHARS, autocomplete="off"),
            Button("Add")),
        Div(id="app-notice", cls="notice", role="alert"),
        Ul(*[TodoItem(t) for t in todos], id="todo-list", cls="items"))


def routes(todos: Todos, host: Host) -> list[Route]:
    async def changed(session, todo: Todo | None, action: str):
        "Tell the model of a change to one of the session's todos; 404 when it has no such todo."
        if todo is None:
            return Response("No such todo", status_code=404)
        await host.changed(session["sid"], [(action, todo)])
        return TodoItem(todo) if action != "deleted" else ""

    async def add(session, title: str = ""):
        try:
            title = clean_title(title)
        except Refused as e:
            return Response(f"Not added: {e}", status_code=400)
        try:
            todo = await host.disk.call(todos.add, session["sid"], title)
        except ListFull as e:
            return Response(str(e), status_code=400)
        return await changed(session, todo, "added")

    async def toggle(session, tid: int):
        return await changed(session, await host.disk.call(todos.toggle, session["sid"], tid), "toggled")

    async def delete(session, tid: int):
        return await changed(session, await host.disk.call(todos.delete, session["sid"], tid), "deleted")

    return [Route("post", "/todos", add), Route("post", "/todos/{tid}/toggle", toggle),
            Route("delete", "/todos/{tid}", delete)]
