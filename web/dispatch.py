"""Where each message for a brain goes, and the web's verdict on each claim (docs/protocol.md §5,
§7). No I/O here: each method returns what is to be sent, in order, for its caller to send (the
switchboard, web/switchboard.py); readiness comes from the `Workers`, time from the clock, so every
rule can be tested with a clock turned by hand.

Each message for a brain stays pending (and in the outbox on disk, so a web restart loses
nothing) until the web grants a brain's claim on it; pending messages with no ready worker wait,
and are sent when one appears, in order per session, except that a resume goes ahead of its
session's other waiting messages: a cut-off reply is carried on before any later one is answered.

One owner per message. Each session is assigned to one worker at a time, numbered by an `epoch`
that changes whenever the session moves. Routing is load-aware with affinity: a session stays with
its worker (where Ollama's prompt cache for it lives) while that worker is ready and has a free
slot (`parallel`, replies in flight counted here as they are sent); a turn of an idle session whose
worker is full goes to the least-loaded worker that has room; a new session goes to the least
loaded. So no worker is sent more turns at once than it has slots while another has room.
(BUS_ROUTING=hash turns the load-awareness off, leaving rendezvous hashing with affinity, for
comparison in `make bench`.) A worker claims each message it is sent (`Ack`) and acts on it only when
the web grants the claim; a claim on a message that has been sent elsewhere meanwhile (its worker
was only stalled) is revoked. Whatever a worker says about a session it no longer holds at that
epoch is ignored, and the worker is told, so it stops and never saves that session again. The
assignments are kept on disk too, so a web restart changes none of them.
"""
import logging
import time
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from shared.config import Routing, Settings
from shared.lru import LRU
from shared.messages import (About, Ack, BadFrame, CallTool, Done, Failed, Grant, Message, Presence, Resume, Revoke, ToBrain,
                             encode_valid)
from web.ports import NotSent
from web.workers import MISSED_BEATS, Workers

log = logging.getLogger("web.dispatch")
ACK_TIMEOUT_BEATS = 3  # a live worker acks at once; no ack in this many heartbeats: sent again
GRANTS_REMEMBERED = 10_000  # so a claim whose grant was lost is granted again


@dataclass(frozen=True)
class Owner:
    "Which worker holds a session, under which assignment."
    worker: str
    epoch: int


class Outbox(Protocol):
    "Where pending messages, the grants and the sessions' assignments are kept across web restarts."
    def keep(self, msg: ToBrain) -> None: ...
    def drop(self, message: str) -> None: ...
    def granted(self, message: str, owner: Owner) -> None:
        """Out of the outbox, and remembered (the newest GRANTS_REMEMBERED), so a claim whose grant
        was lost is granted again after a restart."""
    def assign(self, session: str, owner: Owner) -> None: ...
    def release(self, worker: str) -> None:
        "The worker is gone: its sessions are assigned anew when they next need a worker."


class Pending:
    "The messages no worker's claim on has been granted yet, by id, in the order they came."

    def __init__(self, settings: Settings):
        self.settings = settings
        self.messages: dict[str, ToBrain] = {}
        self.waiting: Counter[str] = Counter()  # by session: bounded by SESSION_MAX_PENDING
        self.sent_at: dict[str, float] = {}  # when each last went to a worker

    def hold(self, msg: ToBrain) -> None:
        "Keep `msg`, once it is known to be deliverable and its session has room; else NotSent, keeping nothing."
        try:
            encode_valid(msg, self.settings.max_frame_bytes)
        except BadFrame as e:
            raise NotSent(str(e)) from None
        limit = self.settings.session_max_pending
        if msg.id not in self.messages and self.waiting[msg.session] >= limit:
            raise NotSent(f"{limit} messages of this session are waiting for a brain already (SESSION_MAX_PENDING)")
        if msg.id in self.messages:
            self.messages[msg.id] = msg
            return
        self.waiting[msg.session] += 1
        self.messages[msg.id] = msg
        if isinstance(msg, Resume):
            self._before_later(msg)

    def _before_later(self, resume: Resume) -> None:
        """A cut-off reply is carried on before any later message of its session is answered: its
        resume goes ahead of the session's waiting messages, resumes aside (they keep their order).
        Those came after the reply's question (a brain had been granted it already), so answered
        first, a later question would stand before the resumed one in the conversation."""
        later = [m for m in self.messages.values() if m.session == resume.session and not isinstance(m, Resume)]
        for m in later:  # a dict keeps insertion order: moved to the end, behind the resume, in their order
            del self.messages[m.id]
            self.messages[m.id] = m

    def unhold(self, message: str) -> ToBrain | None:
        msg = self.messages.pop(message, None)
        if msg is not None:
            self.waiting[msg.session] -= 1
            if not self.waiting[msg.session]:
                del self.waiting[msg.session]
            self.sent_at.pop(message, None)
        return msg

    def sent(self, msg: ToBrain, now: float) -> None:
        "`msg` (restamped with its worker and epoch) went out at `now`."
        self.messages[msg.id] = msg
        self.sent_at[msg.id] = now

    def asking(self, reply: str) -> str | None:
        return next((m.id for m in self.messages.values() if m.makes == reply), None)


