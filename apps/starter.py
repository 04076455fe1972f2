"""A todo list in plain FastHTML (docs/starter_plain.py) with the model in its loop: it sees every
interaction, comments, and adds a todo when asked, with an Undo. `make run APP=starter`."""
import os
from typing import Annotated

from fasthtml.common import *
from web.loop import Loop


def render(todo):
    tid = f"todo-{todo.id}"
    toggle = Input(type="checkbox", checked=bool(todo.done), hx_post=f"/toggle/{todo.id}", target_id=tid, hx_swap="outerHTML")
    delete = Button("×", hx_delete=f"/{todo.id}", target_id=tid, hx_swap="outerHTML", cls="outline secondary")
    return Li(toggle, Span(todo.task, cls="title"), delete, id=tid, cls="item done" if todo.done else "item")


app, rt, todos, Todo = fast_app(f"{os.environ.get('DATA_DIR', 'data')}/todos.db", render=render,
                                id=int, task=str, done=bool, pk="id")
loop = Loop(app, "You are the assistant inside a todo list: brief, a little dry.", state=todos, title="Todos")


@loop.action
def add_todo(task: Annotated[str, "what is to be done"]) -> Todo:
    "Add a todo to the list. Only when the user asks for one."
    return todos.insert(Todo(task=" ".join(task.split())[:200], done=False))


@add_todo.undo
def _(todo: Todo):
    todos.delete(todo.id)


@rt("/")
def get():
    add = Form(Input(name="task", placeholder="Something to do", required=True, maxlength=200), Button("Add"),
               hx_post="/", target_id="todo-list", hx_swap="beforeend", cls="app-form")
    return Titled("Todos", add, Ul(*todos(), id="todo-list", cls="items"))


@app.post("/")
def add(todo: Todo):
    return todos.insert(todo)


@app.delete("/{tid}")
def remove(tid: int):
    todos.delete(tid)


@app.post("/toggle/{tid}")
def toggle(tid: int):
    todo = todos[tid]
    todo.done = not todo.done
    return todos.update(todo)


serve()
