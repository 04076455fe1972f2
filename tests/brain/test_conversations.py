"""The brain's cache of conversations (brain/conversations.py) over a fake store that keeps epochs
as brain/memory.py does: a copy is read again for another epoch and used as it is for its own, saves
are snapshots written in order on the one disk thread (brain/memory.py), a save the store refuses
fences the session on the loop, a job run on trust holds the saves back until its grant (and its
revoke drops the copy), a forgotten copy is never written, and idle sessions' copies leave memory
first."""
import asyncio
import threading
from contextlib import nullcontext

import pytest

from brain.conversation import Conversation
from brain.conversations import Conversations
from brain.memory import Disk, Fenced


class Store:
    "Epochs by session, as the store keeps them; what was asked of it, in order, and on which thread."
    def __init__(self):
        self.epochs, self.calls, self.saved, self.threads = {}, [], {}, set()

    def _did(self, *call):
        self.calls.append(call)
        self.threads.add(threading.current_thread().name)

    def load(self, session, epoch=None):
        self._did("load", session, epoch)
        stored = self.epochs.get(session, 0)
        if epoch is not None and stored > epoch:
            raise Fenced(session, epoch, stored)
        self.epochs[session] = stored if epoch is None else epoch
        return Conversation(epoch=self.epochs[session])

    def save(self, session, conversation, afresh=False):
        self._did("save", session, afresh)
        if self.epochs.get(session, 0) > conversation.epoch:
            raise Fenced(session, conversation.epoch, self.epochs[session])
        self.saved[session] = conversation

    def evict(self, session):
        self._did("evict", session)

    def batch(self):
        return nullcontext()


@pytest.fixture
def cache():
    "run(scenario): scenario(conversations, store, fenced, busy) on a loop; `busy` holds the sessions with work."
    def go(scenario, limit=1000):
        async def main():
            store, fenced, busy = Store(), [], set()
            disk = Disk(store.batch)
            conversations = Conversations(store, disk, asyncio.get_running_loop(), keep=busy.__contains__,
                                          fenced=lambda session, epoch: fenced.append((session, epoch)), limit=limit)
            try:
                await scenario(conversations, store, fenced, busy)
            finally:
                conversations.close()
        asyncio.run(main())
    return go


async def drained(conversations):
    "Everything submitted to the disk thread so far is done, and its callbacks have run."
    await asyncio.get_running_loop().run_in_executor(conversations.disk, lambda: None)
    await asyncio.sleep(0)


def test_a_copy_is_read_for_its_epoch_then_used_as_it_is_and_read_again_for_another(cache):
    async def scenario(conversations, store, fenced, busy):
        first = await conversations.get("s", 1)
        assert await conversations.get("s", 1) is first
        assert await conversations.get("s") is first, "a job of the brain's own takes the copy as held"
        again = await conversations.get("s", 2)
        assert again is not first and again.epoch == 2
        assert store.calls == [("load", "s", 1), ("load", "s", 2)], "no read on the way to a job of the copy's epoch"
        assert store.threads == {"memory"}
    cache(scenario)


def test_saves_wait_for_the_grant_of_a_job_run_on_trust_then_one_save_writes_them(cache):
    async def scenario(conversations, store, fenced, busy):
        c = await conversations.get("s", 1)
        conversations.trust("s", "m1")
        conversations.trust("s", "m2")
        c.turns.append({"role": "user", "content": "one"})
        conversations.save("s", afresh=True)
        conversations.save("s")
        conversations.confirm("s", "m1")
        await drained(conversations)
        assert "s" not in store.saved, "m2 still runs on trust"
        conversations.confirm("s", "m2")
        await drained(conversations)
        assert store.saved["s"].turns == [{"role": "user", "content": "one"}]
        assert [call for call in store.calls if call[0] == "save"] == [("save", "s", True)], "once, afresh kept"
        conversations.confirm("s", "m3")  # a grant with nothing held back saves nothing
        await drained(conversations)
        assert len([call for call in store.calls if call[0] == "save"]) == 1
    cache(scenario)


def test_a_revoke_of_a_job_run_on_trust_drops_the_copy_unsaved(cache):
    async def scenario(conversations, store, fenced, busy):
        c = await conversations.get("s", 1)
        c.turns.append({"role": "user", "content": "saved before"})
        conversations.save("s")
        conversations.distrust("s", "m0")  # not on trust: nothing happens
        assert conversations.held("s") is c
        conversations.trust("s", "m1")
        c.turns.append({"role": "user", "content": "on trust"})
        conversations.save("s")
        conversations.distrust("s", "m1")
        await drained(conversations)
        assert conversations.held("s") is None and "s" not in conversations.on_trust
        assert [t["content"] for t in store.saved["s"].turns] == ["saved before"]
        again = await conversations.get("s", 1)
        conversations.save("s")  # nothing runs on trust any more: written at once
        await drained(conversations)
        assert again is not c and [call[0] for call in store.calls].count("save") == 2
    cache(scenario)


def test_a_save_writes_a_snapshot_of_the_copy_as_it_was(cache):
    async def scenario(conversations, store, fenced, busy):
        c = await conversations.get("s", 1)
        c.turns.append({"role": "user", "content": "one"})
        conversations.save("s")
        c.turns.append({"role": "assistant", "content": "changed after the save"})
        await drained(conversations)
        assert store.saved["s"].turns == [{"role": "user", "content": "one"}]
        conversations.save("s", afresh=True)
        await drained(conversations)
        assert store.calls[-1] == ("save", "s", True)
    cache(scenario)