@dataclass(frozen=True)
class InFlight:
    "A reply under way: the worker it was sent to, its session, and when it was last sent."
    worker: str
    session: str
    sent: float


class UnderWay:
    """The replies sent to workers and not ended yet. Counted here, as they are sent and end, not
    taken from heartbeats, which are up to an interval old: a burst is spread at once, and a
    session whose reply just ended finds its worker free again."""

    def __init__(self):
        self.under_way: dict[str, InFlight] = {}  # by reply
        self.loads: Counter[str] = Counter()  # by worker
        self.by_session: Counter[str] = Counter()

    def start(self, reply: str, worker: str, session: str, now: float) -> None:
        self.end(reply)  # sent again, perhaps elsewhere: counted once
        self.under_way[reply] = InFlight(worker, session, now)
        self.loads[worker] += 1
        self.by_session[session] += 1

    def end(self, reply: str) -> None:
        turn = self.under_way.pop(reply, None)
        if turn is not None:
            self.loads[turn.worker] -= 1
            self.by_session[turn.session] -= 1

    def of(self, worker: str, session: str | None = None) -> list[str]:
        "The replies under way on `worker` (of `session` only, if given)."
        return [r for r, t in self.under_way.items() if t.worker == worker and (session is None or t.session == session)]


class Dispatch:
    def __init__(self, settings: Settings, outbox: Outbox, workers: Workers, clock: Callable[[], float]):
        self.settings, self.outbox, self.workers, self.clock = settings, outbox, workers, clock
        self.pending = Pending(settings)
        self.replies = UnderWay()
        self.owners: dict[str, Owner] = {}  # by session
        self.granted: LRU[str, Owner] = LRU(GRANTS_REMEMBERED)  # by message: whose claim was granted
        self.last_epoch = 0

    def resume(self, pending: list[ToBrain], owners: dict[str, Owner], granted: dict[str, Owner] | None = None) -> None:
        """Take back what the outbox held when the web last stopped, the sessions' assignments and
        the grants (oldest first). Epochs only grow, across restarts too: the next one is past every
        kept one and past the wall clock (in µs), so a lost web.db cannot make them repeat."""
        for message, owner in (granted or {}).items():
            self.granted.put(message, owner)
        for msg in pending:
            try:
                self.pending.hold(msg)
            except NotSent as e:
                log.warning("outbox: dropped %s %s: %s", msg.kind, msg.id, e)
                self.outbox.drop(msg.id)
        self.owners.update(owners)
        self.last_epoch = max([self.last_epoch, time.time_ns() // 1000, *(o.epoch for o in self.owners.values())])

    def submit(self, msg: ToBrain) -> list[Message]:
        "What sends `msg` (see `route`); raises NotSent, keeping nothing of it."
        self.pending.hold(msg)
        self.outbox.keep(msg)
        return self.route(msg)

    def withdraw(self, message: str) -> bool:
        msg = self.pending.unhold(message)
        if msg is None:
            return False
        self.replies.end(msg.makes)
        self.outbox.drop(message)
        return True

    def load(self, worker: str) -> int:
        return self.replies.loads[worker]

    def route(self, msg: ToBrain) -> list[Message]:
        """What sends `msg` to its session's worker, in order; nothing when there is none to send it
        to yet (so `msg` itself is among them exactly when it goes)."""
        held = self.owners.get(msg.session)
        owner = self._assign(msg)
        if owner is None:
            return []
        sends: list[Message] = []
        if owner != held and held is not None and held.worker in self.workers:
            # Its last worker may still be running the session: it is told at once.
            log.warning("session %s moves from brain %s to %s", msg.session[:8], held.worker, owner.worker)
            sends.append(Revoke(worker=held.worker, session=msg.session, message=msg.id, epoch=owner.epoch))
        # A session that moved takes every message still waiting for it along, in order; a new session
        # (the usual case in a burst) has only this one, so the others need no looking through.
        along = [msg]
        if owner != held and self.pending.waiting[msg.session] > 1:
            along = [m for m in self.pending.messages.values() if m.session == msg.session]
        for m in along:
            m = msgspec.structs.replace(m, worker=owner.worker, epoch=owner.epoch)
            self.pending.sent(m, self.clock())
            if m.makes:
                self.replies.start(m.makes, owner.worker, m.session, self.clock())
            sends.append(m)
        return sends

    def _assign(self, msg: ToBrain) -> Owner | None:
        "The session's worker (see the module's doc), under a new epoch when it changes."
        session, held = msg.session, self.owners.get(msg.session)
        if held is not None and self.workers.ready(held.worker):
            if (self.settings.routing is Routing.HASH or not msg.makes or self._has_room(held.worker)
                    or self.replies.by_session[session]):
                return held
            worker = self._least_loaded(session, roomy=True) or held.worker
        elif held is not None and held.worker in self.workers and self.replies.by_session[session] and not msg.makes:
            # Its worker is only silent (busy, stalled) with a reply of the session under way:
            # moving the session would cut that reply off for an event. A new turn does move it.
            return None
        else:
            worker = self._least_loaded(session)
        if worker is None:
            return None
        if held is not None and worker == held.worker:
            return held
        self.last_epoch += 1
        owner = self.owners[session] = Owner(worker, self.last_epoch)
        self.outbox.assign(session, owner)
        if held is not None:
            for reply in self.replies.of(held.worker, session):
                self.replies.end(reply)  # cut off: whatever the old worker says of it is ignored now
        return owner

    def serving(self, session: str) -> str | None:
        "The ready worker that serves `session`, or would."
        owner = self.owners.get(session)
        return owner.worker if owner and self.workers.ready(owner.worker) else self._least_loaded(session)

    def _has_room(self, worker: str) -> bool:
        return self.load(worker) < self.workers.presence(worker).parallel

    def _least_loaded(self, session: str, roomy: bool = False) -> str | None:
        """The ready worker with the smallest share of its slots in use (ties, and BUS_ROUTING=hash:
        rendezvous hashing)."""
        ready = [w for w in self.workers.ready_ones() if not roomy or self._has_room(w)]
        def share(w: str) -> float:
            return 0.0 if self.settings.routing is Routing.HASH else self.load(w) / self.workers.presence(w).parallel
        return min(ready, key=lambda w: (share(w), -zlib.crc32(f"{session}:{w}".encode())), default=None)

    def claimed(self, ack: Ack) -> tuple[bool, Grant | Revoke]:
        """The verdict on a claim: a grant for a message that is pending for that worker at that epoch
        (once; again if the grant was lost), a revoke for any other; and whether the claim is new
        (only then does the listener hear of it)."""
        claim, owner = Owner(ack.worker, ack.epoch), self.owners.get(ack.session)
        msg = self.pending.messages.get(ack.message)
        new = msg is not None and Owner(msg.worker, msg.epoch) == claim == owner
        if new:
            self.pending.unhold(ack.message)
            self.outbox.granted(ack.message, claim)
            self.granted.put(ack.message, claim)
        if new or self.granted.peek(ack.message) == claim == owner:
            return new, Grant(worker=ack.worker, session=ack.session, message=ack.message, epoch=ack.epoch)
        log.info("revoked the claim of brain %s on %s %s", ack.worker, ack.session[:8], ack.message)
        return new, _revoke(ack, ack.message, owner)

    def from_holder(self, msg: About) -> tuple[bool, Revoke | None]:
        """Whether `msg` comes from the session's worker at its epoch; if not, it is ignored, and the
        revoke that tells its sender so (none for a tool call of a brain already gone)."""
        owner = self.owners.get(msg.session)
        if owner is None and isinstance(msg, CallTool) and msg.worker not in self.workers:
            # Read after its brain was forgotten: the reply's resume, made without it, may be on its
            # way already, so applied now it could be applied again by the next brain.
            log.warning("ignored a tool call from brain %s, which is gone", msg.worker)
            return False, None
        if owner is None or owner == Owner(msg.worker, msg.epoch):
            if isinstance(msg, (Done, Failed)):
                self.replies.end(msg.reply)
            return True, None
        log.info("ignored a %s from brain %s for session %s, which it no longer holds", msg.kind, msg.worker,
                 msg.session[:8])
        return False, _revoke(msg, "", owner)

    def made_by(self, worker: str, session: str, reply: str) -> None:
        """`worker` makes `reply`, which no message of the web asked for (a comment on app events):
        counted as any reply under way, so it ends too, by its final, by the lost-final check, or as
        a stray (`strays`)."""
        if reply not in self.replies.under_way:
            self.replies.start(reply, worker, session, self.clock())

    def strays(self) -> list[tuple[str, str]]:
        """The (session, reply) of each reply under way on a worker the web has not known for
        MISSED_BEATS heartbeats: a comment whose words came from a brain already forgotten (read
        after its disconnect), or one never heard from. No heartbeat of it will settle them, so
        they end here. (A worker not heard yet, as after a web restart, says hello well before.)"""
        due = self.clock() - MISSED_BEATS * self.settings.heartbeat_s
        lost = [(t.session, r) for r, t in self.replies.under_way.items() if t.worker not in self.workers and t.sent < due]
        for session, reply in lost:
            log.warning("reply %s: its brain %s is not known here, so its end will never come", reply,
                        self.replies.under_way[reply].worker)
            self.replies.end(reply)
        return lost

    def in_hand(self, reply: str) -> bool:
        "Whether a ready worker may still be making `reply`, so only it can end it."
        turn = self.replies.under_way.get(reply)
        return turn is not None and self.workers.ready(turn.worker)

    def lost_finals(self, presence: Presence) -> list[tuple[str, str]]:
        """The (session, reply) of each reply sent to this worker (or that it began by itself, a
        comment) more than two heartbeats ago that it no longer makes, but whose Done or Failed
        never arrived: the final message was lost on the way. They end here; their lines must not
        wait for ever."""
        due = self.clock() - 2 * self.settings.heartbeat_s
        in_hand = set(presence.making) | {m.makes for m in self.pending.messages.values()}  # the ack timeout sees to the pending
        lost = [(t.session, r) for r, t in self.replies.under_way.items()
                if t.worker == presence.worker and r not in in_hand and t.sent < due]
        for session, reply in lost:
            log.warning("reply %s: brain %s has finished it, but its final message never came", reply, presence.worker)
            self.replies.end(reply)
        return lost

    def resend_unacked(self) -> list[Message]:
        """At-least-once delivery: a message a live worker has not acked within ACK_TIMEOUT_BEATS
        heartbeats (dropped on the way, say) is sent again; the brain's duplicate filter makes a
        second copy harmless."""
        due = self.clock() - ACK_TIMEOUT_BEATS * self.settings.heartbeat_s
        sends: list[Message] = []
        for message, msg in list(self.pending.messages.items()):
            if self.workers.ready(msg.worker) and self.pending.sent_at.get(message, due) < due:
                log.warning("%s %s was not acked by %s; sending it again", msg.kind, message, msg.worker)
                sends += self.route(msg)
        return sends

    def reroute(self) -> list[Message]:
        "What sends every pending message whose worker is not ready (never assigned, or gone)."
        sends: list[Message] = []
        for message in list(self.pending.messages):
            msg = self.pending.messages.get(message)  # routing one may have moved others of its session along
            if msg is not None and not self.workers.ready(msg.worker):
                sends += self.route(msg)
        return sends

    def release(self, worker: str) -> None:
        "The worker is forgotten: it cannot speak again, so nothing of it is left to fence."
        self.owners = {s: o for s, o in self.owners.items() if o.worker != worker}
        for reply in self.replies.of(worker):
            self.replies.end(reply)
        self.outbox.release(worker)


def _revoke(msg: About, message: str, owner: Owner | None) -> Revoke:
    return Revoke(worker=msg.worker, session=msg.session, message=message, epoch=owner.epoch if owner else 0)
