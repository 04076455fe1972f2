"""Ollama's chat streams, read on a thread pool (BRAIN_PARALLEL wide, so sessions stream side by
side): a reply's is handed to the loop, which alone sends, chunk by chunk (or, while the web is
behind, holds the words and sends them together: brain/outlet.py); a warm-up's is read and thrown
away. Every request carries the same options and keep_alive, since a change of num_ctx would reload
the model. `num_predict` (REPLY_MAX_TOKENS) is not a load option: it bounds every reply without a
reload, and only a warm-up asks for another (one token)."""
import asyncio
import threading
from concurrent.futures import Executor
from typing import NamedTuple

from brain.conversation import REPLY_MARKERS
from brain.jobs import Turn
from brain.ollama_client import Delta, Hangup, OllamaClient, OllamaError, ToolCall
from brain.outlet import ReplyBus
from brain.text_calls import CallFilter
from shared.config import Settings
from shared.messages import Stats


class Answer(NamedTuple):
    """What one request gave: the reply's text, the model's thinking (kept apart: it is shown, not
    put back into the context), Ollama's stats, and the tools the model called."""
    text: str
    thinking: str
    stats: Stats
    calls: list[ToolCall]


class Interrupted(Exception):
    "A stream Ollama broke off; `partial` is what it had said."
    def __init__(self, error: OllamaError, partial: str):
        super().__init__(str(error))
        self.error, self.partial = error, partial


class Streams:
    def __init__(self, ollama: OllamaClient, settings: Settings, pool: Executor, loop: asyncio.AbstractEventLoop,
                 bus: ReplyBus):
        self.ollama, self.settings, self.pool, self.loop, self.bus = ollama, settings, pool, loop, bus
        self.lock = threading.Lock()
        self.ready: list[Turn] = []  # turns with words read since their last flush, for the loop to send
        self.waking = False  # the loop has been asked to send them

    @property
    def options(self) -> dict:
        return {"num_ctx": self.settings.num_ctx, "num_predict": self.settings.reply_max_tokens}

    async def reply(self, turn: Turn, messages: list[dict], offered: list[dict] | None,
                    known: list[dict] | None = None) -> Answer:
        """Stream the turn's reply to the bus as it comes; a stopped reply answers with what it had so far.
        Calls of the `known` tools (default: the `offered` ones) written as text are taken out of it."""
        return await self.loop.run_in_executor(self.pool, self._read, turn, messages, offered, known or offered)

    async def decide(self, turn: Turn, messages: list[dict], schema: dict) -> Answer:
        "A decision (brain/tools.py): its text held to `schema`, at temperature 0, read whole and never shown."
        return await self.loop.run_in_executor(self.pool, self._decision, turn, messages, schema)

    async def show(self, model: str) -> dict:
        "What Ollama says of the model (`/api/show`), read on the pool."
        return await self.loop.run_in_executor(self.pool, self.ollama.show, model)

    async def warm(self, model: str, messages: list[dict], offered: list[dict] | None, hangup: Hangup) -> None:
        "Have Ollama evaluate `messages` into its prompt cache."
        # One token is generated and thrown away; num_predict is not a load option (no reload).
        options = self.options | {"num_predict": 1}

        def evaluate() -> None:
            for _ in self.ollama.chat(model, messages, options=options, tools=offered,
                                      keep_alive=self.settings.keep_alive, hangup=hangup):
                pass

        await self.loop.run_in_executor(self.pool, evaluate)

    def flush(self, turn: Turn, force: bool = False) -> None:
        """On the loop: send what the stream has read since the last flush as one chunk message;
        while the web is a window behind, only when `force`d (before the reply's end)."""
        if not force and self.bus.held_back(turn, lambda: self.flush(turn)):
            return  # flush_scheduled stays set: the stream thread adds to what waits
        turn.out.flush_scheduled = False
        deltas = []
        while turn.out.unsent:
            deltas.append(turn.out.unsent.popleft())
        if deltas:
            self.bus.chunk(turn, "".join(d.content for d in deltas), "".join(d.thinking for d in deltas))

    def _read(self, turn: Turn, messages: list[dict], offered: list[dict] | None, known: list[dict] | None) -> Answer:
        "On a pool thread. A call the model writes as text is taken out of what is shown."
        parts, thinking, stats, calls = [], [], Stats(), []
        written = CallFilter({t["function"]["name"] for t in known} if known else None, REPLY_MARKERS)
        chunks = self.ollama.chat(turn.model, messages, options=self.options, tools=offered,
                                  keep_alive=self.settings.keep_alive, hangup=turn.control.hangup)
        try:
            for item in chunks:
                if turn.control.cancelled:
                    break  # what was read after a Stop is not shown
                if isinstance(item, Stats):
                    stats = item
                    continue
                if isinstance(item, list):
                    calls.extend(item)
                    continue
                self._hand_over(turn, Delta(written.feed(item.content), item.thinking), parts, thinking)
            rest, found = written.finish()
            self._hand_over(turn, Delta(rest), parts, thinking)
            calls.extend(found)
        except OllamaError as e:
            if not turn.control.cancelled:  # a hangup of ours breaks the stream too; that is a stop, not a fault
                raise Interrupted(e, "".join(parts)) from None
        finally:
            chunks.close()
        return Answer("".join(parts), "".join(thinking), stats, calls)

    def _decision(self, turn: Turn, messages: list[dict], schema: dict) -> Answer:
        parts, stats = [], Stats()
        chunks = self.ollama.chat(turn.model, messages, options=self.options | {"temperature": 0}, format=schema,
                                  keep_alive=self.settings.keep_alive, hangup=turn.control.hangup)
        try:
            for item in chunks:
                if turn.control.cancelled:
                    break
                if isinstance(item, Stats):
                    stats = item
                elif isinstance(item, Delta):
                    parts.append(item.content)
        except OllamaError as e:
            if not turn.control.cancelled:
                raise Interrupted(e, "") from None  # nothing of a decision was shown: it may be asked again
        finally:
            chunks.close()
        return Answer("".join(parts), "", stats, [])

    def _hand_over(self, turn: Turn, delta: Delta, parts: list[str], thinking: list[str]) -> None:
        """On the stream's thread: a lone chunk goes out at once; chunks that arrive while the loop
        is busy go out together."""
        if not (delta.content or delta.thinking):
            return
        parts.append(delta.content)
        thinking.append(delta.thinking)
        turn.out.unsent.append(delta)
        if not turn.out.flush_scheduled:
            turn.out.flush_scheduled = True
            with self.lock:
                self.ready.append(turn)
                if self.waking:
                    return
                self.waking = True
            # One wakeup of the loop for whatever every stream read meanwhile: waking it once per
            # token cost more than the tokens did, with hundreds of replies streaming.
            self.loop.call_soon_threadsafe(self._flush_ready)

    def _flush_ready(self) -> None:
        with self.lock:
            turns, self.ready, self.waking = self.ready, [], False
        for turn in turns:
            self.flush(turn)
