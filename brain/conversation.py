"""One browser session's conversation as the model sees it: turns, the app's state, unseen app events.

The brain knows no app: the web tells it what happened in the app's own words (event lines) and
the app's state after it (the app's own rendering), and gives it the system message and the tools
with every message that may lead to a request (`Prompt`).

The prompt is laid out for the inference engine's prompt cache, which reuses the longest prefix a
new prompt shares with an earlier one and evaluates only what follows. So what changes goes at the
end, never at the start: the system message is the app's persona alone, byte for byte the same in
every request, and the app's state reaches the model in app-note user turns appended to the
history. Every request of a session therefore starts with the previous request and its reply,
then the new part.

The state is kept (`state`) beside the state the model can work out from what it was told
(`told`). An app note reports what the user did, in the app's lines, which are short and keep a
turn after a click about as cheap as any other. The whole state is stated only when the lines
alone would not lead the model to it (the first time, after a new chat, after events were left
out) and after old turns are set aside, so the window always holds the last full statement and
every change since: the model always knows the app's current state.

The conversation also keeps within the model's context window. Ollama would silently drop the
oldest messages of a prompt that is too long; instead, before each request, the oldest turns are
set aside here and the caller tells the user. Sizes are estimated from characters, with a
tokens-per-character ratio learnt from Ollama's own `prompt_eval_count`.
"""
import json
from dataclasses import dataclass, field

from shared.messages import Prompt, digest

# App events are told as user turns that start with this. Small models copy a bracketed tag such as
# "[app]" (and a parenthesised "(app: …)") into their replies far more than words; see BENCHMARKS.md.
APP_PREFIX = "App note: "
REPLY_MARKERS = ("App note:", "[app]")  # what small models still copy to the start of a reply: stripped
LATE = "saw your action from a reply that was cut off: "  # an app event: a result no reply waited for


def _chars(messages: list[dict]) -> int:
    "The size of the messages in characters, their tool calls included."
    calls = sum(len(json.dumps(m["tool_calls"])) for m in messages if m.get("tool_calls"))
    return sum(len(m["content"]) for m in messages) + calls


def _tool_tokens(tools: list[dict] | None) -> int:
    "The tool definitions are JSON, dense with punctuation: counted apart, on the safe side."
    return int(len(json.dumps(tools)) * JSON_TOKENS_PER_CHAR) if tools else 0


PER_MESSAGE_TOKENS = 4
JSON_TOKENS_PER_CHAR = 0.5  # the chat template's own tokens around each message
HANDLED_KEPT = 500  # far more than a session has in flight at once
UNSEEN_KEPT = 50  # app events kept for the next note; older ones are left out, so a note and a save stay small
EARLIER = "did earlier things too many to list"
FIRST_GUESS = 0.3  # tokens per character before Ollama has told us; errs on the large side


