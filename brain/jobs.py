"""The jobs on a session's queue (brain/sessions.py), each run in turn on the session's conversation
(brain/engine.py):

- `Event`: the user did something in the app. When the app asks for a comment, one follows once the
  clicking pauses (a burst makes one), and the event is evaluated in Ollama at once (`Warm`), so
  the next turn finds it cached.
- `Turn`: a reply to make (to a message, a retry, a regenerate, or a comment), streamed to the bus
  (brain/replies.py).
- `LateResult`: what came of a tool call whose reply was cut off.
- `DropLastReply` comes before a regenerate; `StartAfresh` is New chat.
"""
import asyncio
from collections import deque
from dataclasses import dataclass, field

from brain.ollama_client import Hangup
from shared.messages import Answered, AppEvent, Prompt, ToolResult


class Trust:
    """A chat or resume taken on trust: handed on before the web granted the worker's claim on it,
    so the grant's round trip is not on the way to the first token. Its whole life:

    - the node (brain/node.py) makes it when it hands the message on, with the claim; the message's
      turn carries it; when the web answers the claim, the node has the engine decide it, once
      (`Engine.grant`, `Engine.revoke`);
    - while it waits, the turn's words stream, but its tool calls and its end wait for the grant
      (`Turn.until_granted`), and what it saves is held back (brain/conversations.py `trust`);
    - granted: what was held back is saved, and the turn goes on and ends;
    - revoked: the turn leaves its queue, or is cut off without a word, and what it changed is
      dropped with the conversation's copy, unsaved;
    - fenced (the session held at a newer epoch), whatever the verdict: the engine cuts the turn off
      and forgets the copy (brain/engine.py `fence`)."""

    def __init__(self, message: str):
        self.message = message  # the id of the message taken on trust
        self.granted = asyncio.Event()
        self.revoked = False

    @property
    def waiting(self) -> bool:
        return not (self.granted.is_set() or self.revoked)

    def decide(self, granted: bool) -> bool:
        "The verdict, once; False when it had come already."
        if not self.waiting:
            return False
        if granted:
            self.granted.set()
        else:
            self.revoked = True
        return True


@dataclass(kw_only=True)
class FromBus:
    """What every job knows of the message that caused it: its id ("" for the brain's own
    jobs) and the session's epoch (None until it runs: the brain's own jobs take the held one)."""
    message: str = ""
    epoch: int | None = None


@dataclass
class Control:
    """How a running job is stopped: `hangup` ends its Ollama request at once, from any thread
    (even one still waiting for its first byte); `woken` wakes a turn waiting for Ollama, or for its
    grant; `silent`: cut off (the worker closing, a revoke), it says nothing more."""
    hangup: Hangup = field(default_factory=Hangup)
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    silent: bool = False

    @property
    def cancelled(self) -> bool:
        return self.hangup.fired

    def cancel(self) -> None:
        "Stop or reset: end the Ollama request now."
        self.hangup.fire()
        self.woken.set()

    def cut_off(self) -> None:
        self.silent = True
        self.cancel()


@dataclass
class Outgoing:
    """A turn's words on their way to the bus: read from Ollama on a pool thread, not sent yet
    (`unsent`, handed to the loop once per wakeup: `flush_scheduled`), and the chunk messages
    sent so far (`sent`, the next one's seq; a resumed reply starts from what the web had)."""
    sent: int = 0
    unsent: deque = field(default_factory=deque)
    flush_scheduled: bool = False


@dataclass
class Turn(FromBus):
    "One reply to produce; `text` is None for a comment on app events."
    session: str
    reply: str
    text: str | None
    prompt: Prompt | None = None  # the app's, as the message gave it (None: the conversation's)
    retry: bool = False
    regenerate: bool = False
    model: str = ""  # chosen for the session; "" keeps the conversation's (or the default)
    resume: str | None = None  # a reply cut off when its brain stopped: what reached the web, to go on from
    resumed_thinking: str = ""
    question: str = ""  # the user text a resumed reply answers ("" for a comment)
    carried: list[Answered] = field(default_factory=list)  # a resumed reply's calls the web answered (Resume.calls)
    trust: Trust | None = None  # its message was taken on trust (None: granted before it was handed on)
    control: Control = field(default_factory=Control)  # how it is stopped while it runs
    out: Outgoing = field(default_factory=Outgoing)  # its words on their way to the bus

    @property
    def asked_by_user(self) -> bool:
        "Only something the user said may change the app: a comment on app events may not."
        return self.text is not None or bool(self.question) or self.regenerate

    async def until_granted(self) -> None:
        "Until the web grants the message this turn runs on, or the turn is cancelled."
        woken = self.control.woken
        if self.trust is not None and not self.trust.granted.is_set() and not woken.is_set():
            waits = [asyncio.ensure_future(self.trust.granted.wait()), asyncio.ensure_future(woken.wait())]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()


@dataclass
class Warm(FromBus):
    """Evaluate a session's new app events now, ahead of its next turn, so that turn finds them in
    Ollama's prompt cache and costs no more than any other (see `Asker.warm`, brain/asking.py)."""
    session: str
    control: Control = field(default_factory=Control)  # a warm-up says nothing either way: cut off is cancelled


@dataclass
class Event(FromBus):
    "What the user did in the app, for the model's context (see `AppEvent`)."
    event: AppEvent


@dataclass
class LateResult(FromBus):
    "What came of a tool call whose reply was cut off."
    result: ToolResult


@dataclass
class DropLastReply(FromBus):
    "Forget the newest reply, so the turn before it is answered again."


@dataclass
class StartAfresh(FromBus):
    "A new conversation; the app's state and the model choice stay."


Job = Turn | Warm | Event | LateResult | DropLastReply | StartAfresh
