"""The brain on the bus, in the shape of the ZeroMQ guide's Paranoid Pirate worker: it connects
its own sockets, says hello and then heartbeats every BUS_HEARTBEAT_S (with what it knows of
Ollama), and says goodbye when it stops. One asyncio loop owns both sockets.

Every message it is sent it claims (`Ack`), and it hands a message to the session engine (a model
pull to brain/pulls.py) once the web has granted the claim, in the order the messages came, per
session. A chat message or a resume is handed on at once, on trust, so the grant's round trip is
not on the way to the first token: its reply streams, but what it saves, the app changes it asks
for and its end wait for the grant (brain/replies.py, brain/conversations.py). The web reads the
claim before anything the reply says, since both come down the one socket in order. A claim the
web revokes (the message went to another worker while this one was stalled, or was withdrawn) is
dropped, and the engine is told, which cuts off a reply made on trust without a word. A claim with
no answer is made again after ACK_TIMEOUT_BEATS heartbeats, since a frame can be lost on the way.

The node is given the engine, the pulls, the OllamaWatch and the `Outlet` (brain/ollama_worker.py
makes them): all speak on the bus through the outlet, made first, whose socket the node connects;
when the watch has news (`OllamaWatch.news`), the node tells it at once in a heartbeat."""
import asyncio
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

import zmq

from brain.engine import Engine
from brain.jobs import Trust
from brain.outlet import Outlet
from brain.ollama_watch import OllamaWatch
from brain.pulls import Pulls
from shared import bus
from shared.config import Settings
from shared.messages import (Ack, BadFrame, Bye, CancelPull, Chat, Credit, Grant, Heartbeat, Hello, Message, Pull,
                             Resume, Revoke, ToBrain, brain_topic, decode, encode)

log = logging.getLogger("brain")
ACK_TIMEOUT_BEATS = 3
REMEMBERED_MESSAGES = 10_000


ON_TRUST = (Chat, Resume)  # they add to the conversation only what their reply saves


@dataclass
class Claim:
    msg: ToBrain
    claimed_at: float
    granted: bool = False
    trust: Trust | None = None  # handed on before its grant: kept to be claimed again, and decided, when the answer comes

    @property
    def trusted(self) -> bool:
        return self.trust is not None


