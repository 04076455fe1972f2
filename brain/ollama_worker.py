"""The brain: keeps each session's conversation and answers through Ollama, over the bus.

One asyncio loop owns both sockets and all conversation state. Blocking Ollama streams run on a
thread pool (BRAIN_PARALLEL wide, so sessions stream side by side) and hand every chunk back to the
loop, which is the only writer of the PUB socket. Within one session, turns run one at a time in
arrival order: a message sent while a reply streams is answered right after it. Conversations are
saved to DATA_DIR/brain.db after every change, so a restarted worker carries on where it was.

Run: python -m brain.ollama_worker
"""
import asyncio
import logging
import os
import signal
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from dataclasses import dataclass, field, replace

import zmq

from brain.conversation import Conversation
from brain.memory import Memory
from brain.ollama_client import Hangup, OllamaClient, OllamaError, OllamaUnavailable
from brain.ollama_watch import OllamaWatch, Reach
from shared import bus
from shared.config import Settings, setup_logging
from shared.messages import (Ack, BadFrame, Bye, Chat, Chunk, Done, Failed, Heartbeat, Hello, Message, Note,
                             Regenerate, Reset, Stats, Stop, TodoEvent, Waiting, brain_topic, decode, encode)

log = logging.getLogger("brain")
REMEMBERED_REQUESTS = 10_000


@dataclass
class Turn:
    "One reply to produce; `text` is None for a comment on app events."
    session: str
    request: str
    text: str | None
    retry: bool = False
    regenerate: bool = False
    model: str = ""  # chosen for the session; "" keeps the conversation's (or the default)
    hangup: Hangup = field(default_factory=Hangup)  # ends the Ollama request at once, from any thread
    woken: asyncio.Event = field(default_factory=asyncio.Event)  # wakes a turn waiting for Ollama
    unsent: deque = field(default_factory=deque)  # read from Ollama, not yet on the bus
    flush_scheduled: bool = False
    sent: int = 0  # chunk messages sent: the next one's seq

    @property
    def cancelled(self) -> bool:
        return self.hangup.fired

    def cancel(self) -> None:
        "Stop or reset: end the Ollama request now, even one still waiting for its first byte."
        self.hangup.fire()
        self.woken.set()


@dataclass
class Warm:
    """Evaluate a session's new app events now, ahead of its next turn, so that turn finds them in
    Ollama's prompt cache and costs no more than any other (see `warm`)."""
    session: str
    hangup: Hangup = field(default_factory=Hangup)

    def cancel(self) -> None:
        self.hangup.fire()


class Interrupted(Exception):
    def __init__(self, error: OllamaError, partial: str):
        super().__init__(str(error))
        self.error, self.partial = error, partial


Job = Turn | Warm | Callable[[Conversation], None]


@dataclass
class SessionQueue:
    jobs: deque = field(default_factory=deque)
    busy: bool = False
    running: Turn | Warm | None = None  # the turn being answered (or the cache being warmed), for Stop and Reset
    comment: asyncio.TimerHandle | None = None


def _log_failure(future) -> None:
    if future.exception() is not None:
        log.error("saving a conversation failed", exc_info=future.exception())


