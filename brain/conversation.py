"""One browser session's conversation as the model sees it: turns, the todo list, unseen app events.

The todo list is kept as state, not as a log, and is rendered into the system message of every
request, so the model knows the current list however many clicks made it.
"""
from dataclasses import dataclass, field

from shared.messages import Todo, TodoEvent

APP_PREFIX = "[app] "


def describe(event: TodoEvent) -> str:
    t = event.todo
    if event.action == "toggled":
        return f"marked '{t.title}' as {'done' if t.done else 'not done'}"
    return f"{event.action} the todo '{t.title}'"


def render_todos(todos: list[Todo]) -> str:
    if not todos:
        return "The user's todo list is empty."
    lines = [f"- [{'x' if t.done else ' '}] {t.title}" for t in todos]
    return "The user's todo list right now:\n" + "\n".join(lines)


@dataclass
class Conversation:
    turns: list[dict] = field(default_factory=list)
    todos: list[Todo] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)

    def note(self, event: TodoEvent) -> None:
        self.todos = list(event.todos)
        self.unseen.append(describe(event))

    def begin_turn(self, user_text: str | None, retry: bool = False) -> bool:
        """Add what the model has not seen yet (app events, then the user's text) as user turns.

        A retry of a turn whose reply failed does not repeat the user's text. Returns False when
        there is nothing new to answer."""
        repeated = retry and self.turns[-1:] == [{"role": "user", "content": user_text}]
        if self.unseen:
            self.turns.append({"role": "user", "content": APP_PREFIX + "The user " + "; then ".join(self.unseen) + "."})
            self.unseen.clear()
        elif user_text is None:
            return False
        if user_text is not None and not repeated:
            self.turns.append({"role": "user", "content": user_text})
        return True

    def messages(self, system_prompt: str) -> list[dict]:
        system = {"role": "system", "content": f"{system_prompt}\n\n{render_todos(self.todos)}"}
        return [system, *self.turns]

    def add_reply(self, text: str) -> None:
        self.turns.append({"role": "assistant", "content": text})
