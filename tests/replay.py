"""Read a request's app notes the way the model has to: the last full statement of the todo list,
then every change reported after it (in the todo app's words, apps/todo). Tests use it to prove
the model always knows the list."""
import re

from brain.conversation import APP_PREFIX
from apps.todo.store import Todo

STATEMENT = re.compile(r"The todo list now:\n((?:- \[[ x]\] #\d+ .*(?:\n|$))+)|The todo list is now empty\.")
ITEM = re.compile(r"- \[([ x])\] #(\d+) (.*)")
CHANGE = re.compile(r"(added|deleted) #(\d+) '(.*?)'|marked #(\d+) '(.*?)' (done|not done)")


def known_list(messages: list[dict]) -> list[Todo]:
    app = [m["content"] for m in messages if m["role"] == "user" and m["content"].startswith(APP_PREFIX)]
    stated = max((i for i, text in enumerate(app) if STATEMENT.search(text)), default=None)
    todos: list[Todo] = []
    if stated is not None:
        block = STATEMENT.search(app[stated]).group(1) or ""
        todos = [Todo(int(i), title, mark == "x") for mark, i, title in ITEM.findall(block)]
    for text in app[0 if stated is None else stated + 1:]:
        for added_or_deleted, tid, title, toggled_id, _, state in CHANGE.findall(text.split("\n")[0]):
            if added_or_deleted == "added":
                todos.append(Todo(int(tid), title, False))
            elif added_or_deleted == "deleted":
                todos = [t for t in todos if t.id != int(tid)]
            else:
                todos = [Todo(t.id, t.title, state == "done") if t.id == int(toggled_id) else t for t in todos]
    return todos
