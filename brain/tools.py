"""The app's tools, as offered to the model in every request: the same definitions each time,
since they are part of the prompt the engine caches (a change would make it re-read everything).
The web applies the calls (web/actions.py); the brain only relays them and their results."""

MAX_ROUNDS = 5  # tool rounds in one reply; then the model is told to answer, and stopped if it calls again
MAX_CALLS = 8  # calls in one round; the rest are answered with an error
TIMEOUT_S = 10.0  # how long the web may take to apply a call


def _tool(name: str, description: str, **properties) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": list(properties)}}}


TODO_ID = {"type": "integer", "description": "The todo's id: the number after # in the list."}
TITLE = {"type": "string", "description": "What needs doing, 1 to 500 characters."}

TOOLS = [
    _tool("add_todo", "Add a todo to the user's list.", title=TITLE),
    _tool("set_todo_done", "Mark a todo done (done=true) or not done (done=false).", id=TODO_ID,
          done={"type": "boolean", "description": "true: done; false: not done."}),
    _tool("rename_todo", "Give a todo a new title.", id=TODO_ID, title=TITLE),
    _tool("delete_todo", "Delete a todo from the list.", id=TODO_ID),
    _tool("clear_done", "Delete every todo that is marked done."),
]
