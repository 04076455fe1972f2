"""The conversation store (brain/memory.py), run against SQLite and PostgreSQL alike: what a
conversation keeps, appends and drops, and the fencing by epoch that gives every brain one truth.
Its disk thread (`Disk`): operations run in the order submitted, what is queued when it wakes runs
as one batch, one that raises fails only its own future, a batch whose commit fails fails them all,
futures settle after the commit, and shutdown finishes the queue."""
import asyncio
import sqlite3
import threading
from contextlib import contextmanager

import pytest

from brain.conversation import Conversation
from brain.memory import Disk, Fenced, Memory
from shared.messages import Prompt
from tests.fake_app import PROMPT


def test_every_field_comes_back_and_saves_write_only_what_changed(memories):
    memory = memories()
    c = memory.load("s", 1)
    c.turns += [{"role": "user", "content": "hi\x00 there"}, {"role": "assistant", "content": "",
                                                              "tool_calls": [{"id": "call_1", "function": {"index": 0, "name": "add_todo", "arguments": {"title": "milk"}}}]},
                {"role": "tool", "tool_name": "add_todo", "content": "Added #1 'milk'."}]
    c.state, c.told, c.unseen = "The list: milk, eggs", "The list: milk", ["added #2 'eggs'", "opened the export"]
    c.prompt = PROMPT
    c.first, c.tokens_per_char, c.model, c.tools_off = 1, 0.27, "qwen3:4b", True
    assert c.take("r1") and not c.take("r1")
    memory.save("s", c)
    c.add_reply("second save appends")
    memory.save("s", c)
    back = memories().load("s", 1)
    assert back.turns == [{"role": "user", "content": "hi there"}, *c.turns[1:]], "NUL is kept by neither store"
    assert (back.state, back.told, back.unseen, back.prompt) == (c.state, c.told, c.unseen, PROMPT)
    assert (back.first, back.tokens_per_char, back.model, back.tools_off, back.handled, back.epoch) == (1, 0.27, "qwen3:4b", True, ["r1"], 1)


def test_a_state_never_told_comes_back_as_none_not_as_empty(memories):
    "told None means the model must be told the state whole: a round trip may not turn it into \"\"."
    memory = memories()
    c = memory.load("s", 1)
    c.state = "The list: milk"
    memory.save("s", c)
    back = memories().load("s", 1)
    assert (back.state, back.told, back.prompt) == ("The list: milk", None, Prompt(""))
    assert memories().load("other", 1).state is None, "a session never seen has no state"


def test_a_regenerate_drops_the_newest_turns_and_a_new_chat_replaces_them_all(memories):
    memory = memories()
    c = memory.load("s", 1)
    for i in range(3):
        c.turns += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    memory.save("s", c)
    c.drop_last_reply()
    c.add_reply("a2 again")
    memory.save("s", c)
    assert [t["content"] for t in memories().load("s").turns] == ["q0", "a0", "q1", "a1", "q2", "a2 again"]
    fresh = Conversation(state=c.state, epoch=1)
    fresh.turns.append({"role": "user", "content": "new chat"})
    memory.save("s", fresh, afresh=True)
    assert [t["content"] for t in memories().load("s").turns] == ["new chat"]


def test_a_newer_claim_fences_the_older_copy_for_reading_and_saving(memories):
    first, second = memories(), memories()
    mine = first.load("s", 10)
    mine.turns.append({"role": "user", "content": "one"})
    first.save("s", mine)
    theirs = second.load("s", 11)
    assert theirs.turns == mine.turns and theirs.epoch == 11
    mine.add_reply("late")
    with pytest.raises(Fenced):
        first.save("s", mine)
    with pytest.raises(Fenced):
        first.load("s", 10)
    assert [t["content"] for t in second.load("s", 11).turns] == ["one"], "the fenced save wrote nothing"
    assert first.load("s", 12).epoch == 12, "a newer assignment may claim it"


def test_two_brains_claiming_at_once_leave_the_newest_epoch_and_every_save_of_the_others_refused(memories):
    brains = [memories() for _ in range(4)]
    copies, errors = {}, []

    def claim(i):
        try:
            copies[i] = brains[i].load("s", 100 + i)
        except Fenced:
            copies[i] = None
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    saved = []
    for i, copy in copies.items():
        if copy is None:
            continue
        copy.turns.append({"role": "user", "content": f"from {i}"})
        try:
            brains[i].save("s", copy)
            saved.append(i)
        except Fenced:
            pass
    assert saved == [3], "only the newest claim may write"
    assert memories().load("s").epoch == 103


def test_an_older_sqlite_brain_db_gains_the_new_columns_and_keeps_its_turns(tmp_path):
    db = sqlite3.connect(tmp_path / "brain.db")
    db.execute("create table turns (id integer primary key, session text, role text, content text, extra text)")
    db.execute("create table states (session text primary key, todos text, unseen text, told text, first integer, "
               "tokens_per_char float, model text, tools_off integer)")
    db.execute("insert into turns (session, role, content, extra) values ('s', 'user', 'kept', '')")
    db.execute("""insert into states values ('s', '[{"id": 1, "title": "milk", "done": false}]',
                  '[{"action": "added", "todo": {"id": 1, "title": "milk", "done": false}}]', '[]', 0, 0.3, '', 0)""")
    db.commit()
    db.close()
    c = Memory.open("", tmp_path).load("s", 5)
    assert c.turns == [{"role": "user", "content": "kept"}] and c.epoch == 5 and c.handled == []
    assert (c.state, c.told, c.unseen) == (None, None, []), "the old app's state is left unread, events of an older shape too"


