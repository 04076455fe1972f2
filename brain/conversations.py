"""The copies of conversations this worker holds, by session, and the one thread that reads and
writes them through brain/memory.py, in order, off the loop (its `Disk`: what is queued at once is
one transaction).

A copy belongs to the epoch it was read for. A job runs on it only while the job is of that epoch;
otherwise the conversation is read again from disk, claiming the new epoch (a session that moved to
another worker and back arrives with everything the other one did). A copy of the job's epoch is
used as it is, with no read on the way to the first token: if another worker has claimed the
session since, its Revoke is on the way, and the store refuses our next save.

Saves are write-behind, from a snapshot, after every change; a reply's end waits for its save
(`stored`), so what the web is told has ended is in the store. A save the store refuses (the session
is held at a newer epoch elsewhere: `Fenced`) has the session fenced on the loop (`fence`), and a
fenced copy is forgotten, never written again. A job the worker runs on trust (brain/jobs.py
`Trust`) holds the session's saves back until its grant (`confirm`); if the web revokes it instead
(`distrust`), the copy, changed only by that job since, is forgotten unsaved. Copies of idle
sessions leave memory once more than MAX_SESSIONS are held, least recently used first: their
conversations are on disk.
"""
import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import replace

from brain.conversation import Conversation
from brain.memory import Fenced, Memory
from shared.lru import LRU

log = logging.getLogger("brain")
MAX_SESSIONS = 1000
STORED_WAIT_S = 5.0  # a save takes milliseconds; a store stuck longer does not hold every reply's end


def _log_failure(future: Future) -> None:
    if future.exception() is not None:
        log.error("saving a conversation failed", exc_info=future.exception())


class Conversations:
    def __init__(self, memory: Memory, disk: Executor, loop: asyncio.AbstractEventLoop,
                 keep: Callable[[str], bool], fenced: Callable[[str, int], None], limit: int = MAX_SESSIONS):
        """`disk` runs one thread, so reads and writes keep their order; `keep(session)`: its copy may
        not leave memory; `fenced(session, epoch)`: what else must stop when a session is fenced."""
        self.memory, self.disk, self.loop, self.fenced = memory, disk, loop, fenced
        self.copies: LRU[str, Conversation] = LRU(limit, evictable=lambda session, _: not keep(session),
                                                  evicted=lambda session, _: self._let_go(session))
        self.on_trust: dict[str, set[str]] = {}  # by session: the messages whose jobs run before their grant
        self.held_back: dict[str, bool] = {}  # by session: a save waits for those grants (whether afresh)
        self.released: dict[str, list[asyncio.Future]] = {}  # by session: who waits for the held-back save (`stored`)

    def held(self, session: str) -> Conversation | None:
        return self.copies.peek(session)

    async def get(self, session: str, epoch: int | None = None) -> Conversation:
        "The session's conversation under `epoch` (None: as held), read from disk unless our copy is of that epoch."
        held = self.copies.get(session)
        if held is None or (epoch is not None and held.epoch != epoch):
            loaded = await self.loop.run_in_executor(self.disk, self.memory.load, session, epoch)
            return self.copies.put(session, loaded)
        return held

    def replace(self, session: str, conversation: Conversation) -> None:
        self.copies.put(session, conversation)

    def trust(self, session: str, message: str) -> None:
        "A job of `message` runs on trust (brain/jobs.py `Trust`): the session's saves wait for its grant."
        self.on_trust.setdefault(session, set()).add(message)

    def confirm(self, session: str, message: str) -> None:
        "The web granted `message`: once nothing else runs on trust, what waited is saved."
        waiting = self.on_trust.get(session, set())
        waiting.discard(message)
        if not waiting:
            self.on_trust.pop(session, None)
            if session in self.held_back:
                future = self.save(session, self.held_back.pop(session))
                self._release(session, future)

    def distrust(self, session: str, message: str) -> None:
        "The web revoked `message`, which ran on trust: what it changed is dropped with the copy."
        if message in self.on_trust.get(session, ()):
            self.forget(session)

    async def stored(self, session: str) -> bool:
        """Save, and wait until the store has committed it (a save held back for a grant: until the
        grant writes it): what the web is told next (a reply's end) then outlives this worker.
        False when nothing of ours will be written (the store refused it, or the copy was dropped:
        the session is held elsewhere now, or its job was revoked): nothing more may be said for it."""
        try:
            return await asyncio.wait_for(self._written(session), STORED_WAIT_S)
        except TimeoutError:
            log.warning("session %s: the conversation store has not taken a save in %g s; the reply's end goes out "
                        "before it is stored", session[:8], STORED_WAIT_S)
            return True

    async def _written(self, session: str) -> bool:
        future = self.save(session)
        if future is None and session in self.on_trust:
            released = self.loop.create_future()
            self.released.setdefault(session, []).append(released)
            future = await released  # the save the grant makes, or None when a revoke drops the copy
        if future is None:
            return False
        try:
            await asyncio.shield(asyncio.wrap_future(future))  # a wait given up on must not cancel the save itself
        except Fenced:
            return False
        except Exception:  # noqa: BLE001 - the save's callback logs it; the reply is made and goes out all the same
            pass
        return True

    def _release(self, session: str, future: Future | None) -> None:
        "What waits for the session's held-back save learns whether it is written (its future) or dropped (None)."
        for released in self.released.pop(session, ()):
            if not released.done():
                released.set_result(future)

    def save(self, session: str, afresh: bool = False) -> Future | None:
        "Write a snapshot of the copy behind; its future, or None when nothing is written now."
        c = self.copies.peek(session)
        if c is None:
            return None  # fenced: no copy of ours is written any more
        if session in self.on_trust:
            self.held_back[session] = self.held_back.get(session, False) or afresh
            return None
        snapshot = replace(c, turns=list(c.turns), unseen=list(c.unseen), handled=list(c.handled))

        def saved(future: Future) -> None:
            if isinstance(future.exception(), Fenced):
                self.loop.call_soon_threadsafe(self.fence, session, future.exception().stored)
            else:
                _log_failure(future)

        future = self.disk.submit(self.memory.save, session, snapshot, afresh)
        future.add_done_callback(saved)
        return future

    def fence(self, session: str, epoch: int) -> None:
        """The session is held at `epoch` now, elsewhere or here anew: our copy is forgotten (it is
        read again if the session returns), and what runs for it under an older epoch stops."""
        log.warning("session %s is held at epoch %d elsewhere now; dropping this worker's copy", session[:8], epoch)
        self.forget(session)
        self.fenced(session, epoch)

    def forget(self, session: str) -> None:
        "Drop our copy, and any save it held back: it is read again if the session comes back."
        self.on_trust.pop(session, None)
        self.held_back.pop(session, None)
        self._release(session, None)
        if self.copies.pop(session) is not None:
            self._let_go(session)

    def close(self) -> None:
        "Finish writing: what the conversations learned is on disk before the worker goes."
        self.disk.shutdown(wait=True)

    def _let_go(self, session: str) -> None:
        self.disk.submit(self.memory.evict, session).add_done_callback(_log_failure)
