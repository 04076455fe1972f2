"""The brain's sessions: each one's conversation and its queue of jobs, answered through Ollama.

Every change to a session's conversation is a job on that session's queue, run one at a time in
arrival order, so app events, resets and turns never overtake each other, even while the
conversation is still being read from disk:

- `Event`: the user did something in the app. When the app asks for a comment, one follows once the
  clicking pauses (a burst makes one), and the event is evaluated in Ollama at once (`Warm`), so
  the next turn finds it cached.
- `Turn`: a reply to make (to a message, a retry, a regenerate, or a comment), streamed to the bus.
- `DropLastReply` comes before a regenerate; `StartAfresh` is New chat.

Each job from the bus carries its cause (the message's id) and the session's assignment
(`epoch`). A job runs on the cached conversation only while that copy belongs to the job's epoch;
otherwise the conversation is read again from disk, claiming the new epoch (a session that moved
to another worker and back arrives with everything the other one did). A job whose cause is
already in the conversation's `handled` list is not done again, across restarts too, and a job of
an epoch the session has left is dropped (`Fenced`). When the web says the session is held
elsewhere (`Revoke`), what runs for it stops without a word or a save, and its copy is forgotten.

Blocking Ollama streams run on a thread pool (BRAIN_PARALLEL wide, so sessions stream side by
side) and hand every chunk back to the loop, which alone calls `send`. Conversations are saved to
disk after every change, on a thread of their own, in order. Idle sessions leave memory once more
than MAX_SESSIONS are held, least recently used first.

The engine knows nothing of the bus: it is given `send` and an Ollama client, so it can be tested
with scripted fakes and a hand-turned clock.
"""
import asyncio
import json
import logging
import re
import uuid
from collections import OrderedDict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from brain import tools
from brain.conversation import REPLY_MARKERS, Conversation
from brain.memory import Fenced, Memory
from brain.ollama_client import Delta, Hangup, OllamaClient, OllamaError, OllamaUnavailable, ToolCall, ToolsUnsupported
from brain.text_calls import CallFilter
from brain.ollama_watch import OllamaWatch
from shared.config import Settings
from shared.messages import (AppEvent, CallTool, Chat, Chunk, Done, Failed, FailCode, Note, Prompt, Reach, Regenerate, Reset,
                             Resume, Revoke, Stats, Stop, ToBrain, ToolResult, Waiting)

log = logging.getLogger("brain")
MAX_SESSIONS = 1000
CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a bus id; Ollama's "call_…" ids fit


@dataclass(kw_only=True)
class FromBus:
    """What every job knows of the message that caused it: its id ("" for the brain's own
    jobs) and the session's epoch (None until it runs: the brain's own jobs take the held one)."""
    cause: str = ""
    epoch: int | None = None


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
    hangup: Hangup = field(default_factory=Hangup)  # ends the Ollama request at once, from any thread
    woken: asyncio.Event = field(default_factory=asyncio.Event)  # wakes a turn waiting for Ollama
    unsent: deque = field(default_factory=deque)  # read from Ollama, not yet on the bus
    flush_scheduled: bool = False
    sent: int = 0  # chunk messages sent: the next one's seq

    @property
    def cancelled(self) -> bool:
        return self.hangup.fired

    @property
    def asked_by_user(self) -> bool:
        "Only something the user said may change their list: a comment on app events may not."
        return self.text is not None or bool(self.question) or self.regenerate

    def cancel(self) -> None:
        "Stop or reset: end the Ollama request now, even one still waiting for its first byte."
        self.hangup.fire()
        self.woken.set()


@dataclass
class Warm(FromBus):
    """Evaluate a session's new app events now, ahead of its next turn, so that turn finds them in
    Ollama's prompt cache and costs no more than any other (see `warm`)."""
    session: str
    hangup: Hangup = field(default_factory=Hangup)

    def cancel(self) -> None:
        self.hangup.fire()


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


