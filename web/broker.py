"""The bus, hosted by the web (the stable process): brains and tails connect here.

XSUB (BUS_PUB_ENDPOINT) takes what brains publish; XPUB (BUS_SUB_ENDPOINT) serves subscribers.
What brains publish (`web.*` topics) is forwarded to XPUB, and everything the web sends goes out
on XPUB, so a tail subscribed to "" sees both directions. Nothing else is forwarded: only the web
talks to brains.

The broker also knows which brain workers are alive: a worker is ready once its subscription has
reached XPUB (so nothing sent to it is dropped by the slow-joiner effect) and it has said hello or
heartbeated within 3 intervals. Each message for a brain stays pending (and in the outbox on
disk, so a web restart loses nothing) until the web grants a brain's claim on it; pending messages
with no ready worker wait, and are sent when one appears.

One owner per message. Each session is assigned to one worker at a time, numbered by an `epoch`
that changes whenever the session moves. Routing is load-aware with affinity: a session stays with
its worker (where Ollama's prompt cache for it lives) while that worker is ready and has a free
slot (`parallel`, turns in flight counted here as they are sent); a turn of an idle session whose
worker is full goes to the least-loaded worker that has room; a new session goes to the least
loaded. So no worker is sent more turns at once than it has slots while another has room.
(BUS_ROUTING=hash turns the load-awareness off, leaving rendezvous hashing with affinity, for
comparison in `make bench`.) A worker claims each message it is sent (`Ack`) and acts on it only when
the web grants the claim; a claim on a message that has been sent elsewhere meanwhile (its worker
was only stalled) is revoked. Whatever a worker says about a session it no longer holds at that
epoch is ignored, and the worker is told, so it stops and never saves that session again. The
assignments are kept on disk too, so a web restart changes none of them.
"""
import asyncio
import logging
import time
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Protocol

import msgspec
import zmq

from shared import bus
from shared.config import Routing, Settings
from shared.messages import (About, Ack, BadFrame, Bye, Done, Failed, Grant, Message, Presence, Revoke, ToBrain,
                             ToWeb, decode, encode, encode_valid)
from web.status import ChainStatus, chain_status

log = logging.getLogger("web.broker")
MISSED_BEATS = 3
ACK_TIMEOUT_BEATS = 3  # a live worker acks at once; no ack in this many heartbeats: sent again
GRANTS_REMEMBERED = 10_000  # so a claim whose grant was lost is granted again
RESTART_GRACE_S = 15.0  # how long "restarting" may last after a clean goodbye before it is "offline"


class Refused(ValueError):
    "A message the broker will not take (it could not be delivered, or its session has too many waiting); the text says why."


class Listener(Protocol):
    def brain_message(self, msg: ToWeb) -> None: ...
    def brain_status(self, status: ChainStatus) -> None:
        "The workers' or Ollama's state changed; `status` is what a session on the default model sees."
    def brain_lost(self, worker: str) -> None: ...
    def reply_lost(self, session: str, reply: str) -> None:
        "The worker no longer makes this reply, but its final message never came (lost on the bus)."


@dataclass(frozen=True)
class Owner:
    "Which worker holds a session, under which assignment."
    worker: str
    epoch: int


class Outbox(Protocol):
    "Where pending messages and the sessions' assignments are kept across web restarts."
    def keep(self, msg: ToBrain) -> None: ...
    def drop(self, message: str) -> None: ...
    def assign(self, session: str, owner: Owner) -> None: ...
    def release(self, worker: str) -> None:
        "The worker is gone: its sessions are assigned anew when they next need a worker."


@dataclass(frozen=True)
class InFlight:
    "A reply under way: the worker it was sent to, its session, and when it was last sent."
    worker: str
    session: str
    sent: float


@dataclass
class WorkerState:
    subscribed: bool = False
    presence: Presence | None = None
    last_seen: float = 0.0
    silent: bool = False  # judged lost for missing heartbeats, but still connected