def test_an_unreachable_postgresql_stops_the_brain_with_where_and_why_and_no_password():
    from brain.memory import StoreUnavailable
    from tests.system import free_port

    port = free_port()
    with pytest.raises(StoreUnavailable) as e:
        Memory.open(f"postgresql://todo:sekret@127.0.0.1:{port}/todo", ".")
    assert f"database todo on 127.0.0.1:{port}" in str(e.value) and "refused" in str(e.value)
    assert "sekret" not in str(e.value)


def stored_turns(memory, session):
    "The session's turns as committed, read outside any transaction, so an open one never blocks it."
    return [row[0] for row in memory.db.execute("select content from turns where session = ? order by id", [session])]


def test_a_batch_commits_the_loads_and_saves_of_several_sessions_together(memories):
    memory, other = memories(), memories()
    with memory.batch():
        for session in ("a", "b", "c"):
            c = memory.load(session, 1)
            c.turns.append({"role": "user", "content": f"to {session}"})
            memory.save(session, c)
            assert memory.load(session, 1).turns == c.turns, "a load after a save in the batch sees it"
        assert [stored_turns(other, s) for s in "abc"] == [[], [], []], "nothing is committed before the batch is"
    assert [stored_turns(other, s) for s in "abc"] == [["to a"], ["to b"], ["to c"]]
    c.add_reply("out of a batch")
    memory.save("c", c)  # a transaction of its own again: committed at once
    assert stored_turns(other, "c") == ["to c", "out of a batch"]


def test_a_fenced_save_in_a_batch_writes_nothing_for_its_session_and_the_others_commit(memories):
    first, second = memories(), memories()
    mine = first.load("s", 10)
    mine.turns.append({"role": "user", "content": "one"})
    first.save("s", mine)
    second.load("s", 11)
    with first.batch():
        kept = first.load("t", 1)
        kept.turns.append({"role": "user", "content": "kept"})
        mine.add_reply("late")
        with pytest.raises(Fenced):
            first.save("s", mine)
        first.save("t", kept)
    assert stored_turns(second, "s") == ["one"] and stored_turns(second, "t") == ["kept"]
    assert first.saved["s"] == [("user", "one", "")], "what is stored is still known: nothing was written"


def test_an_error_halfway_through_a_save_in_a_batch_undoes_that_save_alone(memories, monkeypatch):
    memory = memories()
    c = memory.load("s", 1)
    c.turns.append({"role": "user", "content": "old chat"})
    memory.save("s", c)
    with memory.batch():
        other = memory.load("t", 1)
        other.turns.append({"role": "user", "content": "kept"})
        memory.save("t", other)
        fresh = Conversation(epoch=1, turns=[{"role": "user", "content": "new chat"}])
        with monkeypatch.context() as m:
            m.setattr(memory.db, "executemany", lambda *args: 1 / 0)  # after the afresh delete
            with pytest.raises(ZeroDivisionError):
                memory.save("s", fresh, afresh=True)
    assert stored_turns(memories(), "s") == ["old chat"] and stored_turns(memories(), "t") == ["kept"]


def test_a_batch_that_does_not_commit_leaves_the_next_save_writing_the_session_whole(memories):
    memory = memories()
    c = memory.load("s", 1)
    c.turns.append({"role": "user", "content": "one"})
    memory.save("s", c)
    with pytest.raises(RuntimeError):
        with memory.batch():
            c.add_reply("two")
            memory.save("s", c)
            raise RuntimeError("the commit failed")
    assert stored_turns(memories(), "s") == ["one"]
    memory.save("s", c)
    assert stored_turns(memories(), "s") == ["one", "two"], "neither lost nor written twice"


def test_the_disk_thread_runs_a_queue_on_the_store_as_one_batch_where_a_fenced_save_fails_alone(memories):
    first, second = memories(), memories()
    mine = first.load("s", 10)
    second.load("s", 11)
    batches = []
    disk = Disk(lambda: (batches.append("batch"), first.batch())[1])
    started, gate = threading.Event(), threading.Event()
    disk.submit(lambda: (started.set(), gate.wait(5)))
    assert started.wait(5)  # all that follows is queued behind it
    loads = [disk.submit(first.load, f"n{i}", 1) for i in range(20)]
    mine.add_reply("late")
    fenced = disk.submit(first.save, "s", mine)
    saves = [disk.submit(first.save, f"n{i}", Conversation(epoch=1, turns=[{"role": "user", "content": f"q{i}"}]))
             for i in range(20)]
    gate.set()
    disk.shutdown(wait=True)
    assert all(f.exception() is None for f in loads + saves) and isinstance(fenced.exception(), Fenced)
    assert [stored_turns(second, f"n{i}") for i in range(20)] == [[f"q{i}"] for i in range(20)]
    assert stored_turns(second, "s") == [] and second.load("n3").epoch == 1
    assert len(batches) == 2, "the first operation, then the 41 queued behind it"


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
