"""The brain on the bus, in the shape of the ZeroMQ guide's Paranoid Pirate worker: it connects
its own sockets, says hello and then heartbeats every BUS_HEARTBEAT_S (with what it knows of
Ollama), acks every message it is sent, drops a re-send it has already taken, hands the rest to
the session engine, and says goodbye when it stops. One asyncio loop owns both sockets."""
import asyncio
import logging
import os
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import zmq

from brain.engine import Engine
from brain.memory import Memory
from brain.ollama_client import OllamaClient
from brain.ollama_watch import OllamaWatch
from shared import bus
from shared.config import Settings
from shared.messages import (Ack, BadFrame, Bye, Heartbeat, Hello, Message, ToBrain, brain_topic, decode,
                             encode)

log = logging.getLogger("brain")
REMEMBERED_REQUESTS = 10_000


class Node:
    def __init__(self, settings: Settings, client: OllamaClient, memory: Memory):
        self.settings, self.client, self.memory = settings, client, memory
        self.id = uuid.uuid4().hex[:12]
        self.started = time.time()
        self.taken: OrderedDict[str, None] = OrderedDict()  # requests already handed to the engine
        self.checks = ThreadPoolExecutor(1, thread_name_prefix="ollama-check")  # never queued behind replies

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        curve = bus.curve_for(self.settings.bus_endpoints, self.settings.bus_curve_dir)
        ctx = bus.context()
        self.pub = bus.socket(ctx, zmq.PUB, self.settings.max_frame_bytes, connect=self.settings.bus_pub, curve=curve)
        sub = bus.socket(ctx, zmq.SUB, self.settings.max_frame_bytes, connect=self.settings.bus_sub, curve=curve)
        sub.subscribe(brain_topic(self.id))
        self.watch = OllamaWatch(self.client, self.settings.model, {"num_ctx": self.settings.num_ctx}, self.settings.keep_alive,
                                 self.settings.ollama_check_s, changed=self.announce,
                                 blocking=lambda fn, *a, **kw: loop.run_in_executor(self.checks, partial(fn, *a, **kw)))
        self.engine = Engine(self.settings, self.client, self.memory, self.watch, self.send, self.id)
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
                    ollama_url=self.settings.ollama_url, version=w.version, loading=w.loading, models=w.models)

    def announce(self) -> None:
        "What the web shows changed: tell it now rather than at the next heartbeat."
        self.send(Heartbeat(**self.presence()))

    async def heartbeat(self) -> None:
        self.send(Hello(**self.presence()))
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            self.send(Heartbeat(**self.presence()))

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
        if not isinstance(msg, ToBrain):
            log.warning("ignored a %s message on a brain topic", msg.kind)
            return
        self.send(Ack(worker=self.id, session=msg.session, request=msg.request))
        if msg.request in self.taken:
            return  # a re-send whose first ack was lost: already handled
        self.taken[msg.request] = None
        if len(self.taken) > REMEMBERED_REQUESTS:
            self.taken.popitem(last=False)
        self.engine.handle(msg)
