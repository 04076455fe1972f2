"""The bus, hosted by the web (the stable process): brains and tails connect here.

XSUB (BUS_PUB_ENDPOINT) takes what brains publish; XPUB (BUS_SUB_ENDPOINT) serves subscribers.
What brains publish (`web.*` topics) is forwarded to XPUB, and everything the web sends goes out
on XPUB, so a tail subscribed to "" sees both directions. Nothing else is forwarded: only the web
talks to brains.

The broker owns the sockets and their loops, and decodes; what it hears goes to the switchboard
(web/switchboard.py: the bus without its sockets), which judges it, and the listener (the chats)
hears what is left for it. Only the composition root (web/server.py) knows of the broker.
"""
import asyncio
import logging
from typing import Protocol

import zmq

from shared import bus
from shared.config import Settings
from shared.messages import About, Ack, BadFrame, Bye, Presence, ToWeb, decode
from web.status import ChainStatus
from web.switchboard import Outlet, Switchboard
from web.workers import MISSED_BEATS

log = logging.getLogger("web.broker")


class Listener(Protocol):
    def brain_message(self, msg: ToWeb) -> None: ...
    def brain_status(self, status: ChainStatus) -> None:
        "The workers' or Ollama's state changed; `status` is what a session on the default model sees."
    def brain_lost(self, worker: str) -> None: ...
    def reply_lost(self, session: str, reply: str) -> None:
        "The worker no longer makes this reply, but its final message never came (lost on the bus)."


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
            self.board.send_credits()

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
        try:
            if self._observe(msg):
                self.listener.brain_message(msg)
        except Exception:
            # One message the web could not handle must not take the bus down for everyone.
            log.exception("failed to handle a %s message from %s", msg.kind, msg.worker)

    def _observe(self, msg: ToWeb) -> bool:
        """What a brain's message says about the brain (alive, its claims, its presence, its
        goodbye); False when the listener must not hear of it."""
        if self.board.heard(msg):
            log.warning("brain %s is back", msg.worker)
            self._changed()
        if isinstance(msg, Ack):
            return self.board.claimed(msg)
        if isinstance(msg, About):
            return self.board.from_holder(msg)
        if isinstance(msg, Presence):
            for session, reply in self.board.present(msg):
                self.listener.reply_lost(session, reply)
            self._changed()
        elif isinstance(msg, Bye):
            # Even from a worker already gone: its disconnect may have overtaken its goodbye.
            self.board.said_goodbye()
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
            self.board.subscribed(worker)
            self._changed()
        else:
            self._forget(worker, "disconnected")

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s / 2)
            _isolated(self.check_liveness)

    def check_liveness(self) -> None:
        self.board.resend_unacked()
        for session, reply in self.board.strays():
            self.listener.reply_lost(session, reply)
        for worker in self.board.overdue():
            # Silent but still connected: it may only be stalled, so keep its subscription
            # and take it back as soon as it says anything.
            self.board.silence(worker)
            self._lost(worker, f"missed {MISSED_BEATS} heartbeats")
        self._update_status()

    def _forget(self, worker: str, why: str) -> None:
        if self.board.forget(worker):
            self._lost(worker, why)

    def _lost(self, worker: str, why: str) -> None:
        log.warning("brain %s %s", worker, why)
        self.listener.brain_lost(worker)
        self._changed()

    def _changed(self) -> None:
        "Re-send what waits on a worker, and update the status."
        self.board.reroute()
        self._update_status()

    def _update_status(self) -> None:
        "Tell the listener when anything a status line depends on has changed."
        if self.board.status_changed():
            self.listener.brain_status(self.board.status)


def _isolated(handle, *args) -> None:
    "One round of a bus loop: whatever goes wrong in it is logged, and the loop goes on for everyone."
    try:
        handle(*args)
    except Exception:
        log.exception("the bus could not handle %s", handle.__name__)
