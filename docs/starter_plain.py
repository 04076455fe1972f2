"""A todo list in plain FastHTML, written as FastHTML's docs write one: `fast_app` with a fastlite
table and its `render`, `@rt` routes, FT components. apps/starter.py is this file with the model
added; the README's "Your own app" shows the difference. Run it alone: python docs/starter_plain.py"""
import os

from fasthtml.common import *


def render(todo):
    tid = f"todo-{todo.id}"
    toggle = Input(type="checkbox", checked=bool(todo.done), hx_post=f"/toggle/{todo.id}", target_id=tid, hx_swap="outerHTML")
    delete = Button("×", hx_delete=f"/{todo.id}", target_id=tid, hx_swap="outerHTML", cls="outline secondary")
    return Li(toggle, Span(todo.task, cls="title"), delete, id=tid, cls="item done" if todo.done else "item")


app, rt, todos, Todo = fast_app(f"{os.environ.get('DATA_DIR', 'data')}/todos.db", render=render,
                                id=int, task=str, done=bool, pk="id")


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
