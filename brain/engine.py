"""The brain's sessions: each one's conversation and its queue of jobs, answered through Ollama.

The engine turns each message the web has granted this worker into jobs (brain/jobs.py) on the
session's queue (brain/sessions.py), and runs each job, in turn, on the session's conversation
(brain/conversations.py); a reply is made by brain/replies.py.

Each job from the bus carries the id of the message it comes of (`message`) and the session's
assignment (`epoch`). A job runs on the cached conversation only while that copy belongs to the job's epoch;
otherwise the conversation is read again from disk, claiming the new epoch. A job whose message is
already in the conversation's `handled` list is not done again, across restarts too, and a job of
an epoch the session has left is dropped (`Fenced`). When the web says the session is held
elsewhere (`Revoke`), what runs for it stops without a word or a save, and its copy is forgotten.

The engine knows nothing of the bus: its pieces are given `send` and an Ollama client (see
brain/ollama_worker.py), so it can be tested with scripted fakes and a hand-turned clock.
"""
import asyncio
import logging
from collections.abc import Awaitable, Callable

from brain import tools
from brain.conversation import Conversation
from brain.conversations import Conversations
from brain.jobs import DropLastReply, Event, Job, LateResult, Outgoing, StartAfresh, Trust, Turn, Warm
from brain.memory import Fenced
from brain.replies import Replies
from brain.outlet import ReplyBus
from brain.sessions import Sessions
from brain.tool_calls import ToolCalls
from shared.config import Settings
from shared.messages import (AppEvent, Chat, FailCode, Regenerate, Reset, Resume, Revoke, Stop, ToBrain,
                             ToolResult)

log = logging.getLogger("brain")


def fence(sessions: Sessions, calls: ToolCalls, session: str, epoch: int) -> None:
    """A session fenced (held at `epoch` elsewhere now, or here anew): what runs or waits for it
    under an older epoch stops, and its replies waiting on the web for a tool's result go on without."""
    sessions.fence(session, epoch)
    calls.release(session)


class Runner:
    """Runs each session's jobs, one at a time and in order, through `run` (the engine's, which
    makes the runner). What queues a job goes through here, so the job starts if it can. It lives
    here, beside the engine, so a job's way runs one way: the engine queues, the runner runs it."""

    def __init__(self, sessions: Sessions, run: Callable[[str, Job], Awaitable[None]]):
        self.sessions, self.run = sessions, run
        self.tasks: set[asyncio.Task] = set()

    def enqueue(self, session: str, job: Job) -> None:
        self.sessions.enqueue(session, job)
        self.pump(session)

    def reset(self, session: str, afresh: StartAfresh) -> None:
        self.sessions.reset(session, afresh)
        self.pump(session)

    def warm(self, session: str) -> None:
        self.sessions.warm(session)
        self.pump(session)

    def comment_later(self, session: str) -> None:
        self.sessions.comment_later(session, self.pump)

    def pump(self, session: str) -> None:
        job = self.sessions.start_next(session)
        if job is not None:
            task = asyncio.create_task(self._run(session, job))
            self.tasks.add(task)  # kept until done, so it is not collected mid-job
            task.add_done_callback(self.tasks.discard)

    async def _run(self, session: str, job: Job) -> None:
        try:
            await self.run(session, job)
        finally:
            self.sessions.finished(session)
            self.pump(session)
            self.sessions.drop_if_idle(session)


