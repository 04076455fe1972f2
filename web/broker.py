"""The bus, hosted by the web (the stable process): brains and tails connect here.

XSUB (BUS_PUB_ENDPOINT) takes what brains publish; XPUB (BUS_SUB_ENDPOINT) serves subscribers.
Everything that arrives on XSUB is forwarded to XPUB, and everything the web sends goes out on
XPUB, so a tail subscribed to "" sees both directions.

The broker also knows which brain workers are alive: a worker is ready once its subscription has
reached XPUB (so nothing sent to it is dropped by the slow-joiner effect) and it has said hello or
heartbeated within 3 intervals. Each message for a brain stays pending until that brain acks it;
pending messages with no ready worker wait, and are sent when one appears.
"""
import asyncio
import logging
import time
import zlib
from dataclasses import dataclass
from typing import Protocol

import msgspec
import zmq

from shared import bus
from shared.config import Settings
from shared.messages import Ack, BadFrame, Bye, Presence, ToBrain, ToWeb, decode, encode

log = logging.getLogger("web.broker")
MISSED_BEATS = 3


class Listener(Protocol):
    def brain_message(self, msg: ToWeb) -> None: ...
    def brain_status(self, status: str) -> None: ...
    def brain_lost(self, worker: str) -> None: ...


@dataclass
class WorkerState:
    subscribed: bool = False
    presence: Presence | None = None
    last_seen: float = 0.0


class Broker:
    def __init__(self, settings: Settings, listener: Listener, clock=time.monotonic):
        self.s, self.listener, self.clock = settings, listener, clock
        self.workers: dict[str, WorkerState] = {}
        self.pending: dict[str, ToBrain] = {}
        self.status = "offline"

    async def run(self) -> None:
        ctx = bus.context()
        self.xsub = bus.socket(ctx, zmq.XSUB, self.s.max_frame_bytes, bind=self.s.bus_pub)
        self.xpub = bus.socket(ctx, zmq.XPUB, self.s.max_frame_bytes, bind=self.s.bus_sub)
        await self.xsub.send(b"\x01")  # subscribe to everything every publisher sends
        log.info("bus: publishers connect to %s, subscribers to %s", self.s.bus_pub, self.s.bus_sub)
        try:
            await asyncio.gather(self._from_publishers(), self._subscriptions(), self._expire())
        finally:
            ctx.destroy()

    def submit(self, msg: ToBrain) -> bool:
        "Send `msg` to the worker that serves its session; False when it must wait for a worker."
        self.pending[msg.request] = msg
        return self._route(msg)

    def _route(self, msg: ToBrain) -> bool:
        worker = self._pick(msg.session)
        if worker is None:
            return False
        msg = msgspec.structs.replace(msg, worker=worker)
        self.pending[msg.request] = msg
        self.xpub.send_multipart(encode(msg), copy=False)
        return True

    def _pick(self, session: str) -> str | None:
        # Rendezvous hashing: a session sticks to one worker for as long as that worker lives.
        ready = [w for w, state in self.workers.items() if self._ready(state)]
        return max(ready, key=lambda w: zlib.crc32(f"{session}:{w}".encode()), default=None)

    def _alive(self, state: WorkerState) -> bool:
        return state.presence is not None and self.clock() - state.last_seen < MISSED_BEATS * self.s.heartbeat_s

    def _ready(self, state: WorkerState) -> bool:
        return state.subscribed and self._alive(state)

    def _reroute(self) -> None:
        "Send every pending message whose worker is not ready (never assigned, or gone)."
        for msg in list(self.pending.values()):
            state = self.workers.get(msg.worker)
            if state is None or not self._ready(state):
                self._route(msg)

    async def _from_publishers(self) -> None:
        while True:
            frames = await self.xsub.recv_multipart(copy=True)
            self.xpub.send_multipart(frames, copy=False)  # so tails see brain traffic too
            try:
                msg = decode(frames, self.s.max_frame_bytes)
            except BadFrame as e:
                log.warning("dropped a bad frame from a publisher: %s", e)
                continue
            if not isinstance(msg, ToWeb):
                log.warning("ignored a %s message sent by a publisher", msg.kind)
                continue
            self._note(msg)
            self.listener.brain_message(msg)

    def _note(self, msg: ToWeb) -> None:
        if isinstance(msg, Ack):
            self.pending.pop(msg.request, None)
        elif isinstance(msg, Presence):
            state = self.workers.setdefault(msg.worker, WorkerState())
            state.presence, state.last_seen = msg, self.clock()
            self._changed()
        elif isinstance(msg, Bye):
            self._lose(msg.worker, "said goodbye")

    async def _subscriptions(self) -> None:
        prefix = b"brain."
        while True:
            event = await self.xpub.recv()
            subscribed, topic = event[:1] == b"\x01", event[1:]
            if not topic.startswith(prefix):
                log.info("a subscriber %s %r", "joined" if subscribed else "left", topic.decode(errors="replace"))
                continue
            worker = topic[len(prefix):].rstrip(b".").decode(errors="replace")
            if subscribed:
                self.workers.setdefault(worker, WorkerState()).subscribed = True
                self._changed()
            else:
                self._lose(worker, "disconnected")

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(self.s.heartbeat_s / 2)
            for worker, state in list(self.workers.items()):
                if state.presence and not self._alive(state):
                    self._lose(worker, f"missed {MISSED_BEATS} heartbeats")

    def _lose(self, worker: str, why: str) -> None:
        if self.workers.pop(worker, None) is None:
            return
        log.warning("brain %s %s", worker, why)
        self.listener.brain_lost(worker)
        self._changed()

    def _changed(self) -> None:
        "Re-send what waits on a worker, and tell the listener when the brain's status moved."
        self._reroute()
        ready = [s.presence for s in self.workers.values() if self._ready(s)]
        status = "offline" if not ready else "thinking" if any(p.busy for p in ready) else "ready"
        if status != self.status:
            self.status = status
            self.listener.brain_status(status)
