"""A small fake app for the brain's tests. The brain knows no app: the web tells it what the user did
in the app's own words (lines), the app's whole state after it as text, and the app's prompt (its
system message and Ollama tool definitions). This app is a list worded the way the todo app words
its list, so tests/replay.py can read back, from a request, the list the model can work out."""
from apps.todo.store import Todo, listed, state, tell
from shared.messages import AppEvent, Prompt, ToolResult, digest

SYSTEM = "You are the assistant inside a list app. Keep replies short."


def tool(name: str, description: str, **params: str) -> dict:
    "Ollama's tool definition: every parameter required, typed by its JSON type's name."
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {k: {"type": t} for k, t in params.items()},
                       "required": list(params)}}}


TOOLS = [tool("add_todo", "Add an item.", title="string"),
         tool("set_todo_done", "Tick an item off, or untick it.", id="integer", done="boolean"),
         tool("rename_todo", "Rename an item.", id="integer", title="string"),
         tool("delete_todo", "Delete an item.", id="integer")]
PROMPT = Prompt(SYSTEM, TOOLS)


def said(action: str, todo: Todo) -> str:
    "A change in the todo app's own words, as an event's line."
    return tell(action, todo)


stated = state  # the whole list, as the todo app states it to the model


inline = listed  # the list on one line, as the web appends it to a tool's result


class Web:
    """Plays the web's side for one session: each app event carries the `digest` of the state it last
    sent the brain (`since`, "" before it has sent one), as web/app_events.py does, so the brain can tell
    when an event was lost on the way."""

    def __init__(self, session: str = "s"):
        self.session, self.told = session, ""

    def _sent(self, state: str) -> None:
        if state:
            self.told = digest(state)

    def changed(self, id: str, action: str, todo: Todo, todos: list[Todo], **kw) -> AppEvent:
        "The user changed the list (`todos` after it): an app change, which the model comments on."
        event = AppEvent(session=self.session, id=id, lines=[said(action, todo)], state=stated(todos), since=self.told,
                         comment=True, prompt=PROMPT, **kw)
        self._sent(event.state)
        return event

    def used(self, id: str, line: str, **kw) -> AppEvent:
        "Another interaction of the page, which changes nothing: heard with the next turn, no comment."
        return AppEvent(session=self.session, id=id, lines=[line], since=self.told, prompt=PROMPT, **kw)

    def result(self, id: str, reply: str, call: str, text: str, todos: list[Todo], ok: bool = True, **kw) -> ToolResult:
        "The web's answer to a call: what was done, with the list on one line, and the whole list."
        message = ToolResult(session=self.session, id=id, reply=reply, call=call, ok=ok, text=f"{text} {inline(todos)}",
                             state=stated(todos), **kw)
        self._sent(message.state)
        return message
