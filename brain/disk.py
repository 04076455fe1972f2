"""The brain's one disk thread: every read and write of a conversation runs on it, in the order
asked, so a load after a save of the same session sees the save.

What is queued when the thread wakes runs as one batch (`batch()`, brain/memory.py: one
transaction, each operation in a savepoint of its own), so a hundred sessions asking at once cost
one commit, not a hundred queued one after another. An operation that raises fails only its own
future; a batch whose commit fails fails them all. A future is settled once its batch has
committed: when its callbacks run, what it did is on disk.
"""
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from contextlib import AbstractContextManager

MAX_BATCH = 200  # bounds how long the first in a batch waits for the rest, and how long the store is held


class Disk(Executor):
    def __init__(self, batch: Callable[[], AbstractContextManager], name: str = "memory", limit: int = MAX_BATCH):
        self.batch, self.limit = batch, limit
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.closed, self.lock = False, threading.Lock()
        # A daemon, so a process that never shuts it down still exits; the worker does, to finish the queue.
        self.thread = threading.Thread(target=self._work, name=name, daemon=True)
        self.thread.start()

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future = Future()
        with self.lock:  # nothing may be queued behind the sentinel that stops the thread
            if self.closed:
                raise RuntimeError("cannot schedule new futures after shutdown")
            self.queue.put((future, fn, args, kwargs))
        return future

    def shutdown(self, wait: bool = True) -> None:
        "What is queued still runs; `wait`: until it has."
        with self.lock:
            if not self.closed:
                self.closed = True
                self.queue.put(None)
        if wait:
            self.thread.join()

    def _work(self) -> None:
        while True:
            jobs = [self.queue.get()]
            while len(jobs) < self.limit and not self.queue.empty():
                jobs.append(self.queue.get_nowait())
            stop = jobs[-1] is None  # the sentinel is always the last thing queued
            self._run([job for job in jobs if job is not None and job[0].set_running_or_notify_cancel()])
            if stop:
                return

    def _run(self, jobs: list[tuple]) -> None:
        if not jobs:
            return
        outcomes = []
        try:
            with self.batch():
                for future, fn, args, kwargs in jobs:
                    try:
                        outcomes.append((future.set_result, fn(*args, **kwargs)))
                    except BaseException as e:  # noqa: BLE001 - its future tells, as a ThreadPoolExecutor's would
                        outcomes.append((future.set_exception, e))
        except BaseException as e:  # noqa: BLE001 - the commit failed: nothing of the batch is known to be on disk
            for future, *_ in jobs:
                future.set_exception(e)
            return
        for settle, value in outcomes:
            settle(value)