class Broker:
    def __init__(self, settings: Settings, listener: Listener, outbox: Outbox, clock=time.monotonic):
        self.settings, self.listener, self.outbox, self.clock = settings, listener, outbox, clock
        self.workers: dict[str, WorkerState] = {}
        self.pending: dict[str, ToBrain] = {}
        self.waiting: Counter[str] = Counter()  # pending messages, by session: bounded by SESSION_MAX_PENDING
        self.sent_at: dict[str, float] = {}  # when each pending message last went to a worker
        self.owners: dict[str, Owner] = {}  # by session
        self.granted: OrderedDict[str, Owner] = OrderedDict()  # by message: whose claim was granted
        self.turns: dict[str, InFlight] = {}  # replies under way, by reply
        self.loads: Counter[str] = Counter()  # replies under way, by worker
        self.replying: Counter[str] = Counter()  # replies under way, by session
        self.last_epoch = 0
        self.restarting_until = 0.0
        self.shown: tuple = ()  # what the status depends on, as last announced

    def resume(self, pending: list[ToBrain], owners: dict[str, Owner] | None = None) -> None:
        """Take back what the outbox held when the web last stopped (sent once a worker is ready)
        and the sessions' assignments. Epochs only grow, across restarts too: the next one is
        past every kept one and past the clock (in µs), so a lost web.db cannot make them repeat."""
        for msg in pending:
            try:
                self._hold(msg)
            except Refused as e:
                log.warning("outbox: dropped %s %s: %s", msg.kind, msg.id, e)
                self.outbox.drop(msg.id)
        self.owners.update(owners or {})
        self.last_epoch = max([self.last_epoch, time.time_ns() // 1000, *(o.epoch for o in self.owners.values())])

    def open(self) -> None:
        "Bind the bus; raises (and so stops the web from starting) if it cannot."
        curve = bus.curve_for(self.settings.bus_endpoints, self.settings.bus_curve_dir)
        bus.make_private(self.settings.bus_endpoints)
        self.ctx = bus.context()
        self.auth = bus.start_authenticator(self.ctx, curve)
        try:
            self.xsub = bus.socket(self.ctx, zmq.XSUB, self.settings.max_frame_bytes, bind=self.settings.bus_pub, curve=curve)
            self.xpub = bus.socket(self.ctx, zmq.XPUB, self.settings.max_frame_bytes, bind=self.settings.bus_sub, curve=curve)
            # The same socket without asyncio's wrapping, for draining without a future per message.
            self.xsub_now = zmq.Socket.shadow(self.xsub.underlying)
        except zmq.ZMQError as e:
            self.ctx.destroy()
            raise bus.BusConfigError(f"cannot bind the bus ({self.settings.bus_pub}, {self.settings.bus_sub}): {e}") from None
        log.info("bus%s: publishers connect to %s, subscribers to %s", " (CURVE)" if curve else "",
                 self.settings.bus_pub, self.settings.bus_sub)

    async def run(self) -> None:
        await self.xsub.send(b"\x01")  # subscribe to everything every publisher sends
        try:
            await asyncio.gather(self._from_publishers(), self._subscriptions(), self._expire())
        except Exception:
            log.exception("the bus loop crashed")
            raise
        finally:
            if self.auth:
                self.auth.stop()
            self.ctx.destroy()

    def submit(self, msg: ToBrain) -> bool:
        """Send `msg` to the worker that serves its session; False when it must wait for a worker.
        Raises Refused, keeping nothing of it, for a message a brain would not take (checked here,
        where it enters the bus) or when its session has SESSION_MAX_PENDING messages waiting."""
        self._hold(msg)
        self.outbox.keep(msg)
        return self._route(msg)

    def offer(self, msg: ToBrain) -> bool | None:
        """Submit a message the app can do without (an interaction, say): a refusal is logged, not
        raised, and returns None; otherwise as `submit`."""
        try:
            return self.submit(msg)
        except Refused as e:
            log.warning("did not send a %s of session %s: %s", msg.kind, msg.session[:8], e)
            return None

    def _hold(self, msg: ToBrain) -> None:
        "Keep `msg` pending, once it is known to be deliverable and its session has room."
        try:
            encode_valid(msg, self.settings.max_frame_bytes)
        except BadFrame as e:
            raise Refused(str(e)) from None
        limit = self.settings.session_max_pending
        if msg.id not in self.pending and self.waiting[msg.session] >= limit:
            raise Refused(f"{limit} messages of this session are waiting for a brain already (SESSION_MAX_PENDING)")
        if msg.id not in self.pending:
            self.waiting[msg.session] += 1
        self.pending[msg.id] = msg

    def _unhold(self, message: str) -> ToBrain | None:
        msg = self.pending.pop(message, None)
        if msg is not None:
            self.waiting[msg.session] -= 1
            if not self.waiting[msg.session]:
                del self.waiting[msg.session]
            self.sent_at.pop(message, None)
        return msg

    @property
    def models(self) -> list[str] | None:
        "The models pulled into Ollama, as the ready workers last saw them; None until one has listed them."
        lists = [s.presence.models for s in self.workers.values() if self._ready(s) and s.presence.models is not None]
        return sorted({m for models in lists for m in models}) if lists else None

    def serving(self, session: str) -> Presence | None:
        "The ready worker that serves `session` (or would), as it last described itself."
        owner = self.owners.get(session)
        worker = owner.worker if owner and self.ready(owner.worker) else self._least_loaded(session)
        return self.workers[worker].presence if worker else None

    @property
    def restarting(self) -> bool:
        return self.clock() < self.restarting_until

    def status_of(self, session: str, model: str = "") -> tuple[ChainStatus, str]:
        "The status line of a session whose chosen model is `model` (\"\" for the default)."
        return chain_status(self.serving(session), self.restarting, model)

    @property
    def status(self) -> ChainStatus:
        return self.status_of("")[0]

    def asking(self, reply: str) -> str | None:
        "The id of the pending message that asks for `reply` (no worker's claim on it granted yet), if any."
        return next((m.id for m in self.pending.values() if m.makes == reply), None)

    def withdraw(self, message: str) -> bool:
        """Take back a message no worker's claim on has been granted; False if one may be acting on
        it. A worker that claims it later has its claim revoked."""
        msg = self._unhold(message)
        if msg is None:
            return False
        self._end_turn(msg.makes)
        self.outbox.drop(message)
        return True

    def _route(self, msg: ToBrain) -> bool:
        held = self.owners.get(msg.session)
        owner = self._assign(msg)
        if owner is None:
            return False
        moved = owner != held  # a session that moved takes every message still waiting for it along, in order
        for m in [m for m in self.pending.values() if m.session == msg.session] if moved else [msg]:
            m = msgspec.structs.replace(m, worker=owner.worker, epoch=owner.epoch)
            self.pending[m.id] = m
            self.sent_at[m.id] = self.clock()
            if m.makes:
                self._start_turn(m.makes, owner.worker, m.session)
            self._send(m)
        return True

    def _assign(self, msg: ToBrain) -> Owner | None:
        """The session's worker (see the module's doc), under a new epoch when it changes. A worker
        that held the session and may still be running is told at once."""
        session, held = msg.session, self.owners.get(msg.session)
        if held is not None and self.ready(held.worker):
            if (self.settings.routing is Routing.HASH or not msg.makes or self._has_room(held.worker)
                    or self.replying[session]):
                return held
            worker = self._least_loaded(session, roomy=True) or held.worker
        elif held is not None and held.worker in self.workers and self.replying[session] and not msg.makes:
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
            for reply in [r for r, t in self.turns.items() if t.session == session and t.worker == held.worker]:
                self._end_turn(reply)  # cut off: whatever the old worker says of it is ignored now
        if held is not None and held.worker in self.workers:
            log.warning("session %s moves from brain %s to %s", session[:8], held.worker, worker)
            self._send(Revoke(worker=held.worker, session=session, message=msg.id, epoch=owner.epoch))
        return owner

    def load(self, worker: str) -> int:
        """Replies sent to the worker and not ended yet. Counted here, as they are sent and end, not
        taken from heartbeats, which are up to an interval old: a burst is spread at once, and a
        session whose reply just ended finds its worker free again."""
        return self.loads[worker]

    def _start_turn(self, reply: str, worker: str, session: str) -> None:
        self._end_turn(reply)  # sent again, perhaps elsewhere: counted once
        self.turns[reply] = InFlight(worker, session, self.clock())
        self.loads[worker] += 1
        self.replying[session] += 1

    def _end_turn(self, reply: str) -> None:
        turn = self.turns.pop(reply, None)
        if turn is not None:
            self.loads[turn.worker] -= 1
            self.replying[turn.session] -= 1

    def _has_room(self, worker: str) -> bool:
        return self.load(worker) < self.workers[worker].presence.parallel

    def _least_loaded(self, session: str, roomy: bool = False) -> str | None:
        """The ready worker with the smallest share of its slots in use (ties, and BUS_ROUTING=hash:
        rendezvous hashing)."""
        ready = [w for w, state in self.workers.items() if self._ready(state) and (not roomy or self._has_room(w))]
        def share(w: str) -> float:
            return 0.0 if self.settings.routing is Routing.HASH else self.load(w) / self.workers[w].presence.parallel
        return min(ready, key=lambda w: (share(w), -zlib.crc32(f"{session}:{w}".encode())), default=None)

    def _send(self, msg: Message) -> None:
        self.xpub.send_multipart(encode(msg), copy=False)

    def _claimed(self, ack: Ack) -> bool:
        """Grant a claim on a message that is pending for that worker at that epoch (once; again if
        the grant was lost), revoke any other. True when the claim is new, for the listener."""
        claim, owner = Owner(ack.worker, ack.epoch), self.owners.get(ack.session)
        msg = self.pending.get(ack.message)
        new = msg is not None and Owner(msg.worker, msg.epoch) == claim == owner
        if new:
            self._unhold(ack.message)
            self.outbox.drop(ack.message)
            self.granted[ack.message] = claim
            while len(self.granted) > GRANTS_REMEMBERED:
                self.granted.popitem(last=False)
        if new or self.granted.get(ack.message) == claim == owner:
            self._send(Grant(worker=ack.worker, session=ack.session, message=ack.message, epoch=ack.epoch))
        else:
            log.info("revoked the claim of brain %s on %s %s", ack.worker, ack.session[:8], ack.message)
            self._revoke(ack, ack.message, owner)
        return new

    def _revoke(self, msg: About, message: str, owner: Owner | None) -> None:
        self._send(Revoke(worker=msg.worker, session=msg.session, message=message, epoch=owner.epoch if owner else 0))

    def _from_holder(self, msg: About) -> bool:
        "Whether `msg` comes from the session's worker at its epoch; if not, it is ignored and the sender told."
        owner = self.owners.get(msg.session)
        if owner is None or owner == Owner(msg.worker, msg.epoch):
            if isinstance(msg, (Done, Failed)):
                self._end_turn(msg.reply)
            return True
        log.info("ignored a %s from brain %s for session %s, which it no longer holds", msg.kind, msg.worker,
                 msg.session[:8])
        self._revoke(msg, "", owner)
        return False

    def _settle_lost_finals(self, presence: Presence) -> None:
        """A reply sent to this worker more than two heartbeats ago that it no longer makes, but
        whose Done or Failed never arrived: the final message was lost on the way. Its line must
        not wait for ever."""
        due = self.clock() - 2 * self.settings.heartbeat_s
        in_hand = set(presence.making) | {m.makes for m in self.pending.values()}  # the ack timeout sees to the pending
        for reply, turn in list(self.turns.items()):
            if turn.worker == presence.worker and reply not in in_hand and turn.sent < due:
                log.warning("reply %s: brain %s has finished it, but its final message never came", reply, turn.worker)
                self._end_turn(reply)
                self.listener.reply_lost(turn.session, reply)

    def ready(self, worker: str) -> bool:
        "Whether `worker` is subscribed and heartbeating, so what is sent to it now reaches it."
        state = self.workers.get(worker)
        return state is not None and self._ready(state)

    def _alive(self, state: WorkerState) -> bool:
        return state.presence is not None and self.clock() - state.last_seen < MISSED_BEATS * self.settings.heartbeat_s

    def _ready(self, state: WorkerState) -> bool:
        return state.subscribed and self._alive(state)

    def _resend_unacked(self) -> None:
        """At-least-once delivery: a message a live worker has not acked within ACK_TIMEOUT_BEATS
        heartbeats (dropped on the way, say) is sent again; the brain's duplicate filter makes a
        second copy harmless."""
        due = self.clock() - ACK_TIMEOUT_BEATS * self.settings.heartbeat_s
        for message, msg in list(self.pending.items()):
            state = self.workers.get(msg.worker)
            if state is not None and self._ready(state) and self.sent_at.get(message, due) < due:
                log.warning("%s %s was not acked by %s; sending it again", msg.kind, message, msg.worker)
                self._route_or_drop(msg)

    def _reroute(self) -> None:
        "Send every pending message whose worker is not ready (never assigned, or gone)."
        for message in list(self.pending):
            msg = self.pending.get(message)  # routing one may have moved others of its session along
            if msg is not None and not self.ready(msg.worker):
                self._route_or_drop(msg)

    def _route_or_drop(self, msg: ToBrain) -> None:
        "One message that cannot be sent is dropped (and logged), never left to fail every later round."
        try:
            self._route(msg)
        except Exception:
            log.exception("dropped %s %s of session %s: it could not be sent", msg.kind, msg.id, msg.session[:8])
            self._end_turn(msg.makes)
            self._unhold(msg.id)
            self.outbox.drop(msg.id)

    async def _from_publishers(self) -> None:
        while True:
            await self.xsub.poll()
            # Take everything that is waiting in one go: one wakeup, many messages, under load.
            while True:
                try:
                    frames = self.xsub_now.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                _isolated(self.from_publisher, frames)

    def from_publisher(self, frames: list[bytes]) -> None:
        if frames[0].startswith(b"web."):
            self.xpub.send_multipart(frames, copy=False)  # so tails see brain traffic too
        try:
            msg = decode(frames, self.settings.max_frame_bytes)
        except BadFrame as e:
            log.warning("dropped a bad frame from a publisher: %s", e)
            return
        if not isinstance(msg, ToWeb):
            log.warning("ignored a %s message sent by a publisher", msg.kind)
            return
        try:
            if self._observe(msg):
                self.listener.brain_message(msg)
        except Exception:
            # One message the web could not handle must not take the bus down for everyone.
            log.exception("failed to handle a %s message from %s", msg.kind, msg.worker)

    def _observe(self, msg: ToWeb) -> bool:
        """What a brain's message says about the brain (alive, its claims, its presence, its
        goodbye); False when the listener must not hear of it."""
        state = self.workers.get(msg.worker)
        if state is not None and state.presence is not None:
            state.last_seen = self.clock()  # any message is proof of life, not only heartbeats
            if state.silent:
                state.silent = False
                log.warning("brain %s is back", msg.worker)
                self._changed()
        if isinstance(msg, Ack):
            return self._claimed(msg)
        if isinstance(msg, About):
            return self._from_holder(msg)
        if isinstance(msg, Presence):
            state = self.workers.setdefault(msg.worker, WorkerState())
            state.presence, state.last_seen = msg, self.clock()
            self._settle_lost_finals(msg)
            self._changed()
        elif isinstance(msg, Bye):
            # Even from a worker already gone: its disconnect may have overtaken its goodbye.
            self.restarting_until = self.clock() + RESTART_GRACE_S
            self._lose(msg.worker, "said goodbye")
            self._update_status()
        return True

    async def _subscriptions(self) -> None:
        while True:
            _isolated(self.subscription, await self.xpub.recv())

    def subscription(self, event: bytes) -> None:
        "XPUB reports each (un)subscription: a worker's own topic tells it is there, or gone."
        prefix = b"brain."
        subscribed, topic = event[:1] == b"\x01", event[1:]
        if not topic.startswith(prefix):
            log.info("a subscriber %s %r", "joined" if subscribed else "left", topic.decode(errors="replace"))
            return
        worker = topic[len(prefix):].rstrip(b".").decode(errors="replace")
        if subscribed:
            self.workers.setdefault(worker, WorkerState()).subscribed = True
            self._changed()
        else:
            self._lose(worker, "disconnected")

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s / 2)
            _isolated(self.check_liveness)

    def check_liveness(self) -> None:
        self._resend_unacked()
        for worker, state in list(self.workers.items()):
            if state.presence and not state.silent and not self._alive(state):
                # Silent but still connected: it may only be stalled, so keep its subscription
                # and take it back as soon as it says anything.
                state.silent = True
                self._lose(worker, f"missed {MISSED_BEATS} heartbeats", forget=False)
        self._update_status()

    def _lose(self, worker: str, why: str, forget: bool = True) -> bool:
        known = self.workers.pop(worker, None) if forget else self.workers.get(worker)
        if known is None:
            return False
        log.warning("brain %s %s", worker, why)
        if forget:  # it cannot speak again: nothing of it is left to fence
            self.owners = {s: o for s, o in self.owners.items() if o.worker != worker}
            for reply in [r for r, t in self.turns.items() if t.worker == worker]:
                self._end_turn(reply)
            self.outbox.release(worker)
        self.listener.brain_lost(worker)
        self._changed()
        return True

    def _changed(self) -> None:
        "Re-send what waits on a worker, and update the status."
        self._reroute()
        self._update_status()

    def _update_status(self) -> None:
        "Tell the listener when anything a status line depends on has changed."
        ready = sorted((w, s.presence.ollama, s.presence.loading, bool(s.presence.busy), s.presence.model,
                        tuple(s.presence.models or ()), s.presence.models is None)
                       for w, s in self.workers.items() if self._ready(s))
        shown = (self.restarting, tuple(ready))
        if shown != self.shown:
            self.shown = shown
            self.listener.brain_status(self.status)


def _isolated(handle, *args) -> None:
    "One round of a bus loop: whatever goes wrong in it is logged, and the loop goes on for everyone."
    try:
        handle(*args)
    except Exception:
        log.exception("the bus could not handle %s", handle.__name__)