class Brain:
    def __init__(self, settings: Settings, client: OllamaClient, memory: Memory):
        self.s = settings
        self.client, self.memory = client, memory
        self.id = uuid.uuid4().hex[:12]
        self.started = time.time()
        self.conversations: dict[str, Conversation] = {}
        self.queues: dict[str, SessionQueue] = {}
        self.taken: OrderedDict[str, None] = OrderedDict()
        self.executor = ThreadPoolExecutor(settings.parallel, thread_name_prefix="ollama")
        self.checks = ThreadPoolExecutor(1, thread_name_prefix="ollama-check")  # never queued behind replies
        # Conversations are read and written on a thread of their own, in order, off the loop.
        self.disk = ThreadPoolExecutor(1, thread_name_prefix="memory")

    async def run(self, stop: asyncio.Event) -> None:
        self.loop = asyncio.get_running_loop()
        self.watch = OllamaWatch(self.client, self.s.model, self.options, self.s.keep_alive, self.s.ollama_check_s,
                                 blocking=self.check_blocking, changed=self.announce)
        curve = bus.curve_for(self.s.bus_endpoints, self.s.bus_curve_dir)
        ctx = bus.context()
        self.pub = bus.socket(ctx, zmq.PUB, self.s.max_frame_bytes, connect=self.s.bus_pub, curve=curve)
        sub = bus.socket(ctx, zmq.SUB, self.s.max_frame_bytes, connect=self.s.bus_sub, curve=curve)
        sub.subscribe(brain_topic(self.id))
        log.info("worker %s: model %s at %s, bus %s / %s", self.id, self.s.model, self.s.ollama_url,
                 self.s.bus_pub, self.s.bus_sub)
        tasks = [asyncio.create_task(self.heartbeat()), asyncio.create_task(self.receive(sub)),
                 asyncio.create_task(self.watch.run())]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            for q in self.queues.values():
                if q.running:
                    q.running.cancel()
            self.disk.shutdown(wait=True)  # what the conversations learned is on disk before we go
            # Say goodbye before the sockets close: the web tells a restart from a crash by it.
            self.send(Bye(worker=self.id))
            await asyncio.sleep(0.05)
            ctx.destroy()

    def send(self, msg: Message) -> None:
        self.pub.send_multipart(encode(msg), copy=False)

    @property
    def options(self) -> dict:
        "Ollama options, the same in every request: a change of num_ctx would reload the model."
        return {"num_ctx": self.s.num_ctx}

    def presence(self) -> dict:
        busy = sum(1 for q in self.queues.values() if isinstance(q.running, Turn))
        w = self.watch
        return dict(worker=self.id, started=self.started, pid=os.getpid(), model=self.s.model,
                    parallel=self.s.parallel, busy=busy, ollama=w.reach.value, ollama_url=self.s.ollama_url,
                    version=w.version, loading=w.loading, models=w.models)

    def announce(self) -> None:
        "What the web shows changed: tell it now rather than at the next heartbeat."
        self.send(Heartbeat(**self.presence()))

    def check_blocking(self, fn, *args, **kwargs):
        return self.loop.run_in_executor(self.checks, partial(fn, *args, **kwargs))

    async def heartbeat(self) -> None:
        self.send(Hello(**self.presence()))
        while True:
            await asyncio.sleep(self.s.heartbeat_s)
            self.send(Heartbeat(**self.presence()))

    async def receive(self, sub: zmq.Socket) -> None:
        while True:
            frames = await sub.recv_multipart()
            try:
                msg = decode(frames, self.s.max_frame_bytes)
            except BadFrame as e:
                log.warning("dropped a bad frame: %s", e)
                continue
            try:
                self.handle(msg)
            except Exception:
                # A worker that stopped listening but kept heartbeating would swallow every message.
                log.exception("failed to handle a %s message", msg.kind)

    def handle(self, msg: Message) -> None:
        if not isinstance(msg, (Chat, Stop, Regenerate, Reset, TodoEvent)):
            log.warning("ignored a %s message on a brain topic", msg.kind)
            return
        self.send(Ack(worker=self.id, session=msg.session, request=msg.request))
        if msg.request in self.taken:
            return  # a re-send whose first ack was lost: already handled
        self.taken[msg.request] = None
        if len(self.taken) > REMEMBERED_REQUESTS:
            self.taken.popitem(last=False)
        if isinstance(msg, TodoEvent):
            self.enqueue(msg.session, lambda c: self.note(msg, c))
        elif isinstance(msg, Stop):
            self.stop(msg.session, msg.reply)
        elif isinstance(msg, Reset):
            self.reset(msg.session)
        elif isinstance(msg, Regenerate):
            self.enqueue(msg.session, lambda c: c.drop_last_reply())
            self.enqueue(msg.session, Turn(msg.session, msg.reply, None, regenerate=True, model=msg.model))
        else:
            self.enqueue(msg.session, Turn(msg.session, msg.request, msg.text, msg.retry, model=msg.model))

    # Every change to a session's conversation is a job on that session's queue, run one at a
    # time in arrival order: todo notes, resets and turns never overtake each other, even while
    # the conversation is still being read from disk.

    def queue(self, session: str) -> SessionQueue:
        return self.queues.setdefault(session, SessionQueue())

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
        if q.busy or not q.jobs:
            return
        q.busy = True
        asyncio.create_task(self.run_job(session, q.jobs.popleft()))

    async def run_job(self, session: str, job: Job) -> None:
        q = self.queue(session)
        try:
            conversation = await self.conversation(session)
            if isinstance(job, Turn):
                q.running = job
                await self.reply(job, conversation)
            elif isinstance(job, Warm):
                q.running = job
                await self.prefill(job, conversation)
            else:
                job(conversation)
                self.save(session)
        except Exception:
            log.exception("a job of session %s failed", session[:8])
        finally:
            q.busy, q.running = False, None
            self.pump(session)

    async def conversation(self, session: str) -> Conversation:
        if session not in self.conversations:
            loaded = await self.loop.run_in_executor(self.disk, self.memory.load, session)
            self.conversations.setdefault(session, loaded)
        return self.conversations[session]

    def save(self, session: str) -> None:
        "Write-behind on the disk thread, from a snapshot, in order."
        c = self.conversations[session]
        snapshot = replace(c, turns=list(c.turns), todos=list(c.todos), unseen=list(c.unseen), told=list(c.told))
        self.disk.submit(self.memory.save, session, snapshot).add_done_callback(_log_failure)

    def note(self, event: TodoEvent, conversation: Conversation) -> None:
        conversation.note(event)
        self.schedule_comment(event.session)
        self.warm(event.session)

    def warm(self, session: str) -> None:
        """Have Ollama evaluate the new app events right away. A todo click changes only the end of
        the prompt, but those tokens would still be evaluated when the user's next message or the
        comment comes; evaluating them now, while the user types, takes that time off the reply.
        One warm-up at a time per session: a queued one picks up every event made meanwhile."""
        q = self.queue(session)
        if self.watch.reach is Reach.UP and not any(isinstance(j, Warm) for j in q.jobs):
            q.jobs.append(Warm(session))
            self.pump(session)

    async def prefill(self, job: Warm, conversation: Conversation) -> None:
        messages = conversation.upcoming(self.s.system_prompt)
        if messages is None or self.watch.reach is not Reach.UP:
            return
        model = conversation.model or self.s.model
        # One token is generated and thrown away; num_predict is not a load option (no reload).
        options = self.options | {"num_predict": 1}

        def evaluate() -> None:
            for _ in self.client.chat(model, messages, options=options, keep_alive=self.s.keep_alive,
                                      hangup=job.hangup):
                pass

        try:
            await self.loop.run_in_executor(self.executor, evaluate)
        except OllamaError as e:
            log.debug("warming the prompt cache of session %s: %s", job.session[:8], e)

    def schedule_comment(self, session: str) -> None:
        "Coalesce a burst of todo events into one comment, made once the clicking pauses."
        q = self.queue(session)
        if q.comment:
            q.comment.cancel()
        q.comment = self.loop.call_later(self.s.comment_delay_s, self.comment, session)

    def comment(self, session: str) -> None:
        self.queue(session).comment = None
        self.enqueue(session, Turn(session, "c" + uuid.uuid4().hex, None))

    def reset(self, session: str) -> None:
        "A new conversation: what is running or waiting is dropped; the todo list stays."
        q = self.queue(session)
        if q.running:
            q.running.cancel()
        q.jobs = deque(job for job in q.jobs if not isinstance(job, (Turn, Warm)))
        if q.comment:
            q.comment.cancel()
            q.comment = None

        def start_afresh(old: Conversation) -> None:
            self.conversations[session] = Conversation(todos=old.todos, model=old.model)
            self.disk.submit(self.memory.forget_turns, session).add_done_callback(_log_failure)

        self.enqueue(session, start_afresh)

    def stop(self, session: str, request: str) -> None:
        q = self.queue(session)
        if isinstance(q.running, Turn) and q.running.request == request:
            q.running.cancel()
            return
        waiting = next((j for j in q.jobs if isinstance(j, Turn) and j.request == request), None)
        if waiting:
            q.jobs.remove(waiting)
            self.send(Failed(worker=self.id, session=session, request=request, seq=0, code="stopped",
                             error="Stopped before it began."))

    async def reply(self, turn: Turn, conversation: Conversation) -> None:
        ids = dict(worker=self.id, session=turn.session, request=turn.request)
        try:
            if turn.text is None and not turn.regenerate and self.watch.reach is Reach.DOWN:
                return  # no comment while Ollama is away: the events stay unseen and go with the next turn
            if not conversation.begin_turn(turn.text, turn.retry) and not turn.regenerate:
                return  # a comment whose events an earlier turn already carried
            conversation.model = turn.model or conversation.model
            turn.model = conversation.model or self.s.model
            set_aside = conversation.fit(self.s.system_prompt, self.s.num_ctx - self.s.num_ctx // 4)
            if set_aside:
                self.send(Note(**ids, text=f"To fit the model's context window ({self.s.num_ctx} tokens, "
                                           f"OLLAMA_NUM_CTX), I set aside the {set_aside} oldest messages of this "
                                           "conversation. My instructions and your todo list always stay."))
            messages = conversation.messages(self.s.system_prompt)
            self.save(turn.session)
            text, thinking, stats = await self.ask(turn, messages, ids)
            self.flush(turn)
            if self.conversations.get(turn.session) is not conversation:
                return  # the conversation was reset meanwhile; the web has dropped this reply
            conversation.learn(messages, stats.prompt_eval_count)
            if text or not turn.cancelled:
                conversation.add_reply(text)  # a stopped reply stays in context as far as it got
            self.save(turn.session)
            if turn.cancelled:
                self.send(Failed(**ids, seq=turn.sent, code="stopped", error="Stopped.", text=text))
            else:
                self.send(Done(**ids, seq=turn.sent, text=text, thinking=thinking, stats=stats))
        except Interrupted as e:
            self.flush(turn)
            log.warning("reply %s failed: %s", turn.request, e)
            self.send(Failed(**ids, seq=turn.sent, code=e.error.code, error=str(e.error), text=e.partial))
        except Exception:
            log.exception("reply %s crashed", turn.request)
            self.send(Failed(**ids, seq=turn.sent, code="internal", error="The brain hit an internal error; see its log."))

    async def ask(self, turn: Turn, messages: list[dict], ids: dict) -> tuple[str, str, Stats]:
        """Stream the reply from Ollama. While Ollama cannot be reached the turn waits for it (the
        web shows why) and is asked as soon as it is back, once; Stop ends the wait."""
        while True:
            if self.watch.reach is Reach.DOWN:
                self.send(Waiting(**ids, reason=f"Waiting for Ollama: it is not running at {self.s.ollama_url}. "
                                                "Start it with `ollama serve`; this message is answered as soon "
                                                "as it is up."))
                await self.until_up_or_stopped(turn)
            if turn.cancelled:
                return "", "", Stats()
            try:
                return await self.loop.run_in_executor(self.executor, self.stream, turn, messages)
            except Interrupted as e:
                if not isinstance(e.error, OllamaUnavailable) or turn.sent:
                    raise
                self.watch.lost()  # refused before any byte: nothing was generated, so ask again once it is up

    async def until_up_or_stopped(self, turn: Turn) -> None:
        waits = [asyncio.ensure_future(self.watch.up.wait()), asyncio.ensure_future(turn.woken.wait())]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()

    def stream(self, turn: Turn, messages: list[dict]) -> tuple[str, str, Stats]:
        """Runs on a pool thread: read Ollama's stream and hand it to the loop. A lone chunk goes
        out at once; chunks that arrive while the loop is busy go out together. Returns the reply,
        the model's thinking (kept apart: it is shown, not put back into the context) and stats;
        a stopped reply returns what it had so far."""
        parts, thinking, stats = [], [], Stats()
        chunks = self.client.chat(turn.model, messages, options=self.options, keep_alive=self.s.keep_alive,
                                  hangup=turn.hangup)
        try:
            for item in chunks:
                if turn.cancelled:
                    break  # what was read after a Stop is not shown
                if isinstance(item, Stats):
                    stats = item
                    continue
                parts.append(item.content)
                thinking.append(item.thinking)
                turn.unsent.append(item)
                if not turn.flush_scheduled:
                    turn.flush_scheduled = True
                    self.loop.call_soon_threadsafe(self.flush, turn)
        except OllamaError as e:
            if not turn.cancelled:  # a hangup of ours breaks the stream too; that is a stop, not a fault
                raise Interrupted(e, "".join(parts)) from None
        finally:
            chunks.close()
        return "".join(parts), "".join(thinking), stats

    def flush(self, turn: Turn) -> None:
        "On the loop: send what the stream has read since the last flush as one chunk message."
        turn.flush_scheduled = False
        deltas = []
        while turn.unsent:
            deltas.append(turn.unsent.popleft())
        if deltas:
            self.send(Chunk(worker=self.id, session=turn.session, request=turn.request, seq=turn.sent,
                            text="".join(d.content for d in deltas),
                            thinking="".join(d.thinking for d in deltas)))
            turn.sent += 1


def main() -> None:
    setup_logging()
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    client = OllamaClient(settings.ollama_url, settings.connect_timeout_s, settings.read_timeout_s, settings.parallel)
    brain = Brain(settings, client, Memory(settings.data_dir))

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await brain.run(stop)

    asyncio.run(serve())
    log.info("worker %s stopped", brain.id)
    logging.shutdown()
    # A pool thread may sit in a stalled Ollama read for up to OLLAMA_READ_TIMEOUT_S; exiting
    # closes its connection, which is also what tells Ollama to stop generating.
    os._exit(0)


if __name__ == "__main__":
    main()
