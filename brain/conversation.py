"""One browser session's conversation as the model sees it: turns, the todo list, unseen app events.

The todo list is kept as state, not as a log, and is rendered into the system message of every
request, so the model knows the current list however many clicks made it.

The conversation also keeps within the model's context window. Ollama would silently drop the
oldest messages of a prompt that is too long; instead, before each request, the oldest turns are
set aside here (the system message with the todo list always stays) and the caller tells the user.
Sizes are estimated from characters, with a tokens-per-character ratio learnt from Ollama's own
`prompt_eval_count`.
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


PER_MESSAGE_TOKENS = 4  # the chat template's own tokens around each message
FIRST_GUESS = 0.3  # tokens per character before Ollama has told us; errs on the large side


@dataclass
class Conversation:
    turns: list[dict] = field(default_factory=list)
    todos: list[Todo] = field(default_factory=list)
    unseen: list[str] = field(default_factory=list)
    first: int = 0  # turns before this one no longer fit the context window
    tokens_per_char: float = FIRST_GUESS
    model: str = ""  # the session's chosen model; "" for the brain's default

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
        return [system, *self.turns[self.first:]]

    def estimate(self, messages: list[dict]) -> int:
        "Tokens the messages will take, as far as can be told before Ollama counts them."
        chars = sum(len(m["content"]) for m in messages)
        return int(chars * self.tokens_per_char) + PER_MESSAGE_TOKENS * len(messages)

    def fit(self, system_prompt: str, budget: int) -> int:
        """If the prompt would exceed `budget` tokens, set aside the oldest turns until it takes
        60% of it (so this happens now and then, not every turn); returns how many.

        The newest user turn always stays, and the window never starts with a reply."""
        if self.estimate(self.messages(system_prompt)) <= budget:
            return 0
        dropped = 0
        while self.estimate(self.messages(system_prompt)) > 0.6 * budget and self.first < len(self.turns) - 1:
            self.first += 1
            dropped += 1
            while self.first < len(self.turns) - 1 and self.turns[self.first]["role"] == "assistant":
                self.first += 1
                dropped += 1
        return dropped

    def learn(self, messages: list[dict], prompt_eval_count: int | None) -> None:
        """Raise the estimate when Ollama counted more tokens than it predicted. It is never
        lowered: with a cached prompt prefix Ollama counts only the new part, which would
        under-state the size and let the next prompt overflow."""
        chars = sum(len(m["content"]) for m in messages)
        if not prompt_eval_count or chars < 200:
            return
        measured = (prompt_eval_count - PER_MESSAGE_TOKENS * len(messages)) / chars
        self.tokens_per_char = min(1.0, max(self.tokens_per_char, measured))

    def drop_last_reply(self) -> bool:
        "For a regenerate: forget the newest reply, so the turn before it is answered again."
        if not self.turns or self.turns[-1]["role"] != "assistant":
            return False
        self.turns.pop()
        return True

    def add_reply(self, text: str) -> None:
        self.turns.append({"role": "assistant", "content": text})
