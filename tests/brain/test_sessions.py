"""The brain's session queues (brain/sessions.py): one job at a time per session in arrival order,
sessions side by side, stop/reset/revoke/fence of jobs, SESSION_MAX_PENDING, one comment per burst of
app events and one warm-up at a time, nothing new once closing, and no queue kept for an idle
session. The `Runner` runs jobs through a fake engine that holds each until the test lets it go;
the clock is turned by hand."""
import asyncio

import pytest

from brain.engine import Runner
from brain.jobs import DropLastReply, Event, LateResult, StartAfresh, Turn, Warm
from brain.sessions import SessionQueue, Sessions
from shared.messages import AppEvent, Prompt
from tests.brain.test_engine import Clock, drained, until


def turn(reply, text="hi", session="s", **kw):
    return Turn(session, reply, text, message=f"m-{reply}", epoch=kw.pop("epoch", 1), **kw)


def event(id="e1", session="s", epoch=1):
    return Event(AppEvent(session=session, id=id, lines=["added #1 'milk'"], prompt=Prompt("")), message=id, epoch=epoch)


class Engine:
    "Runs each job until the test releases it; records what ran, and in which order."
    def __init__(self):
        self.ran, self.gates, self.free = [], {}, False

    async def run(self, session, job):
        self.ran.append((session, job))
        gate = self.gates[id(job)] = asyncio.Event()
        if not self.free:
            await gate.wait()

    def release(self, job):
        self.gates[id(job)].set()

    def release_all(self):
        self.free = True
        for gate in self.gates.values():
            gate.set()


@pytest.fixture
def world():
    "run(scenario): scenario(sessions, runner, engine, clock) on a loop, with a 1.5 s comment delay and 2 pending at most."
    def go(scenario):
        async def main():
            clock, engine = Clock(), Engine()
            sessions = Sessions(clock.call_later, 1.5, 2)
            runner = Runner(sessions, engine.run)
            await scenario(sessions, runner, engine, clock)
            engine.release_all()
            await until(lambda: not runner.tasks)
        asyncio.run(main())
    return go


# One session's queue: decisions only.

def test_a_chat_turn_takes_the_pending_comment_and_waiting_warm_ups_with_it():
    q, clock = SessionQueue(), Clock()
    q.comment = clock.call_later(1.5, print)
    q.add(Warm("s"))
    q.add(event())
    q.add(turn("r1"))
    assert q.comment is None and clock.timers[0].cancelled
    assert [type(j) for j in q.jobs] == [Event, Turn]


def test_a_comment_turn_leaves_the_warm_ups_and_the_timer_alone():
    q = SessionQueue()
    q.add(Warm("s"))
    q.add(turn("c1", text=None))
    assert [type(j) for j in q.jobs] == [Warm, Turn]


def test_a_turn_or_warm_up_is_running_from_the_moment_it_leaves_the_queue_other_jobs_are_not_listed():
    q = SessionQueue()
    for job in (event(), turn("r1")):
        q.add(job)
    first = q.start_next()
    assert isinstance(first, Event) and q.busy and q.running is None
    assert q.start_next() is None, "one at a time"
    q.finished()
    assert q.start_next().reply == "r1" and q.running.reply == "r1"


def test_stop_hangs_up_on_the_running_reply_and_hands_back_a_waiting_one():
    q = SessionQueue()
    running, waiting = turn("r1"), turn("r2")
    q.add(running)
    q.add(waiting)
    q.start_next()
    assert q.stop("r1") is None and running.control.cancelled
    assert q.stop("r2") is waiting and not q.jobs and not waiting.control.cancelled
    assert q.stop("r3") is None


def test_a_new_chat_drops_what_would_answer_and_keeps_the_rest():
    q, clock = SessionQueue(), Clock()
    running = turn("r1")
    q.add(running)
    q.start_next()
    q.comment = clock.call_later(1.5, print)
    for job in (event(), Warm("s"), turn("r2"), DropLastReply(message="x"), LateResult(None, message="y")):
        q.add(job)
    q.clear()
    assert running.control.cancelled and q.comment is None
    assert [type(j) for j in q.jobs] == [Event, DropLastReply, LateResult]


def test_a_revoked_message_neither_runs_nor_goes_on():
    q = SessionQueue()
    running = turn("r1")
    q.add(running)
    q.start_next()
    q.add(turn("r2"))
    q.add(event("e1"))
    q.drop_caused_by("e1")
    assert [j.message for j in q.jobs] == ["m-r2"] and not running.control.cancelled
    q.drop_caused_by("m-r1")
    assert running.control.cancelled


def test_fencing_keeps_only_the_jobs_of_the_epoch_the_session_is_held_at():
    q, clock = SessionQueue(), Clock()
    running = turn("r1", epoch=1)
    q.add(running)
    q.start_next()
    q.comment = clock.call_later(1.5, print)
    q.add(turn("r2", epoch=1))
    q.add(turn("r3", epoch=2))
    q.keep_epoch(2)
    assert running.control.cancelled and q.comment is None and [j.reply for j in q.jobs] == ["r3"]


