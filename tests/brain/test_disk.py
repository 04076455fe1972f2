"""The brain's disk thread (brain/disk.py): operations run in the order submitted, what is queued
when it wakes runs as one batch, one that raises fails only its own future, a batch whose commit
fails fails them all, futures settle after the commit, and shutdown finishes the queue."""
import asyncio
import threading
from contextlib import contextmanager

import pytest

from brain.disk import Disk


class Batches:
    "A fake store's batch(): the operations run in each, and whether the batch is open."
    def __init__(self, fail_commit=False):
        self.runs, self.open, self.fail_commit = [], False, fail_commit

    @contextmanager
    def batch(self):
        self.runs.append([])
        self.open = True
        try:
            yield
        finally:
            self.open = False
        if self.fail_commit:
            raise OSError("the commit failed")

    def op(self, name, result=None):
        self.runs[-1].append(name)
        return result


def blocked(disk, batches):
    "The disk thread held in a first operation until the returned event is set."
    started, gate = threading.Event(), threading.Event()
    disk.submit(lambda: (started.set(), gate.wait(5), batches.op("first")))
    assert started.wait(5)
    return gate


def test_operations_run_in_the_order_submitted_from_several_threads():
    batches, ran, order, lock = Batches(), [], [], threading.Lock()
    disk = Disk(batches.batch, limit=7)

    def submitter(t):
        for i in range(300):
            with lock:  # what was submitted first is known: it must also run first
                order.append((t, i))
                disk.submit(ran.append, (t, i))

    threads = [threading.Thread(target=submitter, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    disk.shutdown(wait=True)
    assert ran == order and len(ran) == 1200
    assert all(len(run) <= 7 for run in batches.runs)


def test_what_is_queued_while_the_thread_works_runs_as_one_batch_after_which_the_futures_settle():
    batches = Batches()
    disk = Disk(batches.batch)
    gate = blocked(disk, batches)
    settled_open = []
    futures = [disk.submit(batches.op, i, result=i * i) for i in range(50)]
    for future in futures:
        future.add_done_callback(lambda _: settled_open.append(batches.open))
    gate.set()
    assert [f.result(5) for f in futures] == [i * i for i in range(50)]
    assert batches.runs == [["first"], list(range(50))]
    assert settled_open == [False] * 50, "a future settles only once its batch is committed"
    disk.shutdown()


def test_a_batch_takes_at_most_its_limit_and_the_rest_follow_in_order():
    batches = Batches()
    disk = Disk(batches.batch, limit=20)
    gate = blocked(disk, batches)
    futures = [disk.submit(batches.op, i) for i in range(50)]
    gate.set()
    for future in futures:
        future.result(5)
    assert batches.runs == [["first"], list(range(20)), list(range(20, 40)), list(range(40, 50))]
    disk.shutdown()


def test_an_operation_that_raises_fails_only_its_own_future():
    batches = Batches()
    disk = Disk(batches.batch)
    gate = blocked(disk, batches)

    def refused():
        batches.op("refused")
        raise LookupError("fenced")

    before, failed, after = disk.submit(batches.op, "a", "A"), disk.submit(refused), disk.submit(batches.op, "b", "B")
    gate.set()
    assert (before.result(5), after.result(5)) == ("A", "B")
    with pytest.raises(LookupError):
        failed.result(5)
    assert batches.runs == [["first"], ["a", "refused", "b"]]
    disk.shutdown()


def test_a_batch_whose_commit_fails_fails_every_future_in_it_and_the_thread_goes_on():
    batches = Batches(fail_commit=True)
    disk = Disk(batches.batch)
    gate = blocked(disk, batches)
    futures = [disk.submit(batches.op, i, result=i) for i in range(3)]
    gate.set()
    for future in futures:
        with pytest.raises(OSError, match="the commit failed"):
            future.result(5)
    batches.fail_commit = False
    assert disk.submit(batches.op, "later", "ok").result(5) == "ok"
    disk.shutdown()


def test_shutdown_finishes_what_is_queued_then_refuses_more():
    batches = Batches()
    disk = Disk(batches.batch)
    gate = blocked(disk, batches)
    futures = [disk.submit(batches.op, i) for i in range(10)]
    threading.Timer(0.05, gate.set).start()
    disk.shutdown(wait=True)
    assert all(f.done() and f.exception() is None for f in futures)
    assert [op for run in batches.runs for op in run] == ["first", *range(10)]
    with pytest.raises(RuntimeError):
        disk.submit(batches.op, "late")


def test_the_loop_runs_work_on_it_and_a_cancelled_wait_skips_what_had_not_started():
    batches = Batches()
    disk = Disk(batches.batch, name="memory")

    async def main():
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(disk, threading.current_thread) is disk.thread
        gate = blocked(disk, batches)
        waiting = asyncio.ensure_future(loop.run_in_executor(disk, batches.op, "never"))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.sleep(0)  # the cancel reaches the disk's future
        gate.set()
        assert await loop.run_in_executor(disk, batches.op, "after", "done") == "done"

    asyncio.run(main())
    assert disk.thread.name == "memory" and "never" not in [op for run in batches.runs for op in run]
    disk.shutdown()
