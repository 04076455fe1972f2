"""The brain worker process: a bus node (brain/node.py) in front of a session engine
(brain/engine.py) that answers through Ollama (brain/ollama_client.py). The supervisor
(brain/supervise.py) starts it and starts it again whenever it exits.

Run: python -m brain.ollama_worker
"""
import asyncio
import logging
import os
import signal

from brain.memory import Memory
from brain.node import Node
from brain.ollama_client import OllamaClient
from shared.config import Settings, setup_logging

log = logging.getLogger("brain")


def main() -> None:
    setup_logging()
    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    client = OllamaClient(settings.ollama_url, settings.connect_timeout_s, settings.read_timeout_s, settings.parallel)
    node = Node(settings, client, Memory.open(settings.brain_database_url, settings.data_dir))

    async def serve() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await node.run(stop)

    asyncio.run(serve())
    log.info("worker %s stopped", node.id)
    logging.shutdown()
    # A pool thread may sit in a stalled Ollama read for up to OLLAMA_READ_TIMEOUT_S; exiting
    # closes its connection, which is also what tells Ollama to stop generating.
    os._exit(0)


if __name__ == "__main__":
    main()
