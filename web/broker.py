"""The bus, hosted by the web (the stable process): brains and tails connect here.

XSUB (BUS_PUB_ENDPOINT) takes what brains publish; XPUB (BUS_SUB_ENDPOINT) serves subscribers.
What brains publish (`web.*` topics) is forwarded to XPUB, and everything the web sends goes out
on XPUB, so a tail subscribed to "" sees both directions. Nothing else is forwarded: only the web
talks to brains.

The broker owns the sockets and their loops, and decodes; what it hears is judged by two pieces
that touch no socket: `Workers` (web/workers.py: which brains are alive and ready) and `Dispatch`
(web/dispatch.py: pending messages, owners and epochs, claims, replies in flight), which sends
through the broker; `Credits` (web/credits.py) tells each brain how much of what it sent has been
taken, so no brain runs more than BUS_WINDOW messages ahead of the web. The listener (the chats)
hears what is left for it.
"""
import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import zmq

from shared import bus
from shared.config import Settings
from shared.messages import About, Ack, BadFrame, Bye, Message, Presence, ToBrain, ToWeb, decode, encode
from web.credits import Credits
from web.dispatch import Dispatch, Outbox, Owner
from web.ports import NotSent
from web.status import ChainStatus, chain_status
from web.workers import MISSED_BEATS, Workers

log = logging.getLogger("web.broker")


class Listener(Protocol):
    def brain_message(self, msg: ToWeb) -> None: ...
    def brain_status(self, status: ChainStatus) -> None:
        "The workers' or Ollama's state changed; `status` is what a session on the default model sees."
    def brain_lost(self, worker: str) -> None: ...
    def reply_lost(self, session: str, reply: str) -> None:
        "The worker no longer makes this reply, but its final message never came (lost on the bus)."


class Outlet:
    "Where the web's messages leave: the XPUB socket, once the broker has bound it."

    def __init__(self):
        self.socket: zmq.Socket | None = None

    def send(self, msg: Message) -> None:
        self.socket.send_multipart(encode(msg), copy=False)


class Switchboard:
    """The bus without its sockets, and the chat layer's `Bus` and `Brains` (web/ports.py): which
    brains are alive and ready (`Workers`), each session's messages, owner and epoch (`Dispatch`),
    and how much of what each brain sent the web has taken (`Credits`). The broker feeds it what
    the brains say; what it sends goes out through `send`."""

    def __init__(self, settings: Settings, outbox: Outbox, send: Callable[[Message], None], clock=time.monotonic):
        self.workers = Workers(settings, clock)
        self.credits = Credits(settings.bus_window)
        self.dispatch = Dispatch(settings, outbox, self.workers, send, clock)

    def resume(self, pending: list[ToBrain], owners: dict[str, Owner] | None = None,
               granted: dict[str, Owner] | None = None) -> None:
        """Take back what the outbox held when the web last stopped (sent once a worker is ready),
        the assignments and the grants."""
        self.dispatch.resume(pending, owners or {}, granted)

    def submit(self, msg: ToBrain) -> bool:
        """Send `msg` to the worker that serves its session; False when it must wait for a worker.
        Raises NotSent, keeping nothing of it, for a message a brain would not take (checked here,
        where it enters the bus) or when its session has SESSION_MAX_PENDING messages waiting."""
        return self.dispatch.submit(msg)

    def offer(self, msg: ToBrain) -> bool | None:
        """Submit a message the app can do without (an interaction, say): a refusal is logged, not
        raised, and returns None; otherwise as `submit`."""
        try:
            return self.submit(msg)
        except NotSent as e:
            log.warning("did not send a %s of session %s: %s", msg.kind, msg.session[:8], e)
            return None

    def asking(self, reply: str) -> str | None:
        "The id of the pending message that asks for `reply` (no worker's claim on it granted yet), if any."
        return self.dispatch.pending.asking(reply)

    def made_by(self, worker: str, session: str, reply: str) -> None:
        "A worker began `reply` by itself (a comment): it is counted, and ended, as any reply under way."
        self.dispatch.made_by(worker, session, reply)

    def in_hand(self, reply: str) -> bool:
        "Whether a ready worker may still be making `reply` (a Stop can reach it); if not, no final will come."
        return self.dispatch.in_hand(reply)

    def withdraw(self, message: str) -> bool:
        """Take back a message no worker's claim on has been granted; False if one may be acting on
        it. A worker that claims it later has its claim revoked."""
        return self.dispatch.withdraw(message)

    @property
    def pending(self) -> dict[str, ToBrain]:
        return self.dispatch.pending.messages

    @property
    def models(self) -> list[str] | None:
        return self.workers.models

    def ready(self, worker: str) -> bool:
        return self.workers.ready(worker)

    def serving(self, session: str) -> Presence | None:
        "The ready worker that serves `session` (or would), as it last described itself."
        worker = self.dispatch.serving(session)
        return self.workers.presence(worker) if worker else None

    def status_of(self, session: str, model: str = "") -> tuple[ChainStatus, str]:
        "The status line of a session whose chosen model is `model` (\"\" for the default)."
        return chain_status(self.serving(session), self.workers.restarting, model)

    @property
    def status(self) -> ChainStatus:
        return self.status_of("")[0]