class Engine:
    def __init__(self, settings: Settings, sessions: Sessions, conversations: Conversations, replies: Replies,
                 bus: ReplyBus):
        self.settings, self.sessions, self.conversations, self.replies, self.bus = (
            settings, sessions, conversations, replies, bus)
        self.runner = Runner(sessions, self.run)  # the queues' jobs run here

    @property
    def making(self) -> list[str]:
        "For the heartbeat: the replies queued or under way."
        return self.sessions.making

    @property
    def busy(self) -> int:
        "For the heartbeat: the replies being made now."
        return self.sessions.busy

    def handle(self, msg: ToBrain, trust: Trust | None = None) -> None:
        "A message the web has granted this worker, or a chat or resume taken on `trust` before the grant."
        if not self._admitted(msg):
            return
        of = dict(message=msg.id, epoch=msg.epoch)  # the message each job comes of
        match msg:
            case AppEvent():
                self.runner.enqueue(msg.session, Event(msg, **of))
            case Stop():
                waiting = self.sessions.stop(msg.session, msg.reply)
                if waiting:
                    self._failed(waiting, FailCode.STOPPED, "Stopped before it began.")
            case Reset():
                self.runner.reset(msg.session, StartAfresh(**of))
            case Regenerate():
                self.runner.enqueue(msg.session, DropLastReply(message=f"{msg.id}.drop", epoch=msg.epoch))
                self.runner.enqueue(msg.session, Turn(msg.session, msg.reply, None, msg.prompt, regenerate=True,
                                                        model=msg.model, **of))
            case Chat():
                self.runner.enqueue(msg.session, Turn(msg.session, msg.reply, msg.text, msg.prompt, msg.retry,
                                                      model=msg.model, trust=trust, **of))
            case Resume():
                self.runner.enqueue(msg.session, Turn(
                    msg.session, msg.reply, None, msg.prompt, model=msg.model, resume=msg.text,
                    resumed_thinking=msg.thinking, question=msg.question, carried=list(msg.calls), trust=trust,
                    out=Outgoing(msg.seq), **of))
            case ToolResult():
                # Not queued when a reply waits on it: the reply is the running job.
                if not self.replies.resolve(msg):
                    self.runner.enqueue(msg.session, LateResult(msg, **of))

    def _admitted(self, msg: ToBrain) -> bool:
        """Past a full queue, a reply asked for fails at once (its bubble says why) and anything
        else is left out (the next app event finds the state it came from missing and states it
        whole), so a flood of clicks never holds up a question. Stop and New chat always get
        through, and so does a result a reply waits on."""
        if isinstance(msg, (Stop, Reset)) or (isinstance(msg, ToolResult) and self.replies.awaits(msg)):
            return True
        if self.sessions.admits(msg.session, bool(msg.makes), msg.kind):
            return True
        if msg.makes:
            self._failed(Turn(msg.session, msg.makes, None, epoch=msg.epoch), FailCode.BUSY,
                            "The brain has too much queued for this conversation (SESSION_MAX_PENDING); Retry in a moment.")
        return False

    def grant(self, session: str, trust: Trust) -> None:
        "The web granted a message taken on trust: its turn goes on and ends, and what waited is saved."
        if trust.decide(True):
            self.conversations.confirm(session, trust.message)

    def revoke(self, msg: Revoke, trust: Trust | None = None) -> None:
        """The web says `msg.message` is not ours: what it caused leaves the queue, or is cut off
        without a word if it runs, and what it changed on `trust` is dropped with the copy; and if
        the session is held at another epoch than our copy's, the session is not ours either."""
        if msg.message:
            self.sessions.revoke(msg.session, msg.message)
        held = self.conversations.held(msg.session)
        if held is not None and held.epoch != msg.epoch:
            self.fence(msg.session, msg.epoch)  # forgets the copy, and with it what ran on trust
        if trust is not None and trust.decide(False):
            self.conversations.distrust(msg.session, trust.message)

    def fence(self, session: str, epoch: int) -> None:
        self.conversations.fence(session, epoch)  # which stops the rest (`fence` below, given it when made)

    def _failed(self, turn: Turn, code: FailCode, error: str) -> None:
        "A turn not run yet (the brain's own has no epoch until then) speaks for the epoch our copy holds."
        if turn.epoch is None:
            held = self.conversations.held(turn.session)
            turn.epoch = held.epoch if held else 0
        self.bus.failed(turn, code, error)

    def shutdown(self) -> None:
        """Hang up on Ollama and finish writing: what the conversations learned is on disk before we
        go. A reply cut off so says nothing more: the web has the next brain carry it on."""
        self.sessions.close()
        self.conversations.close()

    async def run(self, session: str, job: Job) -> None:
        "Run a job of the session's queue on its conversation, once."
        try:
            conversation = await self.conversations.get(session, job.epoch)
            job.epoch = conversation.epoch
            if isinstance(job, Turn) and job.trust is not None and job.trust.waiting:
                self.conversations.trust(session, job.trust.message)  # what it saves waits for the grant
            if job.message and not conversation.take(job.message):
                log.info("session %s: %s was acted on already; not again", session[:8], job.message)
                if isinstance(job, Turn):  # its bubble must not wait for ever
                    self._failed(job, FailCode.DUPLICATE, "The brain had already taken this message before a "
                                                             "restart; if its answer is missing, Retry.")
                return
            match job:
                case Turn():
                    await self.replies.make(job, conversation)
                case Warm():
                    await self.replies.warm(job, conversation)
                case Event(event=event):
                    await self.replies.mode(conversation)
                    self.record(session, event, conversation)
                case LateResult(result=result):
                    conversation.late_result(result.call, result.text, result.state, result.ok)
                    self.conversations.save(session)
                case DropLastReply():
                    conversation.drop_last_reply()
                    self.conversations.save(session)
                case StartAfresh():
                    self.conversations.replace(session, Conversation(
                        state=conversation.state, model=conversation.model, prompt=conversation.prompt,
                        epoch=conversation.epoch, handled=conversation.handled))
                    self.conversations.save(session, afresh=True)
        except Fenced as e:
            self.fence(session, e.stored)
        except Exception as e:
            log.exception("a job of session %s failed", session[:8])
            if isinstance(job, Turn):  # its bubble must not wait for ever
                self._failed(job, FailCode.INTERNAL, f"The brain could not make this reply ({type(e).__name__}; its "
                                                        "log says more), e.g. its conversation store could not be "
                                                        "reached. Retry.")

    def record(self, session: str, event: AppEvent, conversation: Conversation) -> None:
        conversation.prompt = tools.as_told(event.prompt, self.settings, conversation.decides)
        conversation.record(event.lines, event.state, event.since)
        if event.comment:
            self.runner.comment_later(session)
            if self.replies.ollama_up:
                self.runner.warm(session)
        self.conversations.save(session)
