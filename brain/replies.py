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
import logging
from dataclasses import dataclass, field
from enum import Enum, auto

from brain import claims, tools
from brain.asking import Asker, Deadline
from brain.conversation import Conversation
from brain.conversations import Conversations
from brain.jobs import Turn, Warm
from brain.ollama_client import ToolCall
from brain.outlet import ReplyBus
from brain.streams import Answer, Interrupted
from brain.tool_calls import ToolCalls, as_sent, asked, rounds_of
from shared.config import Settings
from shared.messages import Answered, FailCode, ToolResult

log = logging.getLogger("brain")
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
    deadline: Deadline = field(default_factory=Deadline)  # REPLY_MAX_S

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
    def __init__(self, settings: Settings, asker: Asker, calls: ToolCalls, conversations: Conversations,
                 bus: ReplyBus):
        self.settings, self.asker, self.calls, self.conversations, self.bus = settings, asker, calls, conversations, bus

    @property
    def ollama_up(self) -> bool:
        return self.asker.up

    def resolve(self, result: ToolResult) -> bool:
        "The reply waiting on the result's call goes on; False when none waits (the result is late)."
        return self.calls.resolve(result)

    def awaits(self, result: ToolResult) -> bool:
        "Whether a reply waits on this result (it passes however full the session's queue)."
        return self.calls.awaited(result)

    async def mode(self, conversation: Conversation) -> None:
        "How the conversation's model is asked, known before an app note is told (brain/asking.py)."
        await self.asker.mode(conversation)

    async def warm(self, job: Warm, conversation: Conversation) -> None:
        await self.asker.warm(job, conversation)

    async def make(self, turn: Turn, conversation: Conversation) -> None:
        rounds = Rounds(self.settings.tool_rounds)
        if turn.asked_by_user:
            await self.asker.until_up(turn)  # so its mode comes from what Ollama says of the model, not a guess
        await self.asker.mode(conversation, turn.model, again=True)
        if turn.prompt is not None:
            conversation.prompt = tools.as_told(turn.prompt, self.settings, conversation.decides)
        try:
            if await self._start(turn, conversation, rounds):
                last = await self._answer(turn, conversation, rounds)
                if last is not None:
                    await self._end(turn, conversation, rounds, last)
        except Interrupted as e:
            if not await self._kept(turn, conversation):
                return
            self.asker.flush(turn)
            log.warning("reply %s failed: %s", turn.reply, e)
            self.bus.failed(turn, e.error.code, str(e.error), text=rounds.said + e.partial)
        except Exception:
            log.exception("reply %s crashed", turn.reply)
            self.asker.flush(turn)  # words held back go before the end
            self.bus.failed(turn, FailCode.INTERNAL, "The brain hit an internal error; see its log.")
        finally:
            rounds.deadline.cancel()

    async def _start(self, turn: Turn, conversation: Conversation, rounds: Rounds) -> bool:
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
            if await self._kept(turn, conversation):  # our own copy's save may still be on its way
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
        if turn.text is None and not turn.regenerate and self.asker.down:
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
            answer = await self.asker.ask(turn, conversation, rounds.deadline, messages)
            await turn.until_granted()  # nothing but its words before the grant: no app change, no end
            if turn.control.silent:
                return None
            self.asker.flush(turn)
            if rounds.started_over(answer.text):
                if await self._kept(turn, conversation):  # the rounds put back stay, as the page shows them
                    self.bus.failed(turn, FailCode.NOT_RESUMED, NOT_RESUMED + " (the model began it again instead of "
                                                                              "going on)", text=rounds.said)
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
        answer = await self.asker.ask(turn, conversation, rounds.deadline, messages, tools.schema(usable))
        await turn.until_granted()
        if turn.control.silent or self.conversations.held(turn.session) is not conversation:
            return False
        conversation.learn(messages, answer.stats.prompt_eval_count)
        rounds.asked += 1
        calls = [] if turn.control.cancelled else tools.calls_in(answer.text, usable)
        log.info("reply %s: decided %s", turn.reply, [c.name for c in calls] or "no action")
        if calls:
            made_before = len(rounds.made)
            sent, results, state = await self.calls.round(turn, calls, rounds.made, usable, decided=True)
            if sent:  # none when the app refused every one: as if nothing had been decided
                conversation.add_tool_round("", sent, results, state)
                self.conversations.save(turn.session)
            rounds.applied(made_before)
        return True

    async def _kept(self, turn: Turn, conversation: Conversation) -> bool:
        """Wait until what the reply put into the conversation is stored, before its end goes out: a
        brain killed between the two would leave the web showing a reply ended that the model never
        sees again (the web carries on only replies not ended; docs/protocol.md §9.1). False when
        the reply may say nothing more: the session is held elsewhere now, or the worker is closing
        (the web has it carried on)."""
        if turn.control.silent:  # cut off: nothing more is saved or said (the store may be closed already)
            return False
        return (await self.conversations.stored(turn.session) and not turn.control.silent
                and self.conversations.held(turn.session) is conversation)

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

    async def _end(self, turn: Turn, conversation: Conversation, rounds: Rounds, last: Answer) -> None:
        claim = None if rounds.made or not turn.asked_by_user else \
            claims.claimed(rounds.said, tools.usable(conversation, self.settings))
        if claim:  # said, not done: the user is told (brain/claims.py)
            log.info("reply %s claims a change no call made (%r)", turn.reply, claim)
            self.bus.note(turn, f"Nothing was changed, though this reply says so (\"{claim}\"): no action ran. "
                                "Ask again if you want it done.")
        stopped = turn.control.cancelled  # as the reply is kept: a Stop during the save below comes too late
        if last.text or not stopped:
            conversation.add_reply(last.text)  # a stopped reply stays in context as far as it got
        if not await self._kept(turn, conversation):
            return
        if stopped and not rounds.deadline.passed:
            self.bus.failed(turn, FailCode.STOPPED, "Stopped.", text=rounds.said)
            return
        if rounds.deadline.passed:
            self.bus.note(turn, f"The reply was cut off after {self.settings.reply_max_s:g} s (REPLY_MAX_S).")
        # The whole reply's thinking, every round's: the web shows the end's in place of what the chunks brought.
        self.bus.done(turn, rounds.said, turn.resumed_thinking + rounds.thought, last.stats)
