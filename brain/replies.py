"""One reply, made for a `Turn` from its session's conversation and streamed to the bus.

A new turn is put into the conversation and fitted to the model's context window; a resumed one
(its brain stopped mid-reply) goes on from what reached the page, as a final assistant message that
Ollama continues. Then round after round: each asks Ollama once (waiting for it while it cannot be
reached), and one whose tool calls are applied asks again, within MODEL_TOOL_ROUNDS (`Rounds`
decides). The reply ends with exactly one `Done` or `Failed`, or with nothing when its worker is
closing or has lost the session (the web has the reply carried on, or ignores it).

A reply is bounded: Ollama generates at most REPLY_MAX_TOKENS a round (`num_predict`), and from its
first request the reply may take REPLY_MAX_S; past either it ends with what it said, and a note
saying where it was cut.
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import Enum, auto

from brain import claims, tools
from brain.conversation import Conversation
from brain.conversations import Conversations
from brain.jobs import Turn, Warm
from brain.ollama_client import NoAnswer, OllamaError, OllamaFailed, ToolCall, ToolsUnsupported
from brain.ollama_watch import OllamaWatch
from brain.outlet import ReplyBus
from brain.streams import Answer, Interrupted, Streams
from brain.tool_calls import ToolCalls, as_sent, asked, rounds_of
from shared.config import Settings
from shared.messages import Answered, FailCode, Reach, Stats, ToolResult

log = logging.getLogger("brain")
# A request Ollama dropped before answering, while its check finds it up, is asked again after these
# pauses, then the reply fails: Ollama may drop one request (a runner restarting) but not each one.
RETRY_DELAYS_S = (1.0, 2.0)
NOT_RESUMED = "The brain stopped mid-reply and the next one could not carry it on; what arrived is shown. Retry asks again"


def starts_over(said: str, continuation: str) -> bool:
    """A continuation that begins with what was already said: the model started the reply again.
    A reply that repeats itself (its start comes again later) cannot be told apart: it goes on."""
    said = said.strip()
    head = said[:24]
    return len(head) >= 8 and continuation.lstrip().startswith(head) and head not in said[1:]


class After(Enum):
    "What follows a round."
    ACT = auto()  # its calls are applied, and Ollama is asked again
    END = auto()  # the reply ends with it
    COMMENT_CALLED = auto()  # the reply ends, its calls not made: a comment on app events may not change the app
    ROUNDS_USED = auto()  # the reply ends, its calls not made: MODEL_TOOL_ROUNDS rounds changed the app already
    KEPT_FAILING = auto()  # the reply ends, its calls not made: the retries of failed calls are used up


@dataclass
class Rounds:
    "Where a reply stands, round by round."
    allowed: int  # rounds that may change the app (MODEL_TOOL_ROUNDS); tools.RETRIES more may put failed calls right
    said: str = ""  # what every round of this reply has said
    thought: str = ""  # and what every round thought (a thinking model's reasoning)
    prefill: str = ""  # what the next round continues: a resumed reply's current round, as far as it was shown
    made: dict[str, str] = field(default_factory=dict)  # the calls applied: their result, by what they asked
    asked: int = 0
    acted: int = 0  # rounds that changed something
    deadline: asyncio.TimerHandle | None = None  # REPLY_MAX_S, counted from the reply's first request
    overran: bool = False  # cut off at REPLY_MAX_S

    def messages(self, conversation: Conversation, then: tuple[dict, ...] = ()) -> list[dict]:
        """The conversation as the model is shown it (brain/tools.py), then what this request alone
        asks; a final assistant message is continued, not answered (Ollama's prefill)."""
        return [*tools.shown(conversation.decides, conversation.messages()), *then,
                *([{"role": "assistant", "content": self.prefill}] if self.prefill else [])]

    def started_over(self, text: str) -> bool:
        return bool(self.prefill) and starts_over(self.prefill, text)

    def heard(self, text: str, thinking: str = "") -> str:
        "The round's whole text, with what it continued."
        self.said += text
        self.thought += thinking
        whole, self.prefill = self.prefill + text, ""
        return whole

    def after(self, calls: list[ToolCall], asked_by_user: bool, cancelled: bool) -> After:
        self.asked += 1
        if calls and not asked_by_user:
            return After.COMMENT_CALLED
        if not calls or cancelled or any(asked(c) in self.made for c in calls):
            # A small model told of its action asks for it again, often with other calls it was
            # never asked for (Qwen2.5-Coder 0.5B did in 9 of 9 follow-up rounds): such a round is
            # an echo, none of it is applied, and the reply ends with what was done.
            return After.END
        if self.acted == self.allowed:
            # Small models follow a result with calls nobody asked for (after "clear the done
            # ones", Qwen2.5-Coder 0.5B deleted every other item): past the limit none is made.
            return After.ROUNDS_USED
        if self.asked > self.allowed + tools.RETRIES:
            return After.KEPT_FAILING
        return After.ACT

    def applied(self, made_before: int) -> None:
        "A round whose every call failed may be put right: it does not count."
        self.acted += len(self.made) > made_before

    def carried(self, calls: list[Answered]) -> None:
        "A round the web answered before the reply was cut off counts as if this brain had made it."
        self.asked += 1
        made_before = len(self.made)
        self.made.update((asked(c), c.text) for c in calls if c.ok)
        self.applied(made_before)


class Replies:
    def __init__(self, settings: Settings, watch: OllamaWatch, streams: Streams, calls: ToolCalls,
                 conversations: Conversations, bus: ReplyBus, call_later: Callable[..., asyncio.TimerHandle]):
        self.settings, self.watch, self.streams, self.calls = settings, watch, streams, calls
        self.conversations, self.bus, self.call_later = conversations, bus, call_later
        self.modes = tools.Modes(settings, streams.show)  # how each model is asked: deciding first or not

    @property
    def ollama_up(self) -> bool:
        return self.watch.reach is Reach.UP

    def resolve(self, result: ToolResult) -> bool:
        "The reply waiting on the result's call goes on; False when none waits (the result is late)."
        return self.calls.resolve(result)

    def awaits(self, result: ToolResult) -> bool:
        "Whether a reply waits on this result (it passes however full the session's queue)."
        return self.calls.awaited(result)

    async def mode(self, conversation: Conversation, model: str = "") -> None:
        """Whether the brain decides first for the model the conversation is asked with: known before
        an app note is told or a warm-up made, not only at a turn, so a session's requests (the
        warm-ups, the decision and the reply) begin alike and Ollama's prompt cache serves them all.
        While Ollama is down it stays as it was: no look at a model that cannot answer."""
        if self.watch.reach is not Reach.DOWN:
            conversation.decides = await self.modes.decides(model or conversation.model or self.settings.model)

    async def warm(self, job: Warm, conversation: Conversation) -> None:
        """Have Ollama evaluate the new app events right away. A click changes only the end of
        the prompt, but those tokens would still be evaluated when the user's next message or the
        comment comes; evaluating them now, while the user types, takes that time off the reply."""
        messages = conversation.upcoming()
        if messages is None or not self.ollama_up:
            return
        await self.mode(conversation)
        messages = tools.shown(conversation.decides, messages)
        try:
            await self.streams.warm(conversation.model or self.settings.model, messages,
                                    tools.offered(conversation, self.settings), job.control.hangup)
        except OllamaError as e:
            log.debug("warming the prompt cache of session %s: %s", job.session[:8], e)

    async def make(self, turn: Turn, conversation: Conversation) -> None:
        rounds = Rounds(self.settings.tool_rounds)
        if turn.asked_by_user:
            await self._until_up(turn)  # so its mode comes from what Ollama says of the model, not a guess
        await self.mode(conversation, turn.model)
        if turn.prompt is not None:
            conversation.prompt = tools.as_told(turn.prompt, self.settings, conversation.decides)
        try:
            if self._start(turn, conversation, rounds):
                last = await self._answer(turn, conversation, rounds)
                if last is not None:
                    self._end(turn, conversation, rounds, last)
        except Interrupted as e:
            if turn.control.silent:
                return
            self.streams.flush(turn, force=True)
            log.warning("reply %s failed: %s", turn.reply, e)
            self.bus.failed(turn, e.error.code, str(e.error), text=rounds.said + e.partial)
        except Exception:
            log.exception("reply %s crashed", turn.reply)
            self.streams.flush(turn, force=True)  # words held back go before the end
            self.bus.failed(turn, FailCode.INTERNAL, "The brain hit an internal error; see its log.")
        finally:
            if rounds.deadline is not None:
                rounds.deadline.cancel()

    def _start(self, turn: Turn, conversation: Conversation, rounds: Rounds) -> bool:
        "False when there is nothing to ask Ollama (the reply has ended, or there is nothing to answer)."
        if turn.resume is None:
            return self._begin(turn, conversation)
        if turn.question and not conversation.asks(turn.question, turn.reply):
            # Its brain stopped before the question was saved (or before its turn began, behind
            # another): it is asked now, and the answer goes on from what was shown.
            turn.text, rounds.said = turn.question, turn.resume
            if not self._begin(turn, conversation):
                return False
            rounds.prefill = self._carry(turn, conversation, rounds, 0)
            return True
        point = conversation.resume_point(turn.question, turn.resume, turn.reply)
        if point is None:
            self.bus.failed(turn, FailCode.NOT_RESUMED, NOT_RESUMED + " (its conversation does not lead to what was shown)",
                            text=turn.resume)
            return False
        whole, text = point
        if whole:  # saved whole: only its end was lost with the brain
            self.bus.done(turn, text, turn.resumed_thinking)
            return False
        rounds.said = turn.resume
        rounds.prefill = self._carry(turn, conversation, rounds, len(turn.resume) - len(text))
        turn.model = turn.model or conversation.model or self.settings.model
        return True

    def _carry(self, turn: Turn, conversation: Conversation, rounds: Rounds, start: int) -> str:
        """Put the resumed reply's rounds whose calls the web answered, and that the saved conversation
        lacks (its brain died before saving them), back in their place: the text shown before each
        (from `start`), its calls and their results. Every such round counts against the reply's, so
        no call is applied again and MODEL_TOOL_ROUNDS holds. Returns the shown text after the last
        of them: what the model continues."""
        shown = turn.resume
        for calls in rounds_of(turn.carried):
            if not conversation.holds_call(calls[0].call):
                at = min(max(calls[0].at, start), len(shown))
                conversation.add_carried_round(shown[start:at], [as_sent(c.call, c.index, c.name, c.arguments)
                                                                 for c in calls], [(c.name, c.text) for c in calls])
                self.conversations.save(turn.session)
                start = at
            rounds.carried(calls)
        return shown[start:]

    def _begin(self, turn: Turn, conversation: Conversation) -> bool:
        "Put a new turn into the conversation and fit it to the context window."
        if turn.text is None and not turn.regenerate and self.watch.reach is Reach.DOWN:
            return False  # no comment while Ollama is away: the events stay unseen and go with the next turn
        if not conversation.begin_turn(turn.text, turn.retry, turn.reply) and not turn.regenerate:
            return False  # a comment whose events an earlier turn already carried
        conversation.model = turn.model or conversation.model
        turn.model = conversation.model or self.settings.model
        num_ctx = self.settings.num_ctx
        set_aside = conversation.fit(num_ctx - num_ctx // 4, tools.offered(conversation, self.settings))
        if set_aside:
            self.bus.note(turn, f"To fit the model's context window ({num_ctx} tokens, OLLAMA_NUM_CTX), I set aside the "
                                f"{set_aside} oldest messages of this conversation. My instructions and what I know of "
                                "the app always stay.")
        self.conversations.save(turn.session)
        return True

    async def _answer(self, turn: Turn, conversation: Conversation, rounds: Rounds) -> Answer | None:
        "Round after round: the last one's answer (its text whole), or None when the reply ended otherwise."
        while True:
            if self._decides(turn, conversation, rounds):
                if not await self._decide(turn, conversation, rounds, rounds.messages(conversation)):
                    return None
            messages = rounds.messages(conversation, tools.words(conversation.decides))
            answer = await self._ask(turn, conversation, rounds, messages)
            await turn.until_granted()  # nothing but its words before the grant: no app change, no end
            if turn.control.silent:
                return None
            self.streams.flush(turn, force=True)
            if rounds.started_over(answer.text):
                self.bus.failed(turn, FailCode.NOT_RESUMED, NOT_RESUMED + " (the model began it again instead of going "
                                                                          "on)", text=rounds.said)
                return None
            answer = answer._replace(text=rounds.heard(answer.text, answer.thinking))
            if answer.stats.done_reason == "length":
                self.bus.note(turn, f"The reply was cut off at {self.settings.reply_max_tokens} tokens "
                                    "(REPLY_MAX_TOKENS).")
            if self.conversations.held(turn.session) is not conversation:
                return None  # fenced meanwhile: the session is another worker's, which the web hears from
            offered = tools.offered(conversation, self.settings)
            conversation.learn(messages, answer.stats.prompt_eval_count, offered)
            if answer.calls and not offered:
                # MODEL_TOOL_MODE=decide: the decision alone acts; calls written into the reply are not shown, nor made.
                log.info("reply %s: calls written into the reply, not made: %s", turn.reply,
                         ", ".join(c.name for c in answer.calls))
                answer = answer._replace(calls=[])
            after = rounds.after(answer.calls, turn.asked_by_user, turn.control.cancelled)
            if after is not After.ACT:
                self._say_why(turn, after, answer.calls, rounds.allowed)
                return answer
            made_before = len(rounds.made)
            calls, results, state = await self.calls.round(turn, answer.calls, rounds.made, offered,
                                                           len(rounds.said))
            conversation.add_tool_round(answer.text, calls, results, state)
            self.conversations.save(turn.session)
            rounds.applied(made_before)

    def _decides(self, turn: Turn, conversation: Conversation, rounds: Rounds) -> bool:
        "MODEL_TOOL_MODE=decide: a message of the user's is decided on first, unless a resume carries its reply on."
        return bool(tools.decided(conversation, self.settings)) and turn.asked_by_user and not rounds.asked \
            and not rounds.prefill

    async def _decide(self, turn: Turn, conversation: Conversation, rounds: Rounds, messages: list[dict]) -> bool:
        """Ask for the decision and apply its calls (brain/tools.py); the reply is then asked for
        with them in context. False when the reply has ended meanwhile (fenced, or its worker closing)."""
        usable = tools.decided(conversation, self.settings)
        answer = await self._ask(turn, conversation, rounds, messages, tools.schema(usable))
        await turn.until_granted()
        if turn.control.silent or self.conversations.held(turn.session) is not conversation:
            return False
        conversation.learn(messages, answer.stats.prompt_eval_count)
        rounds.asked += 1
        calls = [] if turn.control.cancelled else tools.calls_in(answer.text, usable)
        log.info("reply %s: decided %s", turn.reply, [c.name for c in calls] or "no action")
        if calls:
            made_before = len(rounds.made)
            sent, results, state = await self.calls.round(turn, calls, rounds.made, usable, briefs=False)
            conversation.add_tool_round("", sent, results, state)
            self.conversations.save(turn.session)
            rounds.applied(made_before)
        return True

    def _say_why(self, turn: Turn, after: After, calls: list[ToolCall], allowed: int) -> None:
        "Why the model's calls were not made, when the user should know."
        names = ", ".join(c.name for c in calls)
        if after is After.COMMENT_CALLED:
            log.info("reply %s: a comment on app events called %s; the user asked for nothing, so none is made",
                     turn.reply, names)
        elif after is After.ROUNDS_USED:
            self.bus.note(turn, f"The model asked for more changes ({names}) after {allowed} "
                                f"round{'s' if allowed > 1 else ''} of them in one reply; they were not made "
                                "(MODEL_TOOL_ROUNDS).")
        elif after is After.KEPT_FAILING:
            self.bus.note(turn, f"The model's calls kept failing ({names}), so I stopped it there.")

    def _end(self, turn: Turn, conversation: Conversation, rounds: Rounds, last: Answer) -> None:
        claim = None if rounds.made or not turn.asked_by_user else \
            claims.claimed(rounds.said, tools.usable(conversation, self.settings))
        if claim:  # said, not done: the user is told (brain/claims.py)
            log.info("reply %s claims a change no call made (%r)", turn.reply, claim)
            self.bus.note(turn, f"Nothing was changed, though this reply says so (\"{claim}\"): no action ran. "
                                "Ask again if you want it done.")
        if last.text or not turn.control.cancelled:
            conversation.add_reply(last.text)  # a stopped reply stays in context as far as it got
        self.conversations.save(turn.session)
        if turn.control.cancelled and not rounds.overran:
            self.bus.failed(turn, FailCode.STOPPED, "Stopped.", text=rounds.said)
            return
        if rounds.overran:
            self.bus.note(turn, f"The reply was cut off after {self.settings.reply_max_s:g} s (REPLY_MAX_S).")
        # The whole reply's thinking, every round's: the web shows the end's in place of what the chunks brought.
        self.bus.done(turn, rounds.said, turn.resumed_thinking + rounds.thought, last.stats)

    async def _ask(self, turn: Turn, conversation: Conversation, rounds: Rounds, messages: list[dict],
                   schema: dict | None = None) -> Answer:
        """While Ollama is down the turn waits for it (the web shows why) and is asked as soon as it is
        back; Stop ends the wait. A request that got no answer is one request's failure: the watch's
        check says whether Ollama is down (then the turn waits for it); if it is up, the request is
        asked again, after each of RETRY_DELAYS_S, and then the reply fails. A model that cannot call
        tools is asked again without them, and the session remembers. With a `schema`, the request is a
        decision (brain/tools.py)."""
        retries = 0
        while True:
            if turn.control.cancelled:
                return Answer("", "", Stats(), [])
            if self.watch.reach is Reach.DOWN:
                await self._until_up(turn)
                continue
            self._bound_in_time(turn, rounds)
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
                if self.watch.reach is Reach.DOWN or turn.control.cancelled:
                    continue  # waits for Ollama, or ends
                if retries == len(RETRY_DELAYS_S):
                    raise Interrupted(OllamaFailed(
                        f"Ollama answers its health check but not this reply: {retries + 1} requests in a row got no "
                        f"answer ({str(e.error).rstrip('.')}). Its log may say why; Retry asks again."), "") from None
                log.warning("reply %s: %s Asking again in %gs.", turn.reply, e.error, RETRY_DELAYS_S[retries])
                await self._pause(turn, RETRY_DELAYS_S[retries])
                retries += 1

    def _bound_in_time(self, turn: Turn, rounds: Rounds) -> None:
        "From its first request on, a reply may take REPLY_MAX_S (waiting for Ollama to start does not count)."
        if rounds.deadline is None:
            rounds.deadline = self.call_later(self.settings.reply_max_s, self._overran, turn, rounds)

    @staticmethod
    def _overran(turn: Turn, rounds: Rounds) -> None:
        "Hung up as by Stop, but the reply ends done, with a note saying why."
        if not turn.control.cancelled:
            rounds.overran = True
            turn.control.cancel()

    async def _until_up(self, turn: Turn) -> None:
        "While Ollama is down the turn waits for it (the web shows why); Stop ends the wait."
        if self.watch.reach is Reach.DOWN:
            self.bus.waiting(turn, f"Waiting for Ollama: it is not running at {self.settings.ollama_url}. Start it "
                                   "with `ollama serve`; this message is answered as soon as it is up.")
            await self._until(turn, self.watch.up.wait())

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