def test_a_save_the_store_refuses_fences_the_session_on_the_loop(cache):
    async def scenario(conversations, store, fenced, busy):
        c = await conversations.get("s", 1)
        store.epochs["s"] = 3  # another worker claimed it; its revoke is on the way
        assert await conversations.get("s", 1) is c, "no read on the way: the next save finds out"
        c.turns.append({"role": "user", "content": "one"})
        conversations.save("s")
        await drained(conversations)
        assert fenced == [("s", 3)] and "s" not in store.saved
    cache(scenario)


def test_stored_returns_once_the_save_is_on_disk_and_false_when_the_store_refused_it(cache):
    async def scenario(conversations, store, fenced, busy):
        c = await conversations.get("s", 1)
        c.turns.append({"role": "assistant", "content": "the whole reply"})
        writing, written = threading.Event(), threading.Event()
        save = store.save

        def slow(*args):
            writing.set()
            written.wait(5)
            save(*args)
        store.save = slow
        waiter = asyncio.ensure_future(conversations.stored("s"))
        await asyncio.get_running_loop().run_in_executor(None, writing.wait, 5)
        await asyncio.sleep(0.05)
        assert not waiter.done(), "the save is not on disk yet"
        written.set()
        assert await waiter is True and store.saved["s"].turns == c.turns
        store.save = save
        store.epochs["s"] = 3  # another worker claimed it
        assert await conversations.stored("s") is False
        await asyncio.sleep(0)
        assert fenced == [("s", 3)]
        assert await conversations.stored("s") is False, "no copy of ours any more"
    cache(scenario)


def test_stored_gives_up_waiting_for_a_stuck_store_and_the_save_still_happens(cache, monkeypatch, caplog):
    monkeypatch.setattr("brain.conversations.STORED_WAIT_S", 0.05)

    async def scenario(conversations, store, fenced, busy):
        c = await conversations.get("s", 1)
        writing, stuck, save = threading.Event(), threading.Event(), store.save

        def hangs(*args):
            writing.set()
            stuck.wait(5)
            save(*args)
        store.save = hangs
        conversations.save("s")  # the store hangs on it; the next save waits in line behind it
        await asyncio.get_running_loop().run_in_executor(None, writing.wait, 5)
        c.turns.append({"role": "assistant", "content": "the whole reply"})
        assert await conversations.stored("s") is True, "the reply's end is not held for ever"
        assert "has not taken a save in 0.05 s" in caplog.text
        stuck.set()
        await drained(conversations)
        assert store.saved["s"].turns == c.turns, "the save was not given up with the wait"
    cache(scenario)


def test_stored_waits_for_the_grant_of_a_job_run_on_trust_and_is_false_when_it_is_revoked(cache):
    async def scenario(conversations, store, fenced, busy):
        c = await conversations.get("s", 1)
        conversations.trust("s", "m1")
        c.turns.append({"role": "assistant", "content": "the whole reply"})
        waiter = asyncio.ensure_future(conversations.stored("s"))
        await asyncio.sleep(0.05)
        assert not waiter.done() and "s" not in store.saved, "held back until the grant"
        conversations.confirm("s", "m1")
        assert await waiter is True and store.saved["s"].turns == c.turns

        conversations.trust("s", "m2")
        waiter = asyncio.ensure_future(conversations.stored("s"))
        await asyncio.sleep(0.05)
        conversations.distrust("s", "m2")  # revoked: the copy goes unsaved
        assert await waiter is False
    cache(scenario)


def test_a_forgotten_copy_is_let_go_and_never_written_again(cache):
    async def scenario(conversations, store, fenced, busy):
        await conversations.get("s", 1)
        conversations.forget("s")
        conversations.save("s")
        conversations.forget("s")
        await drained(conversations)
        assert conversations.held("s") is None
        assert [c for c in store.calls if c[0] != "load"] == [("evict", "s")], "no save; let go once"
    cache(scenario)


def test_a_new_chat_replaces_the_copy(cache):
    async def scenario(conversations, store, fenced, busy):
        old = await conversations.get("s", 1)
        conversations.replace("s", Conversation(epoch=old.epoch, state="kept"))
        assert conversations.held("s") is not old and conversations.held("s").state == "kept"
    cache(scenario)


def test_past_the_limit_idle_sessions_leave_memory_least_recently_used_first(cache):
    async def scenario(conversations, store, fenced, busy):
        busy.add("a")
        for session in ("a", "b", "c"):
            await conversations.get(session, 1)
        await conversations.get("b")  # used again: c is now the least recently used idle one
        await conversations.get("d", 1)
        await drained(conversations)
        assert sorted(conversations.copies) == ["a", "b", "d"], "a has work; c was idle longest"
        assert ("evict", "c") in store.calls
    cache(scenario, limit=3)


def test_closing_finishes_the_writes_first(cache):
    async def scenario(conversations, store, fenced, busy):
        gate = threading.Event()
        save = store.save
        store.save = lambda *args: (gate.wait(5), save(*args))
        await conversations.get("s", 1)
        conversations.save("s")
        threading.Timer(0.05, gate.set).start()
        conversations.close()
        assert "s" in store.saved
    cache(scenario)