@dataclass
class Conversation:
    turns: list[dict] = field(default_factory=list)
    state: str | None = None  # the app's state as it last told it; None until it has
    told: str | None = None  # the state the model can work out from its app notes and the unseen events
    unseen: list[str] = field(default_factory=list)  # what the user did, in the app's words, not told yet
    first: int = 0  # turns before this one no longer fit the context window
    tokens_per_char: float = FIRST_GUESS
    model: str = ""  # the session's chosen model; "" for the brain's default
    tools_off: bool = False  # the model said it cannot call tools: it is asked without them
    decides: bool = False  # its model's actions are decided first (brain/tools.py), as its last turn found
    prompt: Prompt = Prompt("")  # the app's system message and tools, as its newest message gave them
    # Bookkeeping, never shown to the model: the assignment this copy belongs to (see
    # brain/memory.py) and the bus messages already acted on, so a message is acted on once.
    epoch: int = 0
    handled: list[str] = field(default_factory=list)

    def take(self, message: str) -> bool:
        "Note that `message` is acted on now; False if it already was."
        if message in self.handled:
            return False
        self.handled.append(message)
        del self.handled[:-HANDLED_KEPT]
        return True

    def record(self, lines: list[str], state: str = "", since: str | None = None) -> None:
        """The user did something in the app (`lines`, told with the next turn), leaving its state
        `state` ("" when it did not change). The model works the new state out from the lines if it
        knew the one before; `since` is the digest of the state the app last sent, which differs
        from ours when an event was lost on the way: then it cannot."""
        for line in lines:
            self._unseen(line)
        if since is not None and (self.state is None or since != digest(self.state)):  # "" is no digest
            self.told = None
        if state:
            if self.told is not None and self.told == self.state:
                self.told = state
            self.state = state

    def _unseen(self, line: str) -> None:
        self.unseen.append(line)
        if len(self.unseen) > UNSEEN_KEPT:
            self.unseen = [EARLIER, *self.unseen[-(UNSEEN_KEPT - 1):]]
            self.told = None  # what was left out may have changed the state: the note states it whole

    def begin_turn(self, user_text: str | None, retry: bool = False, reply: str = "") -> bool:
        """Append what the model has not seen yet (app events and the list after them, then the
        user's text) as user turns. A retry of a turn whose reply failed does not repeat the user's
        text. The conversation notes that `reply`'s question is in it (see `asks`). Returns False
        when there is nothing new to answer."""
        repeated = retry and self._unanswered() == user_text
        if retry and not repeated and self._answered_plainly() == user_text:
            # Its reply was saved, but the web never saw it end (the brain died, or the final
            # message was lost on the bus): the retry answers anew instead of asking twice.
            self.turns.pop()
            repeated = True
        app = self._app_text()
        if app:
            self.turns.append({"role": "user", "content": app})
            self.unseen.clear()
            self.told = self.state
        elif user_text is None:
            return False
        if user_text is not None and not repeated:
            self.turns.append({"role": "user", "content": user_text})
        if user_text is not None and reply:
            # Kept with the bus messages acted on (both are uuids), so it is saved with the question.
            self.take(reply)
        return True

    def _unanswered(self) -> str | None:
        "The newest user text if nothing but tool calls and their results came after it."
        for turn in reversed(self.turns):
            if turn["role"] == "tool" or (turn["role"] == "assistant" and turn.get("tool_calls")):
                continue
            return turn["content"] if turn["role"] == "user" else None
        return None

    def _answered_plainly(self) -> str | None:
        "The newest user text when a single reply without tool calls follows it, and nothing else."
        if len(self.turns) < 2 or self.turns[-1]["role"] != "assistant" or self.turns[-1].get("tool_calls"):
            return None
        return self.turns[-2]["content"] if self.turns[-2]["role"] == "user" else None

    def _app_text(self) -> str:
        "The app note that would report what the model has not seen yet; \"\" when there is nothing."
        if not self.unseen and self.told == self.state:
            return ""
        said = ["The user " + "; then ".join(self.unseen) + "."] if self.unseen else []
        if self.state is not None and self.told != self.state:
            said.append(self.state)
        return APP_PREFIX + "\n".join(said)

    def messages(self) -> list[dict]:
        return [{"role": "system", "content": self.prompt.system}, *self.turns[self.first:]]

    def upcoming(self) -> list[dict] | None:
        """The start of the next request, with the app events not yet seen, without committing them:
        what warming the prompt cache evaluates ahead of time. None when nothing is pending."""
        app = self._app_text()
        return [*self.messages(), {"role": "user", "content": app}] if app else None

    def estimate(self, messages: list[dict], tools: list[dict] | None = None) -> int:
        "Tokens the messages (and the tools offered with them) will take, as far as can be told before Ollama counts them."
        return int(_chars(messages) * self.tokens_per_char) + PER_MESSAGE_TOKENS * len(messages) + _tool_tokens(tools)

    def fit(self, budget: int, tools: list[dict] | None = None) -> int:
        """If the prompt would exceed `budget` tokens, set aside the oldest turns until it takes
        60% of it; returns how many.

        This is the one place the prompt's prefix changes, so the engine's prompt cache is lost
        and the whole window is evaluated again: the 60% hysteresis makes it happen now and then,
        not every turn. The newest user turn always stays, the window never starts with a reply,
        and the app's state is stated again at the end, since its last statement may be gone."""
        room = budget - _tool_tokens(tools)  # the tools are in every request: what is left is for messages
        if self.estimate(self.messages()) <= room:
            return 0
        restated = {"role": "user", "content": APP_PREFIX + "Earlier messages were set aside. " + (self.told or "")}
        extra = self.estimate([restated]) if self.told else 0
        dropped = 0
        while self.estimate(self.messages()) + extra > 0.6 * room and self.first < len(self.turns) - 1:
            self.first += 1
            dropped += 1
            while self.first < len(self.turns) - 1 and self.turns[self.first]["role"] in ("assistant", "tool"):
                self.first += 1
                dropped += 1
        if self.told:
            self.turns.append(restated)
        return dropped

    def learn(self, messages: list[dict], prompt_eval_count: int | None, tools: list[dict] | None = None) -> None:
        """Raise the estimate when Ollama counted more tokens than it predicted.

        `prompt_eval_count` is only what Ollama evaluated for this request: once the prefix is
        cached (the usual case with this layout) it is far below the prompt's size. Measured
        against the whole prompt it is therefore a lower bound of the ratio, which can only ever
        raise the estimate, never lower it: a cached prompt cannot make the next one overflow."""
        chars = _chars(messages)
        if not prompt_eval_count or chars < 200:
            return
        measured = (prompt_eval_count - PER_MESSAGE_TOKENS * len(messages) - _tool_tokens(tools)) / chars
        self.tokens_per_char = min(1.0, max(self.tokens_per_char, measured))

    def asks(self, question: str, reply: str = "") -> bool:
        """Whether the conversation holds the question `reply` answers: as its newest user text, or,
        for a reply whose question it was given (`begin_turn`), further up, later turns after it."""
        return self._asked_at(question, reply) is not None

    def _asked_at(self, question: str, reply: str) -> int | None:
        """The index of the user turn a reply answers ("" for a comment: the newest). A reply whose
        question this conversation was given is found by its text even when later turns followed
        it, so a resume that comes after them never asks it again; for any other, only the newest
        user text can be it (a question asked before may be asked again, in so many words)."""
        users = [i for i, t in enumerate(self.turns) if t["role"] == "user"]
        if users and (not question or self.turns[users[-1]]["content"] == question):
            return users[-1]
        if reply and reply in self.handled:
            return next((i for i in reversed(users) if self.turns[i]["content"] == question), None)
        return None

    def resume_point(self, question: str, shown: str, reply: str = "") -> tuple[bool, str] | None:
        """Where a reply cut off after `shown` reached the user carries on, from what its brain had
        saved: (True, the whole reply) when it was saved whole; (False, the text of its current
        round, to be continued) when it was cut off while streaming, after its last applied tool
        round. None when the saved conversation does not lead to `shown` (it cannot be carried on),
        or when it was cut off and the conversation went on past it. `question` is the user text it
        answers ("" for a comment on app events), `reply` its id."""
        asked = self._asked_at(question, reply)
        if asked is None:
            return None
        after = self.turns[asked + 1:]
        # Its answer is what follows up to the next user turn: a later question or app note (which
        # begin_turn puts before its question, never between a question and its answer).
        end = next((n for n, t in enumerate(after) if t["role"] == "user"), len(after))
        answer, went_on = after[:end], end < len(after)
        said = "".join(t["content"] for t in answer if t["role"] == "assistant")
        if answer and answer[-1]["role"] == "assistant" and not answer[-1].get("tool_calls"):
            return (True, said) if said.startswith(shown) else None
        if went_on:
            return None  # its round cannot be continued with later turns after it
        return (False, shown[len(said):]) if shown.startswith(said) else None

    def drop_last_reply(self) -> bool:
        "For a regenerate: forget the newest reply, so the turn before it is answered again."
        if not self.turns or self.turns[-1]["role"] != "assistant":
            return False
        self.turns.pop()
        return True

    def add_reply(self, text: str) -> None:
        self.turns.append({"role": "assistant", "content": text})

    def holds_call(self, call: str) -> bool:
        "Whether a round of the conversation holds the call (by its id, which the brain made)."
        return any(c.get("id") == call for t in self.turns for c in t.get("tool_calls") or ())

    def late_result(self, call: str, text: str, state: str, ok: bool = True) -> None:
        """A call's result no reply waited for (its brain was cut off): the model is told of it with the
        next turn, unless a resume has put its round back already, or the app refused it (it changed
        nothing: a decided call's refusal is never told, and a refused call cannot be done twice by a
        Retry); the state after it is news either way."""
        self.record([] if self.holds_call(call) or not ok else [LATE + text.rstrip(".")], state)

    def add_carried_round(self, text: str, calls: list[dict], results: list[tuple[str, str]]) -> None:
        """A round of a cut-off reply that its brain did not save, put back from what the web kept. Its
        results come without the app's state: the result itself, if it arrives late, brings it, else the
        next app event states it whole (its `since` is the state the result carried, not ours). A late
        result of its calls still unseen is taken back: the round tells it."""
        for _, content in results:
            told = next((line for line in self.unseen if line.startswith(LATE + content.rstrip("."))), None)
            if told is not None:
                self.unseen.remove(told)
        self.add_tool_round(text, calls, results, "")

    def add_tool_round(self, text: str, calls: list[dict], results: list[tuple[str, str]], state: str) -> None:
        """The model called tools (after saying `text`) and the app answered: the assistant's
        message with its calls, then one tool message per call. Each result states the app's state
        after it, so the model knows the state as it now is (`state`, "" if no call changed it)."""
        self.turns.append({"role": "assistant", "content": text, "tool_calls": calls})
        self.turns.extend({"role": "tool", "tool_name": name, "content": content} for name, content in results)
        if state:
            self.state = self.told = state