class Node:
    def __init__(self, settings: Settings, worker: str, engine: Engine, watch: OllamaWatch, pulls: Pulls,
                 outlet: Outlet):
        self.settings, self.id, self.engine, self.watch, self.pulls = settings, worker, engine, watch, pulls
        self.outlet, self.send = outlet, outlet.send
        self.window = outlet.window  # what the web has taken of what we sent
        self.started = time.time()
        self.claims: OrderedDict[str, Claim] = OrderedDict()  # by message id, in arrival order: not yet granted
        self.taken: OrderedDict[str, None] = OrderedDict()  # handed on; a later copy is only acked

    async def run(self, stop: asyncio.Event) -> None:
        curve = bus.curve_for(self.settings.bus_endpoints, self.settings.bus_curve_dir)
        ctx = bus.context()
        self.outlet.socket = bus.socket(ctx, zmq.PUB, self.settings.max_frame_bytes, connect=self.settings.bus_pub,
                                        curve=curve)
        sub = bus.socket(ctx, zmq.SUB, self.settings.max_frame_bytes, connect=self.settings.bus_sub, curve=curve)
        sub.subscribe(brain_topic(self.id))
        log.info("worker %s: model %s at %s, bus %s / %s", self.id, self.settings.model, self.settings.ollama_url,
                 self.settings.bus_pub, self.settings.bus_sub)
        tasks = [asyncio.create_task(self.heartbeat()), asyncio.create_task(self.receive(sub)),
                 asyncio.create_task(self.watch.run()), asyncio.create_task(self.announcing())]
        try:
            await stop.wait()
        finally:
            for t in tasks:
                t.cancel()
            self.engine.shutdown()
            self.pulls.shutdown()
            # Say goodbye before the sockets close: the web tells a restart from a crash by it.
            self.send(Bye(worker=self.id))
            await asyncio.sleep(0.05)
            ctx.destroy()

    def presence(self) -> dict:
        w = self.watch
        return dict(worker=self.id, started=self.started, pid=os.getpid(), model=self.settings.model,
                    parallel=self.settings.parallel, busy=self.engine.busy, ollama=w.reach.value, sent=self.window.sent,
                    making=[c.msg.makes for c in self.claims.values() if c.msg.makes and not c.trusted]
                    + self.engine.making,
                    pulling=[c.msg.id for c in self.claims.values() if isinstance(c.msg, Pull)] + self.pulls.pulling,
                    ollama_url=self.settings.ollama_url, version=w.version, loading=w.loading, models=w.models)

    def announce(self) -> None:
        "What the web shows changed: tell it now rather than at the next heartbeat."
        self.send(Heartbeat(**self.presence()))

    async def announcing(self) -> None:
        "Each time the watch has news, a heartbeat at once."
        while True:
            await self.watch.news.wait()
            self.watch.news.clear()
            self.announce()

    async def heartbeat(self) -> None:
        self.send(Hello(**self.presence()))
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            self.send(Heartbeat(**self.presence()))
            self.claim_again()

    def claim(self, msg: ToBrain) -> None:
        self.send(Ack(worker=self.id, session=msg.session, message=msg.id, reply=msg.makes, epoch=msg.epoch))

    def claim_again(self, now: float | None = None) -> None:
        "Claims the web has not answered within ACK_TIMEOUT_BEATS heartbeats: the ack or the answer was lost."
        now = time.monotonic() if now is None else now
        for c in self.claims.values():
            if not c.granted and now - c.claimed_at > ACK_TIMEOUT_BEATS * self.settings.heartbeat_s:
                c.claimed_at = now
                self.claim(c.msg)

    async def receive(self, sub: zmq.Socket) -> None:
        while True:
            frames = await sub.recv_multipart()
            try:
                msg = decode(frames, self.settings.max_frame_bytes)
            except BadFrame as e:
                log.warning("dropped a bad frame: %s", e)
                continue
            try:
                self.handle(msg)
            except Exception:
                # A worker that stopped listening but kept heartbeating would swallow every message.
                log.exception("failed to handle a %s message", msg.kind)

    def handle(self, msg: Message) -> None:
        match msg:
            case ToBrain() if (known := self.claims.get(msg.id)) and known.trusted and known.msg.epoch != msg.epoch:
                # Sent again under another epoch while it ran here on trust: that run is of an epoch the session left.
                self.handle(Revoke(worker=self.id, session=msg.session, message=msg.id, epoch=msg.epoch))
                self.handle(msg)
            case ToBrain() if msg.id in self.taken:
                self.claim(msg)  # so the web stops sending it; its grant finds no claim here
            case ToBrain():
                known = self.claims.get(msg.id)
                if known is None or known.msg.epoch != msg.epoch:
                    self.claims[msg.id] = Claim(msg, time.monotonic())
                self.claim(msg)  # a copy already claimed is claimed again: its answer may have been lost
                self.hand_on(msg.session)
            case Grant():
                c = self.claims.get(msg.message)
                if c is not None and c.msg.epoch == msg.epoch:
                    c.granted = True
                    if c.trusted:
                        del self.claims[msg.message]
                        self.engine.grant(msg.session, c.trust)
                    self.hand_on(msg.session)
            case Credit():
                self.window.credit(msg.seen)
            case Revoke():
                c = self.claims.pop(msg.message, None)
                if c is not None:
                    log.info("the web revoked the claim on %s of session %s", msg.message, msg.session[:8])
                    if c.trusted:
                        self.taken.pop(msg.message, None)  # not ours after all: a later copy is claimed anew
                self.engine.revoke(msg, c.trust if c is not None else None)
                self.hand_on(msg.session)
            case _:
                log.warning("ignored a %s message on a brain topic", msg.kind)

    def hand_on(self, session: str) -> None:
        """Give the engine the session's granted messages, and those it may take on trust, in arrival
        order, up to the first that must wait for its grant."""
        for message, c in list(self.claims.items()):
            if c.msg.session != session or c.trusted:
                continue
            if not c.granted and not isinstance(c.msg, ON_TRUST):
                return
            if c.granted:
                del self.claims[message]
            else:
                c.trust = Trust(message)
            self.taken[message] = None
            if len(self.taken) > REMEMBERED_MESSAGES:
                self.taken.popitem(last=False)
            if isinstance(c.msg, (Pull, CancelPull)):
                self.pulls.handle(c.msg)
            else:
                self.engine.handle(c.msg, c.trust)