class Broker:
    "The bus's sockets and loops: what the brains publish is decoded, judged by the switchboard, and heard by `listener`."

    def __init__(self, settings: Settings, listener: Listener, board: Switchboard, outlet: Outlet):
        self.settings, self.listener, self.board, self.outlet = settings, listener, board, outlet
        self.watched = 0  # topics subscribed to by tails rather than workers: brain traffic is passed on only then

    def open(self) -> None:
        "Bind the bus; raises (and so stops the web from starting) if it cannot."
        curve = bus.curve_for(self.settings.bus_endpoints, self.settings.bus_curve_dir)
        bus.make_private(self.settings.bus_endpoints)
        self.ctx = bus.context()
        self.auth = bus.start_authenticator(self.ctx, curve)
        try:
            self.xsub = bus.socket(self.ctx, zmq.XSUB, self.settings.max_frame_bytes, bind=self.settings.bus_pub, curve=curve)
            self.outlet.socket = bus.socket(self.ctx, zmq.XPUB, self.settings.max_frame_bytes, bind=self.settings.bus_sub,
                                            curve=curve)
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
            for credit in self.board.credits.due():
                self.outlet.send(credit)

    def from_publisher(self, frames: list[bytes]) -> None:
        if self.watched and frames[0].startswith(b"web."):
            self.outlet.socket.send_multipart(frames, copy=False)  # so tails see brain traffic too
        try:
            msg = decode(frames, self.settings.max_frame_bytes)
        except BadFrame as e:
            log.warning("dropped a bad frame from a publisher: %s", e)
            return
        if not isinstance(msg, ToWeb):
            log.warning("ignored a %s message sent by a publisher", msg.kind)
            return
        self.board.credits.took(msg)
        try:
            if self._observe(msg):
                self.listener.brain_message(msg)
        except Exception:
            # One message the web could not handle must not take the bus down for everyone.
            log.exception("failed to handle a %s message from %s", msg.kind, msg.worker)

    def _observe(self, msg: ToWeb) -> bool:
        """What a brain's message says about the brain (alive, its claims, its presence, its
        goodbye); False when the listener must not hear of it."""
        if self.board.workers.heard(msg.worker):
            log.warning("brain %s is back", msg.worker)
            self._changed()
        if isinstance(msg, Ack):
            return self.board.dispatch.claimed(msg)
        if isinstance(msg, About):
            return self.board.dispatch.from_holder(msg)
        if isinstance(msg, Presence):
            self.board.workers.present(msg)
            for session, reply in self.board.dispatch.lost_finals(msg):
                self.listener.reply_lost(session, reply)
            self._changed()
        elif isinstance(msg, Bye):
            # Even from a worker already gone: its disconnect may have overtaken its goodbye.
            self.board.workers.said_goodbye()
            self._forget(msg.worker, "said goodbye")
            self._update_status()
        return True

    async def _subscriptions(self) -> None:
        while True:
            _isolated(self.subscription, await self.outlet.socket.recv())

    def subscription(self, event: bytes) -> None:
        "XPUB reports each (un)subscription: a worker's own topic tells it is there, or gone."
        prefix = b"brain."
        subscribed, topic = event[:1] == b"\x01", event[1:]
        worker = topic[len(prefix):].rstrip(b".").decode(errors="replace") if topic.startswith(prefix) else ""
        if not worker:  # a tail (`--topic brain.`), say: a brain's own topic names it
            log.info("a subscriber %s %r", "joined" if subscribed else "left", topic.decode(errors="replace"))
            self.watched = max(0, self.watched + (1 if subscribed else -1))  # XPUB tells a topic's first and last
            return
        if subscribed:
            self.board.workers.subscribed(worker)
            self._changed()
        else:
            self._forget(worker, "disconnected")

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s / 2)
            _isolated(self.check_liveness)

    def check_liveness(self) -> None:
        self.board.dispatch.resend_unacked()
        for session, reply in self.board.dispatch.strays():
            self.listener.reply_lost(session, reply)
        for worker in self.board.workers.overdue():
            # Silent but still connected: it may only be stalled, so keep its subscription
            # and take it back as soon as it says anything.
            self.board.workers.silence(worker)
            self._lost(worker, f"missed {MISSED_BEATS} heartbeats")
        self._update_status()

    def _forget(self, worker: str, why: str) -> None:
        self.board.credits.forget(worker)
        if self.board.workers.forget(worker):
            self.board.dispatch.release(worker)
            self._lost(worker, why)

    def _lost(self, worker: str, why: str) -> None:
        log.warning("brain %s %s", worker, why)
        self.listener.brain_lost(worker)
        self._changed()

    def _changed(self) -> None:
        "Re-send what waits on a worker, and update the status."
        self.board.dispatch.reroute()
        self._update_status()

    def _update_status(self) -> None:
        "Tell the listener when anything a status line depends on has changed."
        if self.board.workers.status_changed():
            self.listener.brain_status(self.board.status)


def _isolated(handle, *args) -> None:
    "One round of a bus loop: whatever goes wrong in it is logged, and the loop goes on for everyone."
    try:
        handle(*args)
    except Exception:
        log.exception("the bus could not handle %s", handle.__name__)
