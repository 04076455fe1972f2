"""Each session's queue of jobs (brain/jobs.py), run one at a time in arrival order, so app events,
resets and turns never overtake each other, even while the conversation is still being read from
disk; sessions run side by side. `Sessions` holds the queues and decides; the engine's `Runner`
starts each session's next job when there is one.

A session queues at most SESSION_MAX_PENDING replies and as many other jobs, however fast its
messages come. A burst of app events asking for a comment makes one comment, once the clicking
pauses (COMMENT_DELAY_S), and one warm-up at a time evaluates them ahead. A queue is held only while
it has something queued, running or due: an idle session costs nothing here.
"""
import asyncio
import logging
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from brain.jobs import Job, StartAfresh, Turn, Warm

log = logging.getLogger("brain")


@dataclass
class SessionQueue:
    jobs: deque = field(default_factory=deque)
    busy: bool = False
    running: Turn | Warm | None = None  # the turn being answered (or the cache being warmed), from the moment it leaves the queue
    comment: asyncio.TimerHandle | None = None  # due once the clicking pauses

    @property
    def idle(self) -> bool:
        return not self.busy and not self.jobs and not self.comment

    def alike(self, reply: bool) -> int:
        "The replies queued (`reply`), or the other jobs."
        return sum(1 for job in self.jobs if isinstance(job, Turn) == reply)

    def add(self, job: Job) -> None:
        if isinstance(job, Turn) and job.text is not None:
            self.cancel_comment()  # the chat turn carries the pending events with it
            # The turn evaluates the events itself, so a waiting warm-up would only delay it. One under
            # way is left to finish: hung up on, its slot may still be busy when the turn arrives,
            # which Ollama then serves from another slot, without this conversation's cache.
            self.jobs = deque(j for j in self.jobs if not isinstance(j, Warm))
        self.jobs.append(job)

    def start_next(self) -> Job | None:
        if self.busy or not self.jobs:
            return None
        self.busy, job = True, self.jobs.popleft()
        # Running from now on, while it waits for its task and for the disk too: Stop and Reset
        # reach it, and the heartbeat's `making` lists it (the web settles a reply it does not).
        self.running = job if isinstance(job, (Turn, Warm)) else None
        return job

    def finished(self) -> None:
        self.busy, self.running = False, None

    def stop(self, reply: str) -> Turn | None:
        "Hang up on reply `reply` if it runs; if it waits, it leaves the queue and is returned, to be failed."
        if isinstance(self.running, Turn) and self.running.reply == reply:
            self.running.control.cancel()
            return None
        waiting = next((j for j in self.jobs if isinstance(j, Turn) and j.reply == reply), None)
        if waiting:
            self.jobs.remove(waiting)
        return waiting

    def clear(self) -> None:
        "A new conversation: what is running or waiting to answer is dropped; other jobs stay."
        if self.running:
            self.running.control.cancel()
        self.jobs = deque(job for job in self.jobs if not isinstance(job, (Turn, Warm)))
        self.cancel_comment()

    def drop_caused_by(self, message: str) -> None:
        "The web revoked `message`: what it caused does not run, or stops without a word (the web ignores it)."
        self.jobs = deque(j for j in self.jobs if j.message != message)
        if self.running and self.running.message == message:
            self.running.control.cut_off()

    def keep_epoch(self, epoch: int) -> None:
        "The session is held at `epoch` now: what runs or waits under another one ends, and so does a comment due."
        if self.running and self.running.epoch != epoch:
            self.running.control.cancel()
        self.jobs = deque(j for j in self.jobs if j.epoch == epoch)
        self.cancel_comment()

    def cancel_comment(self) -> None:
        if self.comment:
            self.comment.cancel()
            self.comment = None


class Sessions:
    def __init__(self, call_later: Callable[..., asyncio.TimerHandle], comment_delay_s: float, max_pending: int):
        self.call_later, self.comment_delay_s, self.max_pending = call_later, comment_delay_s, max_pending
        self.queues: dict[str, SessionQueue] = {}
        self.closing = False  # shutting down: nothing more starts

    @property
    def making(self) -> list[str]:
        "The replies queued or under way."
        return [job.reply for q in self.queues.values() for job in [q.running, *q.jobs] if isinstance(job, Turn)]

    @property
    def busy(self) -> int:
        "Replies being made now (warm-ups are not replies)."
        return sum(1 for q in self.queues.values() if isinstance(q.running, Turn))

    def active(self, session: str) -> bool:
        "Something is queued, running or due for the session."
        return session in self.queues

    def admits(self, session: str, reply: bool, kind: str) -> bool:
        "Room for one more reply (`reply`), or for one more job of another kind."
        q = self.queues.get(session)
        queued = q.alike(reply) if q else 0
        if queued < self.max_pending:
            return True
        log.warning("session %s has %d such jobs queued; a %s was left out", session[:8], queued, kind)
        return False

    def enqueue(self, session: str, job: Job) -> None:
        self.queues.setdefault(session, SessionQueue()).add(job)

    def start_next(self, session: str) -> Job | None:
        "The session's next job, now running, if it has one and nothing of it runs."
        q = self.queues.get(session)
        return None if q is None or self.closing else q.start_next()

    def finished(self, session: str) -> None:
        self.queues[session].finished()

    def stop(self, session: str, reply: str) -> Turn | None:
        "Stop reply `reply`; one that had not begun is returned, to be failed."
        q = self.queues.get(session)
        if q is None:
            return None
        waiting = q.stop(reply)
        self.drop_if_idle(session)
        return waiting

    def reset(self, session: str, afresh: StartAfresh) -> None:
        self.queues.setdefault(session, SessionQueue()).clear()
        self.enqueue(session, afresh)

    def revoke(self, session: str, message: str) -> None:
        if session in self.queues:
            self.queues[session].drop_caused_by(message)
            self.drop_if_idle(session)

    def fence(self, session: str, epoch: int) -> None:
        if session in self.queues:
            self.queues[session].keep_epoch(epoch)
            self.drop_if_idle(session)

    def comment_later(self, session: str, then: Callable[[str], None]) -> None:
        "Coalesce a burst of app events into one comment, queued once the clicking pauses; `then(session)` follows."
        q = self.queues.setdefault(session, SessionQueue())
        q.cancel_comment()
        q.comment = self.call_later(self.comment_delay_s, self._comment, session, then)

    def _comment(self, session: str, then: Callable[[str], None]) -> None:
        self.queues[session].comment = None
        self.enqueue(session, Turn(session, "c" + uuid.uuid4().hex, None))
        then(session)

    def warm(self, session: str) -> None:
        "One warm-up at a time per session: a queued one picks up every event made meanwhile."
        q = self.queues.setdefault(session, SessionQueue())
        if not any(isinstance(j, Warm) for j in q.jobs):
            self.enqueue(session, Warm(session))

    def close(self) -> None:
        "Nothing more starts; what runs is cut off and says nothing more (the web has the next brain carry it on)."
        self.closing = True
        for q in self.queues.values():
            if q.running:
                q.running.control.cut_off()

    def drop_if_idle(self, session: str) -> None:
        if self.queues[session].idle:
            del self.queues[session]