def test_replies_and_other_jobs_are_counted_apart():
    q = SessionQueue()
    for job in (turn("r1"), event("e1"), event("e2"), Warm("s")):
        q.add(job)
    assert (q.alike(True), q.alike(False)) == (1, 3)


# The queues, running jobs through the engine.

def test_a_sessions_jobs_run_one_at_a_time_in_order_and_sessions_run_side_by_side(world):
    async def scenario(sessions, runner, engine, clock):
        a1, a2, b1 = turn("a1", session="a"), turn("a2", session="a"), turn("b1", session="b")
        for job in (a1, a2, b1):
            runner.enqueue(job.session, job)
        await until(lambda: len(engine.ran) == 2)
        assert [job.reply for _, job in engine.ran] == ["a1", "b1"]
        assert sessions.making == ["a1", "a2", "b1"] and sessions.busy == 2
        engine.release(a1)
        await until(lambda: len(engine.ran) == 3)
        assert engine.ran[-1][1] is a2
    world(scenario)


def test_an_idle_session_holds_no_queue(world):
    async def scenario(sessions, runner, engine, clock):
        job = event()
        runner.enqueue("s", job)
        await until(lambda: engine.ran)
        assert sessions.active("s")
        engine.release(job)
        await until(lambda: not sessions.active("s"))
        assert sessions.queues == {} and sessions.stop("s", "r1") is None
    world(scenario)


def test_past_the_limit_a_session_admits_no_more_of_a_kind(world):
    async def scenario(sessions, runner, engine, clock):
        assert sessions.admits("s", True, "chat"), "a session with nothing queued"
        for job in (turn("r0"), turn("r1"), turn("r2"), event("e1")):
            runner.enqueue("s", job)
        assert not sessions.admits("s", True, "chat"), "two replies wait"
        assert sessions.admits("s", False, "app_event"), "one other job waits"
        assert sessions.admits("t", True, "chat"), "another session"
    world(scenario)


def test_a_burst_of_app_events_makes_one_comment_once_the_clicking_pauses(world):
    async def scenario(sessions, runner, engine, clock):
        for _ in range(3):
            runner.comment_later("s")
            clock.turn(1.0)
        assert engine.ran == []
        clock.turn(0.5)
        await until(lambda: engine.ran)
        [(_, comment)] = engine.ran
        assert isinstance(comment, Turn) and comment.text is None and comment.reply.startswith("c")
        assert comment.message == "" and comment.epoch is None, "the brain's own: it takes the held copy's epoch"
    world(scenario)


def test_a_chat_turn_cancels_the_comment_due(world):
    async def scenario(sessions, runner, engine, clock):
        runner.comment_later("s")
        runner.enqueue("s", turn("r1"))
        clock.turn(10)
        engine.release_all()  # a comment queued behind r1 would run now
        await drained()
        assert [job.reply for _, job in engine.ran] == ["r1"]
    world(scenario)


def test_one_warm_up_waits_at_a_time(world):
    async def scenario(sessions, runner, engine, clock):
        first = event()
        runner.enqueue("s", first)
        await until(lambda: engine.ran)
        runner.warm("s")
        runner.warm("s")
        assert [type(j) for j in sessions.queues["s"].jobs] == [Warm]
    world(scenario)


def test_reset_drops_the_waiting_replies_and_queues_the_new_chat(world):
    async def scenario(sessions, runner, engine, clock):
        running = turn("r1")
        runner.enqueue("s", running)
        runner.enqueue("s", turn("r2"))
        await until(lambda: engine.ran)
        runner.reset("s", StartAfresh(message="x"))
        assert running.control.cancelled and [type(j) for j in sessions.queues["s"].jobs] == [StartAfresh]
    world(scenario)


def test_revoke_and_fence_leave_no_idle_queue_behind(world):
    async def scenario(sessions, runner, engine, clock):
        runner.comment_later("s")
        sessions.fence("s", 2)
        assert not sessions.active("s")
        runner.comment_later("t")
        sessions.revoke("t", "m-x")
        assert sessions.active("t"), "a comment is still due"
        sessions.revoke("nobody", "m-x")
    world(scenario)


def test_once_closing_the_running_reply_is_cut_off_silently_and_nothing_new_starts(world):
    async def scenario(sessions, runner, engine, clock):
        running, waiting = turn("r1"), turn("r2")
        runner.enqueue("s", running)
        runner.enqueue("s", waiting)
        await until(lambda: engine.ran)
        sessions.close()
        assert running.control.cancelled and running.control.silent
        engine.release(running)
        runner.enqueue("t", turn("t1", session="t"))
        await drained()
        assert [job.reply for _, job in engine.ran] == ["r1"]
    world(scenario)
