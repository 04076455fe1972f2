"""The brain worker process: a bus node (brain/node.py) in front of a session engine
(brain/engine.py) that answers through Ollama (brain/ollama_client.py). The supervisor
(brain/supervise.py) starts it and starts it again whenever it exits.

Here every piece is made and given the collaborators it works through; none makes its own.

Run: python -m brain.ollama_worker
"""
import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

from brain.asking import Asker
from brain.conversations import MAX_SESSIONS, Conversations
from brain.engine import Engine, fence
from brain.memory import Disk, Memory
from brain.node import Node
from brain.ollama_client import OllamaClient
from brain.ollama_watch import OllamaWatch
from brain.outlet import Outlet, ReplyBus, Window
from brain.pulls import Pulls
from brain.replies import Replies
from brain.sessions import Sessions
from brain.streams import Streams
from brain.tool_calls import ToolCalls
from shared.config import Settings, setup_logging
from shared.private import private_data_dir

log = logging.getLogger("brain")


@dataclass(frozen=True)
class Runtime:
    """Where the engine's work runs: the loop and its timers (`call_later`, a hand-turned clock's in
    tests), Ollama's streams (`pool`: BRAIN_PARALLEL threads), and conversations read and written
    (`disk`: one thread, so in order)."""
    loop: asyncio.AbstractEventLoop
    pool: Executor
    disk: Executor
    call_later: Callable[..., asyncio.TimerHandle]


def wire_engine(settings: Settings, ollama: OllamaClient, memory: Memory, watch: OllamaWatch, outlet: Outlet,
                worker: str, runtime: Runtime, held: int = MAX_SESSIONS) -> Engine:
    """The engine and its pieces, each given what it works through when made. What they say goes
    out through `outlet` (whose window holds chunks back while the web is behind) as `worker`;
    `held` conversations stay in memory."""
    loop, call_later = runtime.loop, runtime.call_later
    sessions = Sessions(call_later, settings.comment_delay_s, settings.session_max_pending)
    bus = ReplyBus(outlet, worker)
    calls = ToolCalls(bus, loop)
    conversations = Conversations(memory, runtime.disk, loop, keep=sessions.active,
                                  fenced=partial(fence, sessions, calls), limit=held)
    streams = Streams(ollama, settings, runtime.pool, loop, bus)
    replies = Replies(settings, Asker(settings, watch, streams, bus, call_later), calls, conversations, bus)
    return Engine(settings, sessions, conversations, replies, bus)


async def serve(settings: Settings, client: OllamaClient, memory: Memory, worker: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    # Every piece speaks through the outlet, made first; the node connects its socket.
    outlet = Outlet(settings, Window(settings.bus_window))
    checks = ThreadPoolExecutor(1, thread_name_prefix="ollama-check")  # never queued behind replies
    watch = OllamaWatch(client, settings.model, {"num_ctx": settings.num_ctx}, settings.keep_alive,
                        settings.ollama_check_s,
                        blocking=lambda fn, *a, **kw: loop.run_in_executor(checks, partial(fn, *a, **kw)))
    engine = wire_engine(settings, client, memory, watch, outlet, worker,
                         Runtime(loop, ThreadPoolExecutor(settings.parallel, thread_name_prefix="ollama"),
                                 Disk(memory.batch), loop.call_later))
    node = Node(settings, worker, engine, watch, Pulls(client, watch, outlet.send, worker), outlet)
    await node.run(stop)


def main() -> None:
    setup_logging()
    settings = Settings.from_env()
    private_data_dir(settings.data_dir)  # before brain.db is written
    client = OllamaClient(settings.ollama_url, settings.connect_timeout_s, settings.read_timeout_s, settings.parallel)
    memory = Memory.open(settings.brain_database_url, settings.data_dir)
    worker = uuid.uuid4().hex[:12]
    asyncio.run(serve(settings, client, memory, worker))
    log.info("worker %s stopped", worker)
    logging.shutdown()
    # A pool thread may sit in a stalled Ollama read for up to OLLAMA_READ_TIMEOUT_S; exiting
    # closes its connection, which is also what tells Ollama to stop generating.
    os._exit(0)


if __name__ == "__main__":
    main()