class Interrupted(Exception):
    def __init__(self, error: OllamaError, partial: str):
        super().__init__(str(error))
        self.error, self.partial = error, partial


@dataclass
class SessionQueue:
    jobs: deque = field(default_factory=deque)
    busy: bool = False
    running: Turn | Warm | None = None  # the turn being answered (or the cache being warmed), from the moment it leaves the queue
    comment: asyncio.TimerHandle | None = None


NOT_RESUMED = "The brain stopped mid-reply and the next one could not carry it on; what arrived is shown. Retry asks again"


def _starts_over(said: str, continuation: str) -> bool:
    """A continuation that begins with what was already said: the model started the reply again.
    A reply that repeats itself (its start comes again later) cannot be told apart: it goes on."""
    said = said.strip()
    head = said[:24]
    return len(head) >= 8 and continuation.lstrip().startswith(head) and head not in said[1:]


def _asked(call: ToolCall) -> str:
    "What a call asks for, the same however its arguments are ordered."
    return call.name + json.dumps(call.arguments, sort_keys=True, default=str)


def _log_failure(future) -> None:
    if future.exception() is not None:
        log.error("saving a conversation failed", exc_info=future.exception())


class Engine:
    def __init__(self, settings: Settings, ollama: OllamaClient, memory: Memory, watch: OllamaWatch,
                 send, worker: str, call_later=None):
        self.settings, self.ollama, self.memory, self.watch, self.send, self.worker = (
            settings, ollama, memory, watch, send, worker)
        self.loop = asyncio.get_running_loop()
        self.call_later = call_later or self.loop.call_later
        self.conversations: dict[str, Conversation] = {}
        self.queues: OrderedDict[str, SessionQueue] = OrderedDict()
        self.tasks: set[asyncio.Task] = set()
        self.closing = False  # shutting down: nothing more starts, and replies cut off say nothing
        self.tool_results: dict[str, tuple[str, asyncio.Future]] = {}  # by call id: (session, the reply waiting on the web)
        self.executor = ThreadPoolExecutor(settings.parallel, thread_name_prefix="ollama")
        # Conversations are read and written on a thread of their own, in order, off the loop.
        self.disk = ThreadPoolExecutor(1, thread_name_prefix="memory")

    @property
    def options(self) -> dict:
        "Ollama options, the same in every request: a change of num_ctx would reload the model."
        return {"num_ctx": self.settings.num_ctx}

    @property
    def making(self) -> list[str]:
        "The replies queued or under way."
        return [job.reply for q in self.queues.values() for job in [q.running, *q.jobs] if isinstance(job, Turn)]

    @property
    def busy(self) -> int:
        "Replies being made now (warm-ups are not replies)."
        return sum(1 for q in self.queues.values() if isinstance(q.running, Turn))

    def handle(self, msg: ToBrain) -> None:
        "A message the web has granted this worker."
        if self.full(msg):
            return
        bus = dict(cause=msg.id, epoch=msg.epoch)
        match msg:
            case AppEvent():
                self.enqueue(msg.session, Event(msg, **bus))
            case Stop():
                self.stop(msg.session, msg.reply)
            case Reset():
                self.reset(msg.session, bus)
            case Regenerate():
                self.enqueue(msg.session, DropLastReply(cause=f"{msg.id}.drop", epoch=msg.epoch))
                self.enqueue(msg.session, Turn(msg.session, msg.reply, None, msg.prompt, regenerate=True, model=msg.model,
                                               **bus))
            case Chat():
                self.enqueue(msg.session, Turn(msg.session, msg.reply, msg.text, msg.prompt, msg.retry, model=msg.model,
                                               **bus))
            case Resume():
                self.enqueue(msg.session, Turn(msg.session, msg.reply, None, msg.prompt, model=msg.model, resume=msg.text,
                                               resumed_thinking=msg.thinking, question=msg.question, sent=msg.seq, **bus))
            case ToolResult():
                self.tool_result(msg, bus)

    def full(self, msg: ToBrain) -> bool:
        """A session queues at most SESSION_MAX_PENDING replies and as many other jobs, however fast
        its messages come: past that, a reply asked for fails at once (its bubble says why) and
        anything else is left out (the next app event finds the state it came from missing and states it whole), so a flood of clicks
        never holds up a question. Stop and New chat always get through."""
        q = self.queues.get(msg.session)
        answered = isinstance(msg, ToolResult) and msg.call in self.tool_results  # a reply waits on it: not queued
        if q is None or isinstance(msg, (Stop, Reset)) or answered:
            return False
        alike = [j for j in q.jobs if isinstance(j, Turn) == bool(msg.makes)]
        if len(alike) < self.settings.session_max_pending:
            return False
        log.warning("session %s has %d such jobs queued; a %s was left out", msg.session[:8], len(alike), msg.kind)
        if msg.makes:
            self.fail(Turn(msg.session, msg.makes, None, epoch=msg.epoch), FailCode.BUSY,
                      "The brain has too much queued for this conversation (SESSION_MAX_PENDING); Retry in a moment.")
        return True

    def revoke(self, msg: Revoke) -> None:
        """The web says `msg.message` is not ours; and if the session is held at another epoch
        than our copy's, the session is not ours either."""
        q = self.queues.get(msg.session)
        if q is not None and msg.message:
            q.jobs = deque(j for j in q.jobs if j.cause != msg.message)
            if q.running and q.running.cause == msg.message:
                q.running.cancel()
        held = self.conversations.get(msg.session)
        if held is not None and held.epoch != msg.epoch:
            self.fence(msg.session, msg.epoch)

    def fence(self, session: str, epoch: int) -> None:
        """The session is held at `epoch` now, elsewhere or here anew: stop what runs for it under
        an older one, drop such jobs, and forget our copy (it is read again if the session returns)."""
        log.warning("session %s is held at epoch %d elsewhere now; dropping this worker's copy", session[:8], epoch)
        q = self.queues.get(session)
        if q is not None:
            if q.running and q.running.epoch != epoch:
                q.running.cancel()
            q.jobs = deque(j for j in q.jobs if j.epoch == epoch)
            if q.comment:
                q.comment.cancel()
                q.comment = None
        for call, (owner, answered) in list(self.tool_results.items()):
            if owner == session and not answered.done():
                answered.set_result(None)
        if self.conversations.pop(session, None) is not None:
            self.disk.submit(self.memory.evict, session).add_done_callback(_log_failure)

    def shutdown(self) -> None:
        """Hang up on Ollama and finish writing: what the conversations learned is on disk before we
        go. A reply cut off so says nothing more: the web has the next brain carry it on."""
        self.closing = True
        for q in self.queues.values():
            if q.running:
                q.running.cancel()
        self.disk.shutdown(wait=True)

    def queue(self, session: str) -> SessionQueue:
        q = self.queues.get(session)
        if q is None:
            q = self.queues[session] = SessionQueue()
            self._evict(keep=session)
        else:
            self.queues.move_to_end(session)
        return q

    def _evict(self, keep: str) -> None:
        "Idle sessions leave memory, least recently used first; their conversations are on disk."
        while len(self.queues) > MAX_SESSIONS:
            idle = next((s for s, q in self.queues.items()
                         if s != keep and not q.busy and not q.jobs and not q.comment), None)
            if idle is None:
                return
            del self.queues[idle]
            if self.conversations.pop(idle, None) is not None:
                self.disk.submit(self.memory.evict, idle).add_done_callback(_log_failure)

    def enqueue(self, session: str, job: Job) -> None:
        q = self.queue(session)
        if isinstance(job, Turn) and job.text is not None:
            if q.comment:
                q.comment.cancel()  # the chat turn carries the pending events with it
                q.comment = None
            # The turn evaluates the events itself, so a waiting warm-up would only delay it. One under
            # way is left to finish: hung up on, its slot may still be busy when the turn arrives,
            # which Ollama then serves from another slot, without this conversation's cache.
            q.jobs = deque(j for j in q.jobs if not isinstance(j, Warm))
        q.jobs.append(job)
        self.pump(session)

    def pump(self, session: str) -> None:
        q = self.queue(session)
        if q.busy or not q.jobs or self.closing:
            return
        q.busy, job = True, q.jobs.popleft()
        # Running from now on, while it waits for its task and for the disk too: Stop and Reset
        # reach it, and the heartbeat's `making` lists it (the web settles a reply it does not).
        q.running = job if isinstance(job, (Turn, Warm)) else None
        task = asyncio.create_task(self.run_job(session, job))
        self.tasks.add(task)  # kept until done, so it is not collected mid-job
        task.add_done_callback(self.tasks.discard)

    async def run_job(self, session: str, job: Job) -> None:
        q = self.queue(session)
        try:
            conversation = await self.conversation(session, job.epoch)
            job.epoch = conversation.epoch
            if job.cause and not conversation.take(job.cause):
                log.info("session %s: %s was acted on already; not again", session[:8], job.cause)
                if isinstance(job, Turn):  # its bubble must not wait for ever
                    self.fail(job, FailCode.DUPLICATE, "The brain had already taken this message before a restart; "
                                                "if its answer is missing, Retry.")
                return
            match job:
                case Turn():
                    await self.reply(job, conversation)
                case Warm():
                    await self.prefill(job, conversation)
                case Event(event=event):
                    conversation.prompt = event.prompt
                    conversation.record(event.lines, event.state, event.since)
                    if event.comment:
                        self.schedule_comment(session)
                        self.warm(session)
                    self.save(session)
                case LateResult(result=result):
                    conversation.record([f"saw your action from a reply that was cut off: {result.text.rstrip('.')}"],
                                        result.state)
                    self.save(session)
                case DropLastReply():
                    conversation.drop_last_reply()
                    self.save(session)
                case StartAfresh():
                    self.conversations[session] = Conversation(state=conversation.state, model=conversation.model,
                                                               prompt=conversation.prompt, epoch=conversation.epoch,
                                                               handled=conversation.handled)
                    self.save(session, afresh=True)
        except Fenced as e:
            self.fence(session, e.stored)
        except Exception as e:
            log.exception("a job of session %s failed", session[:8])
            if isinstance(job, Turn):  # its bubble must not wait for ever
                self.fail(job, FailCode.INTERNAL, f"The brain could not make this reply ({type(e).__name__}; its log says "
                                           "more), e.g. its conversation store could not be reached. Retry.")
        finally:
            q.busy, q.running = False, None
            self.pump(session)

    async def conversation(self, session: str, epoch: int | None = None) -> Conversation:
        "The session's conversation under `epoch` (None: as held), read from disk unless our copy is of that epoch."
        held = self.conversations.get(session)
        if held is None or (epoch is not None and held.epoch != epoch):
            loaded = await self.loop.run_in_executor(self.disk, self.memory.load, session, epoch)
            held = self.conversations[session] = loaded
        elif epoch is not None:
            # Another worker may have claimed the session since this job was granted (its Revoke is
            # on the way): the disk knows already. Behind the disk thread's pending saves, in order.
            await self.loop.run_in_executor(self.disk, self.memory.check, session, epoch)
        return held

    def save(self, session: str, afresh: bool = False) -> None:
        """Write-behind on the disk thread, from a snapshot, in order. A session held elsewhere
        since is not written (memory.save refuses) and our copy is dropped."""
        c = self.conversations.get(session)
        if c is None:
            return  # fenced: no copy of ours is written any more
        snapshot = replace(c, turns=list(c.turns), unseen=list(c.unseen), handled=list(c.handled))

        def saved(future) -> None:
            if isinstance(future.exception(), Fenced):
                self.loop.call_soon_threadsafe(self.fence, session, future.exception().stored)
            else:
                _log_failure(future)

        self.disk.submit(self.memory.save, session, snapshot, afresh).add_done_callback(saved)

    def warm(self, session: str) -> None:
        """Have Ollama evaluate the new app events right away. A click changes only the end of
        the prompt, but those tokens would still be evaluated when the user's next message or the
        comment comes; evaluating them now, while the user types, takes that time off the reply.
        One warm-up at a time per session: a queued one picks up every event made meanwhile."""
        q = self.queue(session)
        if self.watch.reach is Reach.UP and not any(isinstance(j, Warm) for j in q.jobs):
            q.jobs.append(Warm(session))
            self.pump(session)

    async def prefill(self, job: Warm, conversation: Conversation) -> None:
        messages = conversation.upcoming()
        if messages is None or self.watch.reach is not Reach.UP:
            return
        model = conversation.model or self.settings.model
        # One token is generated and thrown away; num_predict is not a load option (no reload).
        options = self.options | {"num_predict": 1}

        def evaluate() -> None:
            for _ in self.ollama.chat(model, messages, options=options, tools=self.tools_for(conversation),
                                      keep_alive=self.settings.keep_alive, hangup=job.hangup):
                pass

        try:
            await self.loop.run_in_executor(self.executor, evaluate)
        except OllamaError as e:
            log.debug("warming the prompt cache of session %s: %s", job.session[:8], e)

    def schedule_comment(self, session: str) -> None:
        "Coalesce a burst of app events into one comment, made once the clicking pauses."
        q = self.queue(session)
        if q.comment:
            q.comment.cancel()
        q.comment = self.call_later(self.settings.comment_delay_s, self.comment, session)

    def comment(self, session: str) -> None:
        self.queue(session).comment = None
        self.enqueue(session, Turn(session, "c" + uuid.uuid4().hex, None))

    def reset(self, session: str, bus: dict) -> None:
        "A new conversation: what is running or waiting is dropped; the app's state stays."
        q = self.queue(session)
        if q.running:
            q.running.cancel()
        q.jobs = deque(job for job in q.jobs if not isinstance(job, (Turn, Warm)))
        if q.comment:
            q.comment.cancel()
            q.comment = None
        self.enqueue(session, StartAfresh(**bus))

    def stop(self, session: str, reply: str) -> None:
        q = self.queue(session)
        if isinstance(q.running, Turn) and q.running.reply == reply:
            q.running.cancel()
            return
        waiting = next((j for j in q.jobs if isinstance(j, Turn) and j.reply == reply), None)
        if waiting:
            q.jobs.remove(waiting)
            self.fail(waiting, FailCode.STOPPED, "Stopped before it began.")

    def fail(self, turn: Turn, code: FailCode, error: str, text: str = "") -> None:
        "End a turn that will not be answered; one not run yet speaks for the epoch our copy holds."
        held = self.conversations.get(turn.session)
        epoch = turn.epoch if turn.epoch is not None else held.epoch if held else 0
        self.send(Failed(worker=self.worker, session=turn.session, reply=turn.reply, epoch=epoch, seq=turn.sent,
                         code=code, error=error, text=text))

    async def reply(self, turn: Turn, conversation: Conversation) -> None:
        ids = dict(worker=self.worker, session=turn.session, reply=turn.reply, epoch=turn.epoch)
        said, prefill = "", ""  # what every round of this reply has said; the text a resumed round continues
        if turn.prompt is not None:
            conversation.prompt = turn.prompt
        try:
            if turn.resume is not None:
                point = conversation.resume_point(turn.question, turn.resume)
                if point is None:
                    return self.fail(turn, FailCode.NOT_RESUMED, NOT_RESUMED + " (its conversation does not lead to what "
                                                                       "was shown)", text=turn.resume)
                whole, text = point
                if whole:  # saved whole: only its end was lost with the brain
                    return self.send(Done(**ids, seq=turn.sent, text=text, thinking=turn.resumed_thinking))
                said, prefill = turn.resume, text
                turn.model = turn.model or conversation.model or self.settings.model
            elif not self.begin(turn, conversation, ids):
                return
            made: dict[str, str] = {}  # the calls of this reply that were applied: their result, by what they asked
            rounds, acted = self.settings.tool_rounds, 0  # rounds allowed; rounds that changed something
            for round_ in range(rounds + tools.RETRIES + 1):
                # A final assistant message is continued, not answered (Ollama's prefill).
                messages = [*conversation.messages(),
                            *([{"role": "assistant", "content": prefill}] if prefill else [])]
                text, thinking, stats, calls = await self.ask(turn, conversation, messages, ids)
                if self.closing:
                    return
                self.flush(turn)
                if prefill and _starts_over(prefill, text):
                    return self.send(Failed(**ids, seq=turn.sent, code=FailCode.NOT_RESUMED, text=said,
                                            error=NOT_RESUMED + " (the model began it again instead of going on)"))
                said += text
                text, prefill = prefill + text, ""
                if self.conversations.get(turn.session) is not conversation:
                    return  # the conversation was reset meanwhile; the web has dropped this reply
                conversation.learn(messages, stats.prompt_eval_count, self.tools_for(conversation))
                if calls and not turn.asked_by_user:
                    log.info("reply %s: a comment on app events called %s; the user asked for nothing, so none is made",
                             turn.reply, ", ".join(c.name for c in calls))
                    break
                if not calls or turn.cancelled or any(_asked(c) in made for c in calls):
                    # A small model told of its action asks for it again, often with other calls it was
                    # never asked for (Qwen2.5-Coder 0.5B did in 9 of 9 follow-up rounds): such a round is
                    # an echo, none of it is applied, and the reply ends with what was done.
                    break
                names = ", ".join(c.name for c in calls)
                if acted == rounds:
                    # Small models follow a result with calls nobody asked for (after "clear the done
                    # ones", Qwen2.5-Coder 0.5B deleted every other item): past the limit none is made.
                    self.send(Note(**ids, text=f"The model asked for more changes ({names}) after {rounds} "
                                               f"round{'s' if rounds > 1 else ''} of them in one reply; they were not "
                                               "made (MODEL_TOOL_ROUNDS)."))
                    break
                if round_ == rounds + tools.RETRIES:
                    self.send(Note(**ids, text=f"The model's calls kept failing ({names}), so I stopped it there."))
                    break
                before = len(made)
                await self.act(turn, conversation, text, calls, made)
                acted += len(made) > before  # a round whose every call failed may be put right: it does not count
            if text or not turn.cancelled:
                conversation.add_reply(text)  # a stopped reply stays in context as far as it got
            self.save(turn.session)
            if turn.cancelled:
                self.send(Failed(**ids, seq=turn.sent, code=FailCode.STOPPED, error="Stopped.", text=said))
            else:
                self.send(Done(**ids, seq=turn.sent, text=said, thinking=turn.resumed_thinking + thinking, stats=stats))
        except Interrupted as e:
            if self.closing:
                return
            self.flush(turn)
            log.warning("reply %s failed: %s", turn.reply, e)
            self.send(Failed(**ids, seq=turn.sent, code=e.error.code, error=str(e.error), text=said + e.partial))
        except Exception:
            log.exception("reply %s crashed", turn.reply)
            self.send(Failed(**ids, seq=turn.sent, code=FailCode.INTERNAL, error="The brain hit an internal error; see its log."))

    def begin(self, turn: Turn, conversation: Conversation, ids: dict) -> bool:
        "Put a new turn into the conversation and fit it to the context window; False when there is nothing to answer."
        if turn.text is None and not turn.regenerate and self.watch.reach is Reach.DOWN:
            return False  # no comment while Ollama is away: the events stay unseen and go with the next turn
        if not conversation.begin_turn(turn.text, turn.retry) and not turn.regenerate:
            return False  # a comment whose events an earlier turn already carried
        conversation.model = turn.model or conversation.model
        turn.model = conversation.model or self.settings.model
        set_aside = conversation.fit(self.settings.num_ctx - self.settings.num_ctx // 4, self.tools_for(conversation))
        if set_aside:
            self.send(Note(**ids, text=f"To fit the model's context window ({self.settings.num_ctx} tokens, "
                                       f"OLLAMA_NUM_CTX), I set aside the {set_aside} oldest messages of this "
                                       "conversation. My instructions and what I know of the app always stay."))
        self.save(turn.session)
        return True

    async def act(self, turn: Turn, conversation: Conversation, text: str, calls: list[ToolCall],
                  made: dict[str, str]) -> None:
        """Have the web apply the model's calls, in order, and put the calls and their results into
        the conversation together, so a brain that dies in between leaves neither behind. A call
        this reply already made (`made`) is not made again."""
        results, state, asked = [], "", []
        recital = tools.recited([c.name for c in calls], self.tools_for(conversation) or [])
        for i, call in enumerate(calls):
            call_id = call.id if CALL_ID.match(call.id or "") else f"call_{uuid.uuid4().hex[:12]}"
            asked.append({"id": call_id, "function": {"index": i, "name": call.name, "arguments": call.arguments}})
            if i >= tools.MAX_CALLS:
                results.append((call.name, f"Error: at most {tools.MAX_CALLS} calls at once; this one was not done."))
                continue
            if recital and i > 0:
                results.append((call.name, "Not done: that looked like every tool at once, not what the user asked. "
                                           "Call it again only if the user asked for exactly this."))
                continue
            if _asked(call) in made:
                results.append((call.name, f"{made[_asked(call)]} (Already done in this reply; not done again.)"))
                continue
            result = await self.call_tool(turn, call_id, call)
            if result is None:
                results.append((call.name, "Error: the app did not answer, so this may not have been done."))
                continue
            if result.ok:
                made[_asked(call)] = result.text
            state = result.state or state
            results.append((call.name, result.text))
        conversation.add_tool_round(text, asked, results, state)
        self.save(turn.session)

    async def call_tool(self, turn: Turn, call_id: str, call: ToolCall) -> ToolResult | None:
        answered = self.loop.create_future()
        self.tool_results[call_id] = (turn.session, answered)
        self.send(CallTool(worker=self.worker, session=turn.session, reply=turn.reply, epoch=turn.epoch, call=call_id,
                           name=call.name, arguments=call.arguments))
        try:
            return await asyncio.wait_for(answered, tools.TIMEOUT_S)
        except asyncio.TimeoutError:
            log.warning("tool call %s of reply %s: the web did not answer", call_id, turn.reply)
            return None
        finally:
            self.tool_results.pop(call_id, None)

    def tool_result(self, result: ToolResult, bus: dict) -> None:
        """The web has applied a call; the reply waiting on it goes on (not queued: the reply is the
        running job). A result nobody waits for belongs to a reply cut off by a brain that died
        (the web re-sends it from its outbox): the model is told with the next turn, so a Retry
        does not do it again."""
        _, answered = self.tool_results.get(result.call, (None, None))
        if answered is not None and not answered.done():
            answered.set_result(result)
        elif answered is None:
            self.enqueue(result.session, LateResult(result, **bus))

    async def ask(self, turn: Turn, conversation: Conversation, messages: list[dict],
                  ids: dict) -> tuple[str, str, Stats, list[ToolCall]]:
        """Stream the reply from Ollama. While Ollama cannot be reached the turn waits for it (the
        web shows why) and is asked as soon as it is back, once; Stop ends the wait. A model that
        cannot call tools is asked again without them, and the session remembers."""
        while True:
            if self.watch.reach is Reach.DOWN:
                self.send(Waiting(**ids, reason=f"Waiting for Ollama: it is not running at {self.settings.ollama_url}. "
                                                "Start it with `ollama serve`; this message is answered as soon "
                                                "as it is up."))
                await self.until_up_or_stopped(turn)
            if turn.cancelled:
                return "", "", Stats(), []
            offered = self.tools_for(conversation)
            try:
                return await self.loop.run_in_executor(self.executor, self.stream, turn, messages, offered)
            except Interrupted as e:
                if isinstance(e.error, ToolsUnsupported) and offered:
                    conversation.tools_off = True
                    self.send(Note(**ids, text=f"{turn.model} cannot act on the app (it does not support tools); "
                                               "it can still talk about it."))
                    continue
                if not isinstance(e.error, OllamaUnavailable) or turn.sent:
                    raise
                self.watch.lost()  # refused before any byte: nothing was generated, so ask again once it is up

    def tools_for(self, conversation: Conversation) -> list[dict] | None:
        "The same tools in every request of a session (they are part of the cached prompt), or none."
        return None if conversation.tools_off or not self.settings.tools else conversation.prompt.tools or None

    async def until_up_or_stopped(self, turn: Turn) -> None:
        waits = [asyncio.ensure_future(self.watch.up.wait()), asyncio.ensure_future(turn.woken.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def stream(self, turn: Turn, messages: list[dict], offered: list[dict] | None
               ) -> tuple[str, str, Stats, list[ToolCall]]:
        """Runs on a pool thread: read Ollama's stream and hand it to the loop. A lone chunk goes
        out at once; chunks that arrive while the loop is busy go out together. Returns the reply,
        the model's thinking (kept apart: it is shown, not put back into the context), stats, and
        the tools the model called; a stopped reply returns what it had so far."""
        parts, thinking, stats, calls = [], [], Stats(), []
        written = CallFilter({t["function"]["name"] for t in offered} if offered else None, REPLY_MARKERS)
        chunks = self.ollama.chat(turn.model, messages, options=self.options, tools=offered,
                                  keep_alive=self.settings.keep_alive, hangup=turn.hangup)
        try:
            for item in chunks:
                if turn.cancelled:
                    break  # what was read after a Stop is not shown
                if isinstance(item, Stats):
                    stats = item
                    continue
                if isinstance(item, list):
                    calls.extend(item)
                    continue
                self.hand_over(turn, Delta(written.feed(item.content), item.thinking), parts, thinking)
            rest, found = written.finish()
            self.hand_over(turn, Delta(rest), parts, thinking)
            calls.extend(found)
        except OllamaError as e:
            if not turn.cancelled:  # a hangup of ours breaks the stream too; that is a stop, not a fault
                raise Interrupted(e, "".join(parts)) from None
        finally:
            chunks.close()
        return "".join(parts), "".join(thinking), stats, calls

    def hand_over(self, turn: Turn, delta: Delta, parts: list[str], thinking: list[str]) -> None:
        "On the stream's thread: what may be shown goes to the loop (a call written as text is held back)."
        if not (delta.content or delta.thinking):
            return
        parts.append(delta.content)
        thinking.append(delta.thinking)
        turn.unsent.append(delta)
        if not turn.flush_scheduled:
            turn.flush_scheduled = True
            self.loop.call_soon_threadsafe(self.flush, turn)

    def flush(self, turn: Turn) -> None:
        "On the loop: send what the stream has read since the last flush as one chunk message."
        turn.flush_scheduled = False
        deltas = []
        while turn.unsent:
            deltas.append(turn.unsent.popleft())
        if deltas:
            self.send(Chunk(worker=self.worker, session=turn.session, reply=turn.reply, epoch=turn.epoch, seq=turn.sent,
                            text="".join(d.content for d in deltas),
                            thinking="".join(d.thinking for d in deltas)))
            turn.sent += 1
