"""The brain on the bus, in the shape of the ZeroMQ guide's Paranoid Pirate worker: it connects
its own sockets, says hello and then heartbeats every BUS_HEARTBEAT_S (with what it knows of
Ollama), and says goodbye when it stops. One asyncio loop owns both sockets.

Every message it is sent it claims (`Ack`), and it hands a message to the session engine (a model
pull to brain/pulls.py) only once the web has granted the claim, in the order the messages came,
per session. A claim the web revokes (the message went to another worker while this one was
stalled, or was withdrawn) is dropped, and the engine is told. A claim with no answer is made again
after ACK_TIMEOUT_BEATS heartbeats, since a frame can be lost on the way.

The node is given the engine, the pulls and the OllamaWatch (brain/ollama_worker.py makes them);
they speak on the bus through its `send`, and the watch tells it when the heartbeat has news."""
import asyncio
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

import zmq

from brain.engine import Engine
from brain.ollama_watch import OllamaWatch
from brain.pulls import Pulls
from shared import bus
from shared.config import Settings
from shared.messages import (Ack, BadFrame, Bye, CancelPull, Grant, Heartbeat, Hello, Message, Pull, Revoke, ToBrain,
                             brain_topic, decode, encode)

log = logging.getLogger("brain")
ACK_TIMEOUT_BEATS = 3
REMEMBERED_MESSAGES = 10_000


@dataclass
class Claim:
    msg: ToBrain
    claimed_at: float
    granted: bool = False


class Node:
    def __init__(self, settings: Settings, worker: str, engine: Engine, watch: OllamaWatch, pulls: Pulls):
        self.settings, self.id, self.engine, self.watch, self.pulls = settings, worker, engine, watch, pulls
        self.started = time.time()
        self.claims: OrderedDict[str, Claim] = OrderedDict()  # by message id, in arrival order: not yet handed on
        self.taken: OrderedDict[str, None] = OrderedDict()  # handed on; a later copy is only acked

    async def run(self, stop: asyncio.Event) -> None:
        curve = bus.curve_for(self.settings.bus_endpoints, self.settings.bus_curve_dir)
        ctx = bus.context()
        self.pub = bus.socket(ctx, zmq.PUB, self.settings.max_frame_bytes, connect=self.settings.bus_pub, curve=curve)
        sub = bus.socket(ctx, zmq.SUB, self.settings.max_frame_bytes, connect=self.settings.bus_sub, curve=curve)
        sub.subscribe(brain_topic(self.id))
        log.info("worker %s: model %s at %s, bus %s / %s", self.id, self.settings.model, self.settings.ollama_url,
                 self.settings.bus_pub, self.settings.bus_sub)
        tasks = [asyncio.create_task(self.heartbeat()), asyncio.create_task(self.receive(sub)),
                 asyncio.create_task(self.watch.run())]
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

    def send(self, msg: Message) -> None:
        self.pub.send_multipart(encode(msg), copy=False)

    def presence(self) -> dict:
        w = self.watch
        return dict(worker=self.id, started=self.started, pid=os.getpid(), model=self.settings.model,
                    parallel=self.settings.parallel, busy=self.engine.busy, ollama=w.reach.value,
                    making=[c.msg.makes for c in self.claims.values() if c.msg.makes] + self.engine.making,
                    pulling=[c.msg.id for c in self.claims.values() if isinstance(c.msg, Pull)] + self.pulls.pulling,
                    ollama_url=self.settings.ollama_url, version=w.version, loading=w.loading, models=w.models)

    def announce(self) -> None:
        "What the web shows changed: tell it now rather than at the next heartbeat."
        self.send(Heartbeat(**self.presence()))

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
            case ToBrain() if msg.id in self.taken:
                self.claim(msg)  # so the web stops sending it; its grant finds no claim here
            case ToBrain():
                known = self.claims.get(msg.id)
                if known is None or known.msg.epoch != msg.epoch:
                    self.claims[msg.id] = Claim(msg, time.monotonic())
                self.claim(msg)  # a copy already claimed is claimed again: its answer may have been lost
            case Grant():
                c = self.claims.get(msg.message)
                if c is not None and c.msg.epoch == msg.epoch:
                    c.granted = True
                    self.hand_on(msg.session)
            case Revoke():
                if self.claims.pop(msg.message, None) is not None:
                    log.info("the web revoked the claim on %s of session %s", msg.message, msg.session[:8])
                self.engine.revoke(msg)
                self.hand_on(msg.session)
            case _:
                log.warning("ignored a %s message on a brain topic", msg.kind)

    def hand_on(self, session: str) -> None:
        "Give the engine the session's granted messages, in arrival order, up to the first still claimed."
        for message, c in list(self.claims.items()):
            if c.msg.session != session:
                continue
            if not c.granted:
                return
            del self.claims[message]
            self.taken[message] = None
            if len(self.taken) > REMEMBERED_MESSAGES:
                self.taken.popitem(last=False)
            (self.pulls if isinstance(c.msg, (Pull, CancelPull)) else self.engine).handle(c.msg)
