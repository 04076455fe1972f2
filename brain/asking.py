"""A turn's requests to Ollama, made patiently: while Ollama is down the turn waits for it (the web
shows why), a request Ollama dropped is asked again, a model that cannot call tools is asked again
without them, and from its first request a reply may take REPLY_MAX_S. What a turn's requests and
warm-ups are shown depends on how the model is asked (MODEL_TOOL_MODE: brain/tools.py), found here
too, since with `auto` Ollama is asked about the model.
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from brain import tools
from brain.conversation import Conversation
from brain.jobs import Turn, Warm
from brain.ollama_client import NoAnswer, OllamaError, OllamaFailed, ToolsUnsupported
from brain.ollama_watch import OllamaWatch
from brain.outlet import ReplyBus
from brain.streams import Answer, Interrupted, Streams
from shared.config import Settings
from shared.messages import Reach, Stats

log = logging.getLogger("brain")
# A request Ollama dropped before answering, while its check finds it up, is asked again after these
# pauses, then the reply fails: Ollama may drop one request (a runner restarting) but not each one.
RETRY_DELAYS_S = (1.0, 2.0)


@dataclass
class Deadline:
    "REPLY_MAX_S, counted from a reply's first request (waiting for Ollama to start does not count)."
    timer: asyncio.TimerHandle | None = None
    passed: bool = False  # the reply was cut off at it

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class Asker:
    def __init__(self, settings: Settings, watch: OllamaWatch, streams: Streams, bus: ReplyBus,
                 call_later: Callable[..., asyncio.TimerHandle]):
        self.settings, self.watch, self.streams, self.bus, self.call_later = settings, watch, streams, bus, call_later
        self.modes = tools.Modes(settings, streams.show)  # how each model is asked: deciding first or not

    @property
    def up(self) -> bool:
        return self.watch.reach is Reach.UP

    @property
    def down(self) -> bool:
        return self.watch.reach is Reach.DOWN

    async def mode(self, conversation: Conversation, model: str = "", again: bool = False) -> None:
        """Whether the brain decides first for the model the conversation is asked with: known before
        an app note is told or a warm-up made, not only at a turn, so a session's requests (the
        warm-ups, the decision and the reply) begin alike and Ollama's prompt cache serves them all.
        While Ollama is down it stays as it was: no look at a model that cannot answer. A model Ollama
        could not describe is looked up `again` only for a turn, not at every click."""
        if not self.down:
            model = model or conversation.model or self.settings.model
            conversation.decides = await self.modes.decides(model, again)

    async def warm(self, job: Warm, conversation: Conversation) -> None:
        """Have Ollama evaluate the new app events right away. A click changes only the end of
        the prompt, but those tokens would still be evaluated when the user's next message or the
        comment comes; evaluating them now, while the user types, takes that time off the reply."""
        messages = conversation.upcoming()
        if messages is None or not self.up:
            return
        await self.mode(conversation)
        try:
            await self.streams.warm(conversation.model or self.settings.model,
                                    tools.shown(conversation.decides, messages),
                                    tools.offered(conversation, self.settings), job.control.hangup)
        except OllamaError as e:
            log.debug("warming the prompt cache of session %s: %s", job.session[:8], e)

    def flush(self, turn: Turn) -> None:
        "The words read and not sent yet go now, whatever the flow window says: before the reply's end."
        self.streams.flush(turn, force=True)

    async def ask(self, turn: Turn, conversation: Conversation, deadline: Deadline, messages: list[dict],
                  schema: dict | None = None) -> Answer:
        """A request that got no answer is one request's failure: the watch's check says whether
        Ollama is down (then the turn waits for it); if it is up, the request is asked again, after
        each of RETRY_DELAYS_S, and then the reply fails. A model that cannot call tools is asked
        again without them, and the session remembers. With a `schema`, the request is a decision
        (brain/tools.py)."""
        retries = 0
        while True:
            if turn.control.cancelled:
                return Answer("", "", Stats(), [])
            if self.down:
                await self.until_up(turn)
                continue
            self._start_clock(turn, deadline)
            offered = tools.offered(conversation, self.settings)
            sent_before = turn.out.sent  # a resume's, or a later round's, words were sent before this request
            try:
                if schema is not None:
                    return await self.streams.decide(turn, messages, schema)
                return await self.streams.reply(turn, messages, offered, tools.decided(conversation, self.settings))
            except Interrupted as e:
                if isinstance(e.error, ToolsUnsupported) and offered:
                    conversation.tools_off = True
                    self.bus.note(turn, f"{turn.model} cannot act on the app (it does not support tools); it can still "
                                        "talk about it.")
                    continue
                if not isinstance(e.error, NoAnswer) or turn.out.sent > sent_before or e.partial:
                    raise  # this request said something: asked again, it would say it twice
                await self._until(turn, self.watch.confirm())
                if self.down or turn.control.cancelled:
                    continue  # waits for Ollama, or ends
                if retries == len(RETRY_DELAYS_S):
                    raise Interrupted(OllamaFailed(
                        f"Ollama answers its health check but not this reply: {retries + 1} requests in a row got no "
                        f"answer ({str(e.error).rstrip('.')}). Its log may say why; Retry asks again."), "") from None
                log.warning("reply %s: %s Asking again in %gs.", turn.reply, e.error, RETRY_DELAYS_S[retries])
                await self._pause(turn, RETRY_DELAYS_S[retries])
                retries += 1

    async def until_up(self, turn: Turn) -> None:
        "While Ollama is down the turn waits for it (the web shows why); Stop ends the wait."
        if self.down:
            self.bus.waiting(turn, f"Waiting for Ollama: it is not running at {self.settings.ollama_url}. Start it "
                                   "with `ollama serve`; this message is answered as soon as it is up.")
            await self._until(turn, self.watch.up.wait())

    def _start_clock(self, turn: Turn, deadline: Deadline) -> None:
        if deadline.timer is None:
            deadline.timer = self.call_later(self.settings.reply_max_s, self._passed, turn, deadline)

    @staticmethod
    def _passed(turn: Turn, deadline: Deadline) -> None:
        "Hung up as by Stop, but the reply ends done, with a note saying why."
        if not turn.control.cancelled:
            deadline.passed = True
            turn.control.cancel()

    async def _pause(self, turn: Turn, seconds: float) -> None:
        elapsed = asyncio.Event()
        timer = self.call_later(seconds, elapsed.set)
        try:
            await self._until(turn, elapsed.wait())
        finally:
            timer.cancel()

    @staticmethod
    async def _until(turn: Turn, waited: Awaitable) -> None:
        "Until `waited` is done, or the turn is stopped (or cut off at its bound) meanwhile."
        waits = [asyncio.ensure_future(waited), asyncio.ensure_future(turn.control.woken.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
