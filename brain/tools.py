"""The app's tools, as offered to the model in every request: the same definitions each time,
since they are part of the prompt the engine caches (a change would make it re-read everything).
The web applies the calls (web/actions.py); the brain only relays them and their results."""

MAX_CALLS = 8  # calls in one round; the rest are answered with an error
RETRIES = 2  # rounds in one reply whose every call failed, which the model may put right (beyond MODEL_TOOL_ROUNDS)
TIMEOUT_S = 10.0  # how long the web may take to apply a call


def _tool(name: str, description: str, **properties) -> dict:
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties, "required": list(properties)}}}


# Decided with a real small model (`make eval`, BENCHMARKS.md): each description says when to call
# the tool, since small models otherwise call one on a greeting; an id is "the number after #", and
# a title is "a few words", since a title "of 1 to 500 characters" came back as "Oat milk, 500 characters.".
TODO_ID = {"type": "integer", "description": "The todo's number: 2 for #2."}
TITLE = {"type": "string", "description": "The todo in a few words, e.g. 'buy oat milk'."}

TOOLS = [
    _tool("add_todo", "Add a new todo. Only when the user asks to add something, put it on the list, or be "
                      "reminded of it.", title=TITLE),
    _tool("set_todo_done", "Tick a todo off (done=true) or back on (done=false). Only when the user says a todo "
                           "is done or not done yet.", id=TODO_ID,
          done={"type": "boolean", "description": "true: done; false: not done."}),
    _tool("rename_todo", "Give a todo a new title. Only when the user asks to rename or reword it.", id=TODO_ID, title=TITLE),
    _tool("delete_todo", "Remove one todo. Only when the user asks to delete, remove or drop it.", id=TODO_ID),
    _tool("clear_done", "Remove every todo that is ticked off. Only when the user asks to clear the done ones."),
]


def recited(names: list[str], offered: list[dict]) -> bool:
    """Calls that look like the model reciting its tools rather than doing what was asked: three or
    more different tools, in the order they are offered. Qwen2.5-Coder 0.5B answered "add oat milk"
    with add_todo, set_todo_done, rename_todo and delete_todo in 3 of 18 samples (BENCHMARKS.md)."""
    order = [t["function"]["name"] for t in offered]
    return len(names) >= 3 and len(set(names)) == len(names) and names == [n for n in order if n in names]
