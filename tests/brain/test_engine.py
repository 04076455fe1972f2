"""The brain's session engine (brain/engine.py), wired with its pieces as the worker wires it
(brain/ollama_worker.py), with a scripted Ollama, a hand-turned clock and real memory (SQLite and
PostgreSQL): stop, new chat, regenerate, coalesced comments, waiting for Ollama, a request Ollama drops
asked again a bounded number of times, replies bounded in tokens and in time, eviction, and one
truth per session when a session moves between workers (epochs). The engine knows no app: it is
driven with a fake app's events, prompt and tool results (tests/fake_app.py)."""
import asyncio
import logging
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from hypothesis import given, strategies as st

from apps.todo.store import Todo
from brain.asking import RETRY_DELAYS_S
from brain.conversations import MAX_SESSIONS
from brain.jobs import Event, LateResult, Trust, Turn, Warm
from brain.memory import Disk
from brain.ollama_client import Delta, HungUp, NoAnswer, OllamaFailed, OllamaUnavailable, Unsendable
from brain.ollama_worker import Runtime, wire_engine
from brain.outlet import Window
from shared.config import Settings
from shared.messages import (AppEvent, CallTool, Chat, Chunk, Done, Failed, FailCode, Note, Prompt, Reach, Regenerate,
                             Reset, Resume, Revoke, Stats, Stop, ToolResult, Waiting)
from tests.fake_app import PROMPT, SYSTEM, TOOLS, Web, stated, tool
from tests.replay import known_list
from tests.strategies import any_text


class ScriptedOllama:
    """Answers each chat with the next script: a list of words, or an exception to raise before
    the first byte. `hold` keeps a stream open after its first word until the request is hung up
    (`holding`: the hangups of the streams held so). As Ollama, it stops at `num_predict` words,
    saying "length"."""

    def __init__(self):
        self.scripts, self.asked, self.hold, self.holding = [], [], False, []

    def chat(self, model, messages, *, options=None, tools=None, keep_alive=None, hangup=None, format=None):
        self.asked.append({"model": model, "messages": messages, "options": options, "tools": tools, "format": format})
        script = self.scripts.pop(0) if self.scripts and (options or {}).get("num_predict") != 1 else ["ok"]
        if isinstance(script, Exception):
            raise script
        limit = (options or {}).get("num_predict") or len(script)
        for i, word in enumerate(script[:limit]):
            yield Delta(word)
            if self.hold and i == 0:
                self.holding.append(hangup)
                try:
                    while self.hold:
                        if hangup.fired:
                            raise HungUp("hung up")
                        threading.Event().wait(0.01)
                finally:
                    self.holding.remove(hangup)
        yield Stats(done_reason="length" if len(script) > limit else "stop", eval_count=min(len(script), limit))

    def replies(self):
        return [a for a in self.asked if (a["options"] or {}).get("num_predict") != 1]

    def show(self, model):
        "As Ollama describes llama3.2: too large for MODEL_TOOL_MODE=auto to decide for it."
        return {"details": {"family": "llama", "parameter_size": "3.2B"}}


class Watch:
    "Ollama's reach as the watch knows it; `finds` is what its next checks find."
    def __init__(self):
        self.reach, self.up, self.finds, self.checks = Reach.UP, asyncio.Event(), Reach.UP, 0
        self.up.set()

    async def confirm(self):
        self.checks += 1
        if self.finds is Reach.DOWN:
            self.reach = Reach.DOWN
            self.up.clear()
        return self.reach

    def back(self):
        self.reach = Reach.UP
        self.up.set()


class Clock:
    "call_later by hand: `turn(seconds)` runs what fell due."

    def __init__(self):
        self.now, self.timers = 0.0, []

    def call_later(self, delay, fn, *args):
        timer = Timer(self.now + delay, fn, args)
        self.timers.append(timer)
        return timer

    def turn(self, seconds):
        self.now += seconds
        for t in [t for t in self.timers if t.due <= self.now and not t.cancelled]:
            self.timers.remove(t)
            t.fn(*t.args)


class Timer:
    def __init__(self, due, fn, args):
        self.due, self.fn, self.args, self.cancelled = due, fn, args, False

    def cancel(self):
        self.cancelled = True


class Threads:
    """What an engine hands its threads, for `quiet`: each future the loop awaits from one (a stream
    or a look at a model on the Ollama pool, a read on the disk thread), and a count of everything
    handed over (the disk's writes too)."""

    def __init__(self, loop, disk):
        self.awaited, self.handed, self.disk, self.submit = [], 0, disk, disk.submit
        run_in_executor = loop.run_in_executor

        def handing(executor, fn, *args):
            self.handed += 1
            future = run_in_executor(executor, fn, *args)
            self.awaited.append(future)
            return future

        def writing(fn, /, *args, **kwargs):
            self.handed += 1
            return self.submit(fn, *args, **kwargs)
        loop.run_in_executor, disk.submit = handing, writing

    def running(self) -> int:
        return sum(not f.done() for f in self.awaited)

    async def written(self) -> None:
        "Until what the disk thread was given is done and its results are back on the loop: it runs in order."
        if not self.disk.closed:
            await asyncio.wait([asyncio.wrap_future(self.submit(lambda: None))])


THREADS = weakref.WeakKeyDictionary()  # by engine


def make_engine(settings, ollama, memory, watch, sent, worker, clock, held=MAX_SESSIONS):
    "An engine on the running loop, with threads of its own, as a worker makes it."
    loop, disk = asyncio.get_running_loop(), Disk(memory.batch)
    threads = Threads(loop, disk)
    outlet = SimpleNamespace(send=sent.append, window=Window(10**9), max_bytes=settings.max_frame_bytes)
    engine = wire_engine(settings, ollama, memory, watch, outlet, worker,
                         Runtime(loop, ThreadPoolExecutor(settings.parallel), disk, clock.call_later), held)
    THREADS[engine] = threads
    return engine


@pytest.fixture
def run(tmp_path, memories):
    """Run a scenario against a fresh engine on an event loop: run(lambda e, ollama, sent, clock, watch: ...);
    `held` conversations stay in memory."""
    def go(scenario, held=MAX_SESSIONS, **env):
        async def main():
            sent = []
            ollama, clock, watch = ScriptedOllama(), Clock(), Watch()
            settings = Settings.from_env({"DATA_DIR": str(tmp_path), **env})
            engine = make_engine(settings, ollama, memories(), watch, sent, "w1", clock, held)
            try:
                await scenario(engine, ollama, sent, clock, watch)
            finally:
                engine.shutdown()
        asyncio.run(main())
    return go


async def until(predicate, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met")


async def drained(limit=100_000):
    """Until nothing on the loop is ready to run (nor a timer due): what the test set off on the loop
    alone has all happened, however many turns of the loop it takes. Not what a thread does meanwhile."""
    loop = asyncio.get_running_loop()
    for _ in range(limit):
        await asyncio.sleep(0)
        if not loop._ready and not any(h.when() <= loop.time() and not h.cancelled() for h in loop._scheduled):
            return
    raise AssertionError("the loop never drained")


async def quiet(engine, ollama):
    """Until nothing more happens unless the test acts: the loop drained, every request to Ollama
    ended but those `hold` keeps open (and not hung up), what the disk thread was given done, and
    nothing new handed to a thread meanwhile. A negative assertion after it means never, not not yet."""
    threads = THREADS[engine]

    def held():
        return sum(not h.fired for h in list(ollama.holding)) if ollama.hold else 0
    while True:
        handed = threads.handed
        await drained()
        await threads.written()
        await until(lambda: threads.running() <= held())
        await drained()
        if threads.handed == handed:
            return


def settled(engine, session="s"):
    "Nothing queued or running for the session (a comment may still be due)."
    q = engine.sessions.queues.get(session)
    return q is None or (not q.jobs and not q.busy)


def comment_due(engine, session="s"):
    q = engine.sessions.queues.get(session)
    return q is not None and q.comment is not None


def chat(reply, text, session="s", id=None, prompt=PROMPT, **kw):
    "The user's message `id` (by default m-<reply>), to be answered as reply `reply`."
    return Chat(session=session, id=id or f"m-{reply}", reply=reply, text=text, prompt=prompt, **kw)


def finals(sent):
    return [m for m in sent if isinstance(m, (Done, Failed))]


def test_turns_of_a_session_run_in_order_and_stream_to_the_bus(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts = [["Hel", "lo"], ["Bye"]]
        engine.handle(chat("r1", "hi"))
        engine.handle(chat("r2", "bye"))
        await until(lambda: len(finals(sent)) == 2)
        assert [(m.reply, m.text) for m in finals(sent)] == [("r1", "Hello"), ("r2", "Bye")]
        assert "".join(m.text for m in sent if isinstance(m, Chunk) and m.reply == "r1") == "Hello"
        assert [m["content"] for m in ollama.asked[-1]["messages"][1:]] == ["hi", "Hello", "bye"]
    run(scenario)


def test_stop_hangs_up_and_keeps_what_was_said(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts, ollama.hold = [["Once", " upon", " a time"]], True
        engine.handle(chat("r1", "story"))
        await until(lambda: any(isinstance(m, Chunk) for m in sent))
        engine.handle(Stop(session="s", id="x1", reply="r1"))
        await until(lambda: finals(sent))
        [stopped] = finals(sent)
        assert isinstance(stopped, Failed) and stopped.code is FailCode.STOPPED and stopped.text == "Once"
        ollama.hold = False
        engine.handle(chat("r2", "go on"))
        await until(lambda: len(finals(sent)) == 2)
        assert [m["content"] for m in ollama.replies()[-1]["messages"][1:]] == ["story", "Once", "go on"]
    run(scenario)


def test_a_comment_stopped_before_it_ran_fails_under_the_epoch_of_the_copy_held(run):
    "The brain's own turn has no epoch until it runs: its end speaks for the copy's."
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts, ollama.hold = [["Once", " upon"]], True
        engine.handle(chat("r1", "story", epoch=3))
        await until(lambda: any(isinstance(m, Chunk) for m in sent))
        engine.runner.comment_later("s")
        clock.turn(engine.sessions.comment_delay_s)
        [comment] = engine.sessions.queues["s"].jobs
        engine.handle(Stop(session="s", id="x1", reply=comment.reply, epoch=3))
        assert [(m.reply, m.epoch, m.code) for m in finals(sent)] == [(comment.reply, 3, FailCode.STOPPED)]
        ollama.hold = False
    run(scenario)


def test_a_burst_of_app_changes_makes_one_comment_once_the_clicking_pauses(run):
    async def scenario(engine, ollama, sent, clock, watch):
        todos, web = [], Web()
        for i in range(5):
            todos = [*todos, Todo(i + 1, f"t{i}", False)]
            engine.handle(web.changed(f"e{i}", "added", todos[-1], todos))
            clock.turn(0.5)
        await until(lambda: settled(engine))
        assert ollama.replies() == [], "no comment while the clicks keep coming"
        clock.turn(1.5)
        await until(lambda: finals(sent))
        [asked] = ollama.replies()
        assert asked["messages"][-1]["content"].count("added #") == 5
        assert known_list(asked["messages"]) == todos
        assert asked["messages"][0] == {"role": "system", "content": SYSTEM} and asked["tools"] == TOOLS, \
            "the comment is asked with the prompt the app's events gave"
        assert len(ollama.asked) > 1, "the changes were evaluated ahead (warm-up) too"
    run(scenario)


@pytest.mark.parametrize("mode", ["decide", "auto"])
def test_an_app_change_before_the_first_turn_is_told_and_warmed_as_the_turns_requests_will_be(run, mode):
    """The mode (decide first, or call natively) is known before any app note or warm-up is made for a
    session, so the decision's request finds the warm-up's prompt in Ollama's cache: same system
    message, no tools. (A small model under `auto`: the scripted Ollama describes it so.)"""
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.show = lambda model: {"details": {"family": "qwen2", "parameter_size": "494.03M"}}
        milk = Todo(1, "milk", False)
        engine.handle(Web().changed("e1", "added", milk, [milk]))
        await until(lambda: ollama.asked)
        engine.handle(chat("r1", "add eggs"))
        await until(lambda: finals(sent))
        warm, decision = ollama.asked[0], ollama.asked[1]
        assert (warm["options"] or {}).get("num_predict") == 1, "a warm-up"
        assert warm["tools"] is None and decision["tools"] is None, "in this mode no tools are sent"
        assert "The app's actions:" in warm["messages"][0]["content"]
        assert warm["messages"][0] == decision["messages"][0], "the decision's prompt is what was warmed"
    run(scenario, MODEL_TOOL_MODE=mode)


def test_a_message_sent_while_ollama_is_down_is_answered_in_the_mode_its_model_gets_once_ollama_is_back(run):
    "Under `auto` the model's size is asked of Ollama: a turn that finds it down waits for it before choosing."
    async def scenario(engine, ollama, sent, clock, watch):
        def show(model):
            if watch.reach is Reach.DOWN:
                raise OllamaUnavailable("connection refused")
            return {"details": {"family": "qwen2", "parameter_size": "494.03M"}}
        ollama.show = show
        watch.reach = Reach.DOWN
        watch.up.clear()
        engine.handle(chat("r1", "add eggs"))
        await until(lambda: [m for m in sent if isinstance(m, Waiting)])
        watch.back()
        await until(lambda: finals(sent))
        decision = ollama.replies()[0]
        assert decision["format"] is not None and decision["tools"] is None, "decided first, as for a small model"
    run(scenario, MODEL_TOOL_MODE="auto")


def test_under_auto_a_model_ollama_cannot_describe_is_looked_up_at_a_turn_not_at_every_click(run):
    async def scenario(engine, ollama, sent, clock, watch):
        looked = []

        def show(model):
            looked.append(model)
            raise OllamaFailed(f"Ollama answered 404: model '{model}' not found")
        ollama.show = show
        todos = []
        for n in range(1, 4):
            todos.append(Todo(n, f"item {n}", False))
            engine.handle(Web().changed(f"e{n}", "added", todos[-1], list(todos)))
            clock.turn(1)
            await quiet(engine, ollama)
        assert len(looked) == 1, "three clicks, one look"
        engine.handle(chat("r1", "add eggs"))
        await until(lambda: finals(sent))
        assert len(looked) == 2, "a turn looks again: the model may have been pulled meanwhile"
    run(scenario, MODEL_TOOL_MODE="auto")


def test_new_chat_drops_the_turns_and_keeps_the_apps_state(run):
    async def scenario(engine, ollama, sent, clock, watch):
        milk = Todo(1, "milk", False)
        engine.handle(Web().changed("e1", "added", milk, [milk]))
        engine.handle(chat("r1", "hello"))
        await until(lambda: finals(sent))
        engine.handle(Reset(session="s", id="x"))
        engine.handle(chat("r2", "who am I?"))
        await until(lambda: len(finals(sent)) == 2)
        assert [m["content"] for m in ollama.replies()[-1]["messages"][1:]] == [
            "App note: The todo list now:\n- [ ] #1 milk", "who am I?"]
    run(scenario)


def test_regenerate_answers_the_same_question_with_the_model_asked_for(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts = [["first"], ["second"]]
        engine.handle(chat("r1", "a joke?"))
        await until(lambda: finals(sent))
        engine.handle(Regenerate(session="s", id="x", reply="r1", prompt=PROMPT, model="qwen3:4b"))
        await until(lambda: len(finals(sent)) == 2)
        last = ollama.replies()[-1]
        assert last["model"] == "qwen3:4b" and [m["content"] for m in last["messages"][1:]] == ["a joke?"]
        assert finals(sent)[-1].reply == "r1" and finals(sent)[-1].text == "second"
    run(scenario)


def test_a_turn_waits_for_ollama_and_is_asked_once_when_it_is_back(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts, watch.finds = [OllamaUnavailable("refused")], Reach.DOWN
        engine.handle(chat("r1", "anyone?"))
        await until(lambda: any(isinstance(m, Waiting) for m in sent))
        assert watch.reach is Reach.DOWN and watch.checks == 1 and not finals(sent)
        clock.turn(10 * sum(RETRY_DELAYS_S))
        await quiet(engine, ollama)
        assert len(ollama.replies()) == 1, "waiting for Ollama, not asking it"
        watch.back()
        await until(lambda: finals(sent))
        assert isinstance(finals(sent)[0], Done) and len(ollama.replies()) == 2
    run(scenario)


def asking(ollama, question):
    return [a for a in ollama.replies() if a["messages"][-1]["content"] == question]


def dropped(n):
    return [NoAnswer("Ollama at http://127.0.0.1:11434 closed the connection before answering.") for _ in range(n)]


def test_a_request_ollama_drops_while_it_is_up_is_asked_again_after_pauses_then_the_reply_fails(run):
    async def scenario(engine, ollama, sent, clock, watch):
        drop = dropped(1)[0]
        ollama.scripts = [drop, ["fine"], drop, ["fine"], drop]  # requests in turn: r1's, another session's, ...
        engine.handle(chat("r1", "hello?"))
        for asked, pause in enumerate(RETRY_DELAYS_S, start=1):
            await until(lambda n=asked: watch.checks == n)
            await quiet(engine, ollama)
            assert len(asking(ollama, "hello?")) == asked, "no request before the pause is over"
            engine.handle(chat(f"o{asked}", "meanwhile", session=f"other{asked}"))
            await until(lambda n=asked: any(m.reply == f"o{n}" for m in finals(sent)))
            clock.turn(pause)
        await until(lambda: any(m.reply == "r1" for m in finals(sent)))
        [failed] = [m for m in finals(sent) if m.reply == "r1"]
        assert isinstance(failed, Failed) and failed.code is FailCode.OLLAMA_FAILED
        assert failed.error == ("Ollama answers its health check but not this reply: 3 requests in a row got no answer "
                                "(Ollama at http://127.0.0.1:11434 closed the connection before answering). Its log may "
                                "say why; Retry asks again.")
        clock.turn(600)
        await quiet(engine, ollama)
        assert len(asking(ollama, "hello?")) == 3
        assert watch.reach is Reach.UP and watch.checks == 3 and not any(isinstance(m, Waiting) for m in sent)
        assert all(isinstance(m, Done) for m in finals(sent) if m.reply != "r1"), "the other sessions were answered"
    run(scenario)


def test_a_dropped_request_asked_again_once_ollama_is_back_counts_towards_the_bound(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts, watch.finds = dropped(5), Reach.DOWN
        engine.handle(chat("r1", "hello?"))
        await until(lambda: any(isinstance(m, Waiting) for m in sent))
        watch.finds = Reach.UP
        watch.back()
        for pause in RETRY_DELAYS_S:
            await until(lambda p=pause: clock.timers and clock.timers[-1].due == clock.now + p)
            clock.turn(pause)
        await until(lambda: finals(sent))
        assert finals(sent)[0].code is FailCode.OLLAMA_FAILED and len(ollama.replies()) == 4
    run(scenario)


def test_stop_ends_the_pause_before_a_dropped_request_is_asked_again(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts = dropped(1)
        engine.handle(chat("r1", "hello?"))
        await until(lambda: watch.checks == 1)
        engine.handle(Stop(session="s", id="x1", reply="r1"))
        await until(lambda: finals(sent))
        assert finals(sent)[0].code is FailCode.STOPPED and len(ollama.replies()) == 1
    run(scenario)


def test_a_request_that_cannot_be_written_fails_its_reply_at_once_and_asks_nothing_of_the_watch(run, caplog):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts = [Unsendable("The request to Ollama could not be written as JSON (Out of range float values "
                                     "are not JSON compliant), so it was not sent.")]
        with caplog.at_level(logging.WARNING, "brain"):
            engine.handle(chat("r1", "add NaN eggs"))
            await until(lambda: finals(sent))
        [failed] = finals(sent)
        assert isinstance(failed, Failed) and failed.code is FailCode.UNSENDABLE and "written as JSON" in failed.error
        clock.turn(600)
        await quiet(engine, ollama)
        assert len(ollama.replies()) == 1 and watch.checks == 0 and watch.reach is Reach.UP
        assert [r.message for r in caplog.records].count(f"reply r1 failed: {failed.error}") == 1, "logged once"
    run(scenario)


def test_every_request_asks_for_at_most_reply_max_tokens_and_a_reply_cut_there_says_so(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts = [[f" w{i}" for i in range(10)]]
        engine.handle(chat("r1", "go on and on"))
        await until(lambda: finals(sent))
        assert {a["options"]["num_predict"] for a in ollama.asked} == {4}
        [done] = finals(sent)
        assert isinstance(done, Done) and done.text == " w0 w1 w2 w3" and done.stats.done_reason == "length"
        assert [m.text for m in sent if isinstance(m, Note)] == ["The reply was cut off at 4 tokens (REPLY_MAX_TOKENS)."]
        assert sent.index(done) > sent.index(next(m for m in sent if isinstance(m, Note)))
    run(scenario, REPLY_MAX_TOKENS="4")


def test_a_reply_past_reply_max_s_is_hung_up_and_ends_with_what_it_said_and_why(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts, ollama.hold = [["Again", " and again"]], True
        engine.handle(chat("r1", "loop"))
        await until(lambda: any(isinstance(m, Chunk) for m in sent))
        clock.turn(59)
        await quiet(engine, ollama)  # the stream, held open, ends only if hung up
        assert not finals(sent)
        clock.turn(1)
        await until(lambda: finals(sent))
        [done] = finals(sent)
        assert isinstance(done, Done) and done.text == "Again"
        assert [m.text for m in sent if isinstance(m, Note)] == ["The reply was cut off after 60 s (REPLY_MAX_S)."]
        ollama.hold = False
        engine.handle(chat("r2", "and now?"))
        await until(lambda: len(finals(sent)) == 2)
        assert [m["content"] for m in ollama.replies()[-1]["messages"][1:]] == ["loop", "Again", "and now?"]
    run(scenario, REPLY_MAX_S="60")


def test_waiting_for_ollama_to_start_does_not_count_towards_reply_max_s(run):
    async def scenario(engine, ollama, sent, clock, watch):
        watch.reach = Reach.DOWN
        watch.up.clear()
        engine.handle(chat("r1", "anyone?"))
        await until(lambda: any(isinstance(m, Waiting) for m in sent))
        clock.turn(120)
        await quiet(engine, ollama)
        assert not finals(sent)
        watch.back()
        await until(lambda: finals(sent))
        assert isinstance(finals(sent)[0], Done)
    run(scenario, REPLY_MAX_S="60")


def test_idle_sessions_leave_memory_and_come_back_whole(run):
    async def scenario(engine, ollama, sent, clock, watch):
        for i in range(8):
            engine.handle(chat(f"r{i}", f"hello {i}", session=f"s{i}"))
            await until(lambda n=i + 1: len(finals(sent)) == n)
        assert len(engine.conversations.copies) == 3 and not engine.sessions.queues, "an idle session has no queue"
        engine.handle(chat("again", "still there?", session="s0"))
        await until(lambda: len(finals(sent)) == 9)
        assert [m["content"] for m in ollama.replies()[-1]["messages"][1:]] == ["hello 0", "ok", "still there?"]
    run(scenario, held=3)


def test_app_events_without_a_comment_go_with_the_next_turn_and_ask_for_nothing_of_their_own(run):
    async def scenario(engine, ollama, sent, clock, watch):
        web = Web()
        engine.handle(web.used("i1", "used #lamp-dial (POST /lamp brightness='7' → 200)"))
        engine.handle(web.used("i2", "used #export-md (GET /export/md → 200)"))
        await until(lambda: settled(engine))
        clock.turn(60)
        await quiet(engine, ollama)
        assert ollama.asked == [] and not comment_due(engine), "no comment, no warm-up"
        engine.handle(chat("r1", "hi"))
        await until(lambda: finals(sent))
        assert [m["content"] for m in ollama.replies()[-1]["messages"][1:]] == [
            "App note: The user used #lamp-dial (POST /lamp brightness='7' → 200); "
            "then used #export-md (GET /export/md → 200).", "hi"]
        assert ollama.replies() == ollama.asked
    run(scenario)


def test_an_action_whose_reply_was_cut_off_is_told_with_the_next_turn(run):
    async def scenario(engine, ollama, sent, clock, watch):
        milk = Todo(1, "oat milk", False)
        engine.handle(Web().result("x1", "r0", "call_1", "Added #1 'oat milk'.", [milk]))
        engine.handle(chat("r1", "add oat milk", retry=True))
        await until(lambda: finals(sent))
        assert ollama.replies()[-1]["messages"][1:] == [
            {"role": "user", "content": "App note: The user saw your action from a reply that was cut off: "
                                        "Added #1 'oat milk'. The todo list is now: #1 oat milk.\n"
                                        "The todo list now:\n- [ ] #1 oat milk"},
            {"role": "user", "content": "add oat milk"}]
    run(scenario)


def users(asked):
    return [m["content"] for m in asked["messages"] if m["role"] == "user"]


def test_a_session_that_comes_back_at_a_new_epoch_is_read_again_with_what_another_worker_did(run, memories):
    async def scenario(engine, ollama, sent, clock, watch):
        engine.handle(chat("r1", "one", epoch=1))
        await until(lambda: len(finals(sent)) == 1)
        await quiet(engine, ollama)  # its save is on disk (written behind: else it might land after the other's)
        other = memories()  # another worker on the same brain.db takes the session at epoch 2
        moved = other.load("s", 2)
        moved.begin_turn("two")
        moved.add_reply("answered elsewhere")
        other.save("s", moved)
        engine.handle(chat("r3", "three", epoch=3))
        await until(lambda: len(finals(sent)) == 2)
        assert users(ollama.replies()[-1]) == ["one", "two", "three"]
        assert {m.epoch for m in sent} == {1, 3}, "every message says under which epoch it was made"
    run(scenario)


def test_a_job_of_an_epoch_the_session_has_left_is_stopped_at_its_first_save_and_its_copy_never_saved(run, memories):
    # No read of the store on the way to the first token: the store's fence at the first save stops it.
    async def scenario(engine, ollama, sent, clock, watch):
        engine.handle(chat("r1", "one", epoch=1))
        await until(lambda: len(finals(sent)) == 1)
        # Its end may go out before its save commits (the disk thread's batch): moved before that, the
        # save would be fenced too, rightly. Here the session moves after it.
        await until(lambda: [t["content"] for t in memories().load("s").turns] == ["one", "ok"])
        memories().load("s", 5)  # the session moved to another worker meanwhile; its revoke is on the way
        ollama.hold = True
        ollama.scripts = [["stale", "words"]]
        engine.handle(chat("r2", "stale copy", epoch=1))
        await until(lambda: settled(engine))
        await quiet(engine, ollama)
        assert len(finals(sent)) == 1, "not answered: the web ignores its words anyway"
        assert engine.conversations.held("s") is None
        assert [t["content"] for t in memories().load("s").turns] == ["one", "ok"]
    run(scenario)


def test_revoked_at_another_epoch_the_running_reply_stops_without_a_word_or_a_save(run, memories):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.hold = True
        ollama.scripts = [["partial", "more"]]
        engine.handle(chat("r1", "long one", epoch=1))
        await until(lambda: any(isinstance(m, Chunk) for m in sent))
        engine.revoke(Revoke(worker="w1", session="s", message="m-r1", epoch=2))
        await until(lambda: settled(engine))
        await quiet(engine, ollama)
        assert finals(sent) == [], "the web ignores it anyway; it is not said"
        assert engine.conversations.held("s") is None
        assert [t["role"] for t in memories().load("s").turns] == ["user"], "the partial reply is not saved"
    run(scenario)


def saved_turns(memories):
    return [t["content"] for t in memories().load("s").turns]


def test_a_chat_on_trust_streams_at_once_but_saves_and_ends_only_once_granted(run, memories):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts = [["Hello", " there."]]
        trust = Trust("m-r1")
        engine.handle(chat("r1", "hi", epoch=1), trust)
        await until(lambda: "".join(m.text for m in sent if isinstance(m, Chunk)) == "Hello there.")
        await quiet(engine, ollama)  # the stream has ended, and what was written is on disk
        assert finals(sent) == [] and saved_turns(memories) == [], "its end and its saves wait for the grant"
        engine.grant("s", trust)
        await until(lambda: finals(sent))
        assert isinstance(finals(sent)[0], Done) and finals(sent)[0].text == "Hello there."
        await until(lambda: saved_turns(memories) == ["hi", "Hello there."])
    run(scenario)


def test_a_chat_on_trust_that_the_web_revokes_stops_without_a_word_or_a_trace(run, memories):
    async def scenario(engine, ollama, sent, clock, watch):
        engine.handle(chat("r1", "first", epoch=1))
        await until(lambda: finals(sent))
        ollama.hold = True
        ollama.scripts = [["withdrawn", " words"], ["Fine."]]
        trust = Trust("m-r2")
        engine.handle(chat("r2", "stopped before the grant", epoch=1), trust)
        await until(lambda: any(isinstance(m, Chunk) and m.reply == "r2" for m in sent))
        engine.revoke(Revoke(worker="w1", session="s", message="m-r2", epoch=1), trust)
        await until(lambda: settled(engine))
        ollama.hold = False
        assert len(finals(sent)) == 1, "the web has ended its line already"
        engine.handle(chat("r3", "next", epoch=1))
        await until(lambda: len(finals(sent)) == 2)
        assert users(ollama.replies()[-1]) == ["first", "next"], "the revoked turn left nothing in the context"
        await until(lambda: saved_turns(memories) == ["first", "ok", "next", "Fine."])
    run(scenario)


def test_a_chat_on_trust_revoked_under_a_new_epoch_fences_the_session_and_drops_its_queue(run, memories):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.hold = True
        ollama.scripts = [["withdrawn", " words"]]
        trust = Trust("m-r1")
        engine.handle(chat("r1", "on trust", epoch=1), trust)
        engine.handle(chat("r2", "queued behind it", epoch=1))
        await until(lambda: any(isinstance(m, Chunk) for m in sent))
        engine.revoke(Revoke(worker="w1", session="s", message="m-r1", epoch=2), trust)  # it moved meanwhile
        await until(lambda: settled(engine))
        ollama.hold = False
        await quiet(engine, ollama)
        assert len(ollama.replies()) == 1 and finals(sent) == [], "r2 is the next holder's to answer"
        assert engine.conversations.held("s") is None
    run(scenario)


def test_a_chat_on_trust_asks_for_no_app_change_before_its_grant(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts = [['{"name": "add_todo", "arguments": {"title": "oat milk"}}'], ["Added."]]
        answering = answer_calls(engine, sent, [Todo(1, "oat milk", False)])
        trust = Trust("m-r1")
        engine.handle(chat("r1", "add oat milk", epoch=1), trust)
        await until(lambda: ollama.replies())
        await quiet(engine, ollama)  # the model has answered with its call, and the reply waits for the grant
        assert not any(isinstance(m, CallTool) for m in sent)
        engine.grant("s", trust)
        await until(lambda: finals(sent))
        answering.cancel()
        assert [m.name for m in sent if isinstance(m, CallTool)] == ["add_todo"] and isinstance(finals(sent)[0], Done)
    run(scenario)


def test_a_reply_waiting_on_a_tool_call_goes_at_once_when_its_session_is_held_elsewhere(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts = [['{"name": "add_todo", "arguments": {"title": "oat milk"}}'], ["never shown"]]
        engine.handle(chat("r1", "add oat milk", epoch=1))
        await until(lambda: any(isinstance(m, CallTool) for m in sent))
        engine.revoke(Revoke(worker="w1", session="s", message="", epoch=2))
        await until(lambda: settled(engine), timeout=2.0)  # not the call's 10 s
        assert finals(sent) == [] and len(ollama.replies()) == 1
    run(scenario)


def test_a_message_acted_on_is_not_acted_on_again_after_a_restart(run, memories):
    async def scenario(engine, ollama, sent, clock, watch):
        engine.handle(chat("r1", "once", epoch=1))
        await until(lambda: len(finals(sent)) == 1)
        engine.shutdown()
        again = make_engine(engine.settings, ollama, memories(), watch, sent, "w2", clock)
        again.handle(chat("r1", "once", epoch=2))  # the web sent it again (it lost its record of the grant)
        added = Web().changed("t1", "added", Todo(1, "a", False), [Todo(1, "a", False)], epoch=2)
        again.handle(added)
        again.handle(added)  # the web's copy, sent again
        await until(lambda: len(finals(sent)) == 2)
        assert (finals(sent)[-1].code, finals(sent)[-1].reply) == (FailCode.DUPLICATE, "r1"), "the bubble gets an answer"
        assert len(ollama.replies()) == 1
        await until(lambda: settled(again))
        assert again.conversations.held("s").unseen == ["added #1 'a'"], "one change, not two"
        again.shutdown()
    run(scenario)


def test_a_turn_whose_conversation_cannot_be_read_fails_with_a_reason_instead_of_waiting(run):
    async def scenario(engine, ollama, sent, clock, watch):
        def broken(*args):
            raise OSError("the store is gone")
        engine.conversations.memory.load = broken
        engine.handle(chat("r1", "hello?", epoch=1))
        await until(lambda: finals(sent))
        [failed] = finals(sent)
        assert (failed.reply, failed.code) == ("r1", FailCode.INTERNAL) and "OSError" in failed.error
        assert ollama.replies() == []
    run(scenario)


def test_a_turn_waiting_for_its_conversation_is_still_listed_as_in_hand(run):
    async def scenario(engine, ollama, sent, clock, watch):
        memory = engine.conversations.memory
        reading, gate, load = threading.Event(), threading.Event(), memory.load
        memory.load = lambda *args: (reading.set(), gate.wait(5), load(*args))[2]
        engine.handle(chat("r1", "hello", epoch=1))
        await until(reading.is_set)  # its task runs, and waits for the disk
        assert engine.making == ["r1"], "the web would otherwise take its final for lost"
        gate.set()
        await until(lambda: finals(sent))
        assert engine.making == []
    run(scenario)


def answer_calls(engine, sent, todos, web=None):
    "Play the web: answer each CallTool sent so far with an applied result, the list on one line after it."
    web = web or Web()
    answered = set()

    async def loop():
        while True:
            for m in [m for m in sent if isinstance(m, CallTool) and m.call not in answered]:
                answered.add(m.call)
                engine.handle(web.result(f"x{len(answered)}", m.reply, m.call, f"Added #1 '{m.arguments.get('title')}'.",
                                         todos))
            await asyncio.sleep(0.01)
    return asyncio.create_task(loop())


def test_a_call_written_as_text_is_applied_as_a_call_and_never_shown(run):
    async def scenario(engine, ollama, sent, clock, watch):
        call = '{"name": "add_todo", "arguments": {"title": "oat milk"}}'
        ollama.scripts = [[*call[:20], call[20:], "\nSure.\n"], ["Done", ", caffeine fiend."]]
        answering = answer_calls(engine, sent, [Todo(1, "oat milk", False)])
        engine.handle(chat("r1", "add oat milk"))
        await until(lambda: finals(sent))
        answering.cancel()
        [asked] = [m for m in sent if isinstance(m, CallTool)]
        assert (asked.name, asked.arguments) == ("add_todo", {"title": "oat milk"})
        shown = "".join(m.text for m in sent if isinstance(m, Chunk))
        assert shown == "Sure.\nDone, caffeine fiend." and finals(sent)[0].text == shown
        second = ollama.replies()[-1]["messages"]
        assert second[-2]["content"] == "Sure.\n" and second[-2]["tool_calls"][0]["function"]["name"] == "add_todo"
        assert second[-1] == {"role": "tool", "tool_name": "add_todo",
                              "content": "Added #1 'oat milk'. The todo list is now: #1 oat milk."}
    run(scenario)


def test_after_a_tool_round_the_model_knows_the_apps_state_so_the_next_change_is_told_in_a_line(run):
    async def scenario(engine, ollama, sent, clock, watch):
        milk, eggs = Todo(1, "oat milk", False), Todo(2, "eggs", False)
        ollama.scripts = [['{"name": "add_todo", "arguments": {"title": "oat milk"}}'], ["Added."], ["Eggs too."]]
        web = Web()
        answering = answer_calls(engine, sent, [milk], web)
        engine.handle(chat("r1", "add oat milk"))
        await until(lambda: finals(sent))
        answering.cancel()
        engine.handle(web.changed("e1", "added", eggs, [milk, eggs]))
        engine.handle(chat("r2", "and?"))
        await until(lambda: len(finals(sent)) == 2)
        assert [m["content"] for m in ollama.replies()[-1]["messages"][-2:]] == [
            "App note: The user added #2 'eggs'.", "and?"], "the tool's result told the list: no need to state it again"
    run(scenario)


def test_a_call_the_reply_already_made_is_not_made_again_and_ends_the_reply(run):
    async def scenario(engine, ollama, sent, clock, watch):
        call = '{"name": "add_todo", "arguments": {"title": "oat milk"}}'
        ollama.scripts = [[call], [call], ["never asked"]]
        answering = answer_calls(engine, sent, [Todo(1, "oat milk", False)])
        engine.handle(chat("r1", "add oat milk"))
        await until(lambda: finals(sent))
        answering.cancel()
        assert len([m for m in sent if isinstance(m, CallTool)]) == 1 and len(ollama.replies()) == 2
        assert isinstance(finals(sent)[0], Done)
    run(scenario)


def test_a_recital_of_every_tool_applies_only_its_first_call(run):
    async def scenario(engine, ollama, sent, clock, watch):
        recital = "\n".join(f'{{"name": "{name}", "arguments": {args}}}' for name, args in [
            ("add_todo", '{"title": "oat milk"}'), ("set_todo_done", '{"id": 2, "done": true}'),
            ("rename_todo", '{"id": 3, "title": "x"}'), ("delete_todo", '{"id": 4}')])
        ollama.scripts = [[recital], ["Added."]]
        answering = answer_calls(engine, sent, [Todo(1, "oat milk", False)])
        engine.handle(chat("r1", "add oat milk"))
        await until(lambda: finals(sent))
        answering.cancel()
        assert [m.name for m in sent if isinstance(m, CallTool)] == ["add_todo"]
        results = [m["content"] for m in ollama.replies()[-1]["messages"] if m["role"] == "tool"]
        assert len(results) == 4 and all(r.startswith("Not done: that looked like every tool") for r in results[1:])
    run(scenario)


def resume(reply, text, question, seq=3):
    return Resume(session="s", id=f"resume-{reply}", reply=reply, text=text, prompt=PROMPT, question=question, seq=seq)


def cut_off(engine, ollama, question="tell me a story"):
    "A reply whose brain stopped after the question was saved and before any answer was."
    ollama.scripts.append(OllamaFailed("the brain died here"))
    engine.handle(chat("r1", question))


def test_a_cut_off_reply_is_continued_from_what_reached_the_page_and_kept_whole_once(run):
    async def scenario(engine, ollama, sent, clock, watch):
        cut_off(engine, ollama)
        await until(lambda: finals(sent))
        sent.clear()
        ollama.scripts.append([" a", " time"])
        engine.handle(resume("r1", "Once upon", "tell me a story"))
        await until(lambda: finals(sent))
        asked = ollama.replies()[-1]["messages"]
        assert asked[-2:] == [{"role": "user", "content": "tell me a story"}, {"role": "assistant", "content": "Once upon"}]
        chunks = [m for m in sent if isinstance(m, Chunk)]
        assert "".join(m.text for m in chunks) == " a time" and chunks[0].seq == 3, "numbered on from the web's count"
        assert isinstance(finals(sent)[0], Done) and finals(sent)[0].text == "Once upon a time"
        ollama.scripts.append(["The end."])
        engine.handle(chat("r2", "and then?"))
        await until(lambda: len(finals(sent)) == 2)
        assert [m["content"] for m in ollama.replies()[-1]["messages"][1:]] == [
            "tell me a story", "Once upon a time", "and then?"], "the whole reply once in the context"
    run(scenario)


def test_a_resume_whose_request_ollama_drops_is_asked_again_like_any_first_request(run):
    "The words the web was shown before the cut were not this request's: asked again, nothing is said twice."
    async def scenario(engine, ollama, sent, clock, watch):
        cut_off(engine, ollama)
        await until(lambda: finals(sent))
        sent.clear()
        ollama.scripts += [*dropped(1), [" a", " time"]]
        engine.handle(resume("r1", "Once upon", "tell me a story"))
        await until(lambda: clock.timers and clock.timers[-1].due == clock.now + RETRY_DELAYS_S[0])
        clock.turn(RETRY_DELAYS_S[0])
        await until(lambda: finals(sent))
        assert isinstance(finals(sent)[0], Done) and finals(sent)[0].text == "Once upon a time"
    run(scenario)


def test_a_reply_cut_off_after_a_tool_round_goes_on_from_the_result_without_acting_again(run):
    async def scenario(engine, ollama, sent, clock, watch):
        call = '{"name": "add_todo", "arguments": {"title": "oat milk"}}'
        ollama.scripts += [[call, "\nOn it.\n"], OllamaFailed("the brain died here")]
        answering = answer_calls(engine, sent, [Todo(1, "oat milk", False)])
        engine.handle(chat("r1", "add oat milk"))
        await until(lambda: finals(sent))
        ollama.scripts.append([" caffeine", " fiend."])
        engine.handle(resume("r1", "On it.\nAdded, you", "add oat milk"))
        await until(lambda: len(finals(sent)) == 2)
        answering.cancel()
        assert len([m for m in sent if isinstance(m, CallTool)]) == 1
        assert ollama.replies()[-1]["messages"][-2]["role"] == "tool"
        assert ollama.replies()[-1]["messages"][-1] == {"role": "assistant", "content": "Added, you"}
        assert finals(sent)[-1].text == "On it.\nAdded, you caffeine fiend."
    run(scenario)


def test_a_continuation_that_starts_over_falls_back_to_retry_and_says_so(run):
    async def scenario(engine, ollama, sent, clock, watch):
        cut_off(engine, ollama)
        await until(lambda: finals(sent))
        ollama.scripts.append(["Once upon a time there", " was a fox."])
        engine.handle(resume("r1", "Once upon a time there", "tell me a story"))
        await until(lambda: len(finals(sent)) == 2)
        failed = finals(sent)[-1]
        assert isinstance(failed, Failed) and failed.code is FailCode.NOT_RESUMED and "Retry" in failed.error
        assert failed.text == "Once upon a time there"
    run(scenario)


def test_a_reply_that_repeats_itself_is_continued_not_taken_for_a_restart(run):
    async def scenario(engine, ollama, sent, clock, watch):
        cut_off(engine, ollama)
        await until(lambda: finals(sent))
        said = " ".join(["a very long reply"] * 3)  # its start comes again: a restart cannot be told
        ollama.scripts.append([" a very long reply a very long reply"])
        engine.handle(resume("r1", said, "tell me a story"))
        await until(lambda: len(finals(sent)) == 2)
        assert isinstance(finals(sent)[-1], Done)
        assert finals(sent)[-1].text == " ".join(["a very long reply"] * 5)
    run(scenario)


def test_a_reply_saved_whole_is_finished_without_asking_again(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts.append(["Hello", " there."])
        engine.handle(chat("r1", "hi"))
        await until(lambda: finals(sent))
        engine.handle(resume("r1", "Hello", "hi"))
        await until(lambda: len(finals(sent)) == 2)
        assert len(ollama.replies()) == 1 and finals(sent)[-1].text == "Hello there."
    run(scenario)


def test_a_reply_whose_saved_text_does_not_lead_to_what_was_shown_is_not_continued(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts.append(["Hello", " there."])
        engine.handle(chat("r1", "hi"))
        await until(lambda: finals(sent))
        engine.handle(resume("r1", "Goodbye", "hi"))
        await until(lambda: len(finals(sent)) == 2)
        assert finals(sent)[-1].code is FailCode.NOT_RESUMED and len(ollama.replies()) == 1
    run(scenario)


def test_a_reply_whose_question_was_never_saved_is_asked_now_and_goes_on_from_what_was_shown(run):
    # Its brain stopped between the grant and the question's save, or it waited behind another
    # reply of the session that was cut off too.
    async def scenario(engine, ollama, sent, clock, watch):
        cut_off(engine, ollama)
        await until(lambda: finals(sent))
        ollama.scripts.append([" there"])
        engine.handle(resume("r2", "Once upon", "and a second question"))
        await until(lambda: len(finals(sent)) == 2)
        asked = ollama.replies()[-1]["messages"]
        assert [m["content"] for m in asked[1:]] == ["tell me a story", "and a second question", "Once upon"]
        assert isinstance(finals(sent)[-1], Done) and finals(sent)[-1].text == "Once upon there"
        ollama.scripts.append(["Nothing."])
        engine.handle(resume("r3", "", "a third, not begun either"))
        await until(lambda: len(finals(sent)) == 3)
        assert finals(sent)[-1].text == "Nothing."
        assert [m["content"] for m in ollama.replies()[-1]["messages"][-3:]] == [
            "and a second question", "Once upon there", "a third, not begun either"]
    run(scenario)


def test_a_flood_of_interactions_is_bounded_in_the_sessions_queue_and_costs_the_next_turn_nothing(run):
    async def scenario(engine, ollama, sent, clock, watch):
        web = Web()
        for i in range(3000):
            engine.handle(web.used(f"i{i}", f"used the page (WS /ws lamp='{i}')"))
        assert len(engine.sessions.queues["s"].jobs) <= 50
        engine.handle(chat("r1", "hi"))
        await until(lambda: finals(sent), timeout=2.0)
        assert len(engine.conversations.held("s").unseen) == 0
        note = ollama.replies()[-1]["messages"][1]["content"]
        assert note.count("used the page") <= 50 and "earlier" in note
    run(scenario, SESSION_MAX_PENDING="50")


def test_app_changes_left_out_of_a_full_queue_have_the_next_one_state_the_whole_state(run):
    async def scenario(engine, ollama, sent, clock, watch):
        todos, web = [Todo(1, "t0", False)], Web()
        engine.handle(web.changed("e0", "added", todos[0], todos))
        engine.handle(chat("r1", "hi"))
        await until(lambda: finals(sent))  # the model knows the list: from now on the lines alone would do
        for i in range(1, 20):
            todos = [*todos, Todo(i + 1, f"t{i}", False)]
            engine.handle(web.changed(f"e{i}", "added", todos[-1], todos))
        assert "e19" not in [j.message for j in engine.sessions.queues["s"].jobs], "the queue was full: some were left out"
        engine.handle(chat("r2", "what now?"))
        await until(lambda: settled(engine))
        todos = [*todos, Todo(21, "t20", False)]
        engine.handle(web.changed("e20", "added", todos[-1], todos))
        engine.handle(chat("r3", "and now?"))
        await until(lambda: len(finals(sent)) == 3)
        asked = ollama.replies()[-1]["messages"]
        assert asked[-2]["content"].endswith(stated(todos)), "stated whole"
        assert known_list(asked) == todos, "the model knows every todo, those left out too"
    run(scenario, SESSION_MAX_PENDING="5")


def test_an_app_event_lost_before_a_restart_is_put_right_by_the_next_one(run, memories):
    async def scenario(engine, ollama, sent, clock, watch):
        milk, eggs, bread = Todo(1, "milk", False), Todo(2, "eggs", False), Todo(3, "bread", False)
        web = Web()
        engine.handle(web.changed("e1", "added", milk, [milk]))
        engine.handle(chat("r1", "hi"))
        await until(lambda: finals(sent))
        engine.shutdown()
        web.changed("e2", "added", eggs, [milk, eggs])  # taken by the bus, lost with the brain that stopped
        again = make_engine(engine.settings, ollama, memories(), watch, sent, "w2", clock)
        again.handle(web.changed("e3", "added", bread, [milk, eggs, bread]))
        again.handle(chat("r2", "what's on it?"))
        await until(lambda: len(finals(sent)) == 2)
        asked = ollama.replies()[-1]["messages"]
        assert asked[-2]["content"] == ("App note: The user added #3 'bread'.\n"
                                        "The todo list now:\n- [ ] #1 milk\n- [ ] #2 eggs\n- [ ] #3 bread")
        assert known_list(asked) == [milk, eggs, bread]
        again.shutdown()
    run(scenario)


def test_each_request_is_asked_with_the_prompt_its_message_gave_and_a_comment_with_the_last_one(run):
    async def scenario(engine, ollama, sent, clock, watch):
        reading = Prompt("You look after a reading list.", [tool("add_book", "Add a book.", title="string")])
        engine.handle(chat("r1", "hi", prompt=reading))
        await until(lambda: finals(sent))
        first = ollama.replies()[-1]
        assert first["messages"][0] == {"role": "system", "content": "You look after a reading list."}
        assert first["tools"] == reading.tools
        engine.handle(AppEvent(session="s", id="e1", lines=["added #1 'Dune'"], state="The reading list: Dune",
                               comment=True, prompt=PROMPT))
        await until(lambda: comment_due(engine))
        clock.turn(10)
        await until(lambda: len(finals(sent)) == 2)
        comment = ollama.replies()[-1]
        assert comment["messages"][0] == {"role": "system", "content": SYSTEM} and comment["tools"] == TOOLS
        engine.handle(chat("r3", "no tools here", prompt=Prompt("Plain.")))
        await until(lambda: len(finals(sent)) == 3)
        assert ollama.replies()[-1]["tools"] is None, "an app without tools is asked without any"
    run(scenario)


def test_with_tools_turned_off_the_model_is_asked_without_the_apps_tools(run):
    async def scenario(engine, ollama, sent, clock, watch):
        engine.handle(chat("r1", "add milk"))
        await until(lambda: finals(sent))
        assert ollama.replies()[-1]["tools"] is None
    run(scenario, MODEL_TOOLS="0")


def bus_messages(session=st.sampled_from(["s1", "s2"]), ids=st.sampled_from([f"r{i}" for i in range(6)])):
    "Any message a brain can be granted, with any text and any app's prompt, in any order, repeats included."
    prompts = st.builds(Prompt, any_text, st.sampled_from([TOOLS, [], [tool("x", "y")]]))
    return st.one_of(
        st.builds(Chat, session=session, id=ids, reply=ids, text=any_text, prompt=prompts, retry=st.booleans()),
        st.builds(Stop, session=session, id=ids, reply=ids),
        st.builds(Reset, session=session, id=ids),
        st.builds(Regenerate, session=session, id=ids, reply=ids, prompt=prompts),
        st.builds(Resume, session=session, id=ids, reply=ids, text=any_text, prompt=prompts, question=any_text,
                  seq=st.integers(0, 3)),
        st.builds(AppEvent, session=session, id=ids, lines=st.lists(any_text, max_size=3), prompt=prompts,
                  state=any_text, since=st.just("") | st.text("0123456789abcdef", min_size=16, max_size=16),
                  comment=st.booleans()),
        st.builds(ToolResult, session=session, id=ids, reply=ids, call=ids, ok=st.booleans(), text=any_text,
                  state=any_text),
        st.builds(Revoke, worker=st.just("w1"), session=session, message=ids | st.just(""), epoch=st.integers(0, 2)))


def within_bounds(jobs, limit):
    """What SESSION_MAX_PENDING bounds: the replies messages ask for, and what the user did in the app.
    A New chat, a regenerate's drop of the last reply and a comment are never refused (each New chat
    press queues a StartAfresh, however many wait), so they are not counted."""
    asked = [j for j in jobs if isinstance(j, Turn) and j.message]
    told = [j for j in jobs if isinstance(j, (Event, LateResult))]
    return len(asked) <= limit and len(told) <= limit and sum(isinstance(j, Warm) for j in jobs) <= 1


@pytest.mark.fuzz
@given(st.lists(bus_messages(), max_size=25), st.lists(st.lists(st.text(max_size=8), max_size=3), max_size=5))
def test_any_messages_leave_the_engine_answering_with_valid_messages_and_bounded_queues(tmp_path_factory, messages,
                                                                                    scripts):
    from brain.conversation import UNSEEN_KEPT
    from brain.memory import Memory
    from shared.messages import BadFrame, decode, encode_valid
    broke = []

    class Failures(logging.Handler):
        def emit(self, record):
            if record.levelno >= logging.ERROR:
                broke.append(record.getMessage())

    async def main():
        sent, ollama, clock, watch = [], ScriptedOllama(), Clock(), Watch()
        ollama.scripts = list(scripts)
        settings = Settings.from_env({"DATA_DIR": str(tmp_path_factory.mktemp("engine")), "SESSION_MAX_PENDING": "5"})
        memory = Memory.open("", settings.data_dir)
        engine = make_engine(settings, ollama, memory, watch, sent, "w1", clock)
        try:
            for msg in messages:
                try:
                    msg = decode(encode_valid(msg, settings.max_frame_bytes))
                except BadFrame:
                    continue  # refused where it enters the bus: never granted to a brain
                (engine.revoke if isinstance(msg, Revoke) else engine.handle)(msg)
                assert all(within_bounds(q.jobs, 5) for q in engine.sessions.queues.values())
                clock.turn(1)
                await asyncio.sleep(0)
            await until(lambda: not engine.runner.tasks and not any(q.jobs for q in engine.sessions.queues.values()))
        finally:
            engine.shutdown()
            engine.replies.asker.streams.pool.shutdown()  # 10,000 examples under `make fuzz`: no thread or file may be left open
            memory.db.conn.close()
        for msg in sent:
            encode_valid(msg, settings.max_frame_bytes)
        assert all(len(c.unseen) <= UNSEEN_KEPT for c in engine.conversations.copies.values())

    handler = Failures()
    logging.getLogger("brain").addHandler(handler)
    try:
        asyncio.run(main())
    finally:
        logging.getLogger("brain").removeHandler(handler)
    assert broke == []


def test_a_comment_on_app_events_never_changes_the_app(run):
    async def scenario(engine, ollama, sent, clock, watch):
        milk = Todo(1, "oat milk", False)
        ollama.scripts = [['{"name": "add_todo", "arguments": {"title": "more milk"}}'], ["ok"]]
        engine.handle(Web().changed("t1", "added", milk, [milk]))
        await until(lambda: comment_due(engine))
        clock.turn(10)
        await until(lambda: finals(sent))
        assert not [m for m in sent if isinstance(m, CallTool)] and len(ollama.replies()) == 1
    run(scenario)


def test_a_reply_cut_off_by_a_shutdown_says_nothing_more_and_nothing_new_starts(run):
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts, ollama.hold = [["Once", " upon"], ["never"]], True
        engine.handle(chat("r1", "tell me a story"))
        engine.handle(chat("r2", "and another"))
        await until(lambda: any(isinstance(m, Chunk) for m in sent))
        engine.shutdown()  # a restart: the web has the next brain carry r1 on
        await quiet(engine, ollama)  # r1's stream, hung up, has ended
        assert finals(sent) == [] and len(ollama.replies()) == 1
    run(scenario)


def test_a_resume_that_comes_after_later_turns_never_asks_its_question_again(run):
    """M6's reply was saved whole, but its end was lost with its brain, and M7 was answered before
    M6's resume came: the resume ends it with the saved text; the context keeps M6 once, before M7."""
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts += [["Six", " is done."], ["Seven."]]
        engine.handle(chat("r6", "M6"))
        engine.handle(chat("r7", "M7"))
        await until(lambda: len(finals(sent)) == 2)
        engine.handle(resume("r6", "Six", "M6"))
        await until(lambda: len(finals(sent)) == 3)
        assert isinstance(finals(sent)[-1], Done) and finals(sent)[-1].text == "Six is done."
        assert len(ollama.replies()) == 2, "nothing asked again"
        ollama.scripts.append(["Eight."])
        engine.handle(chat("r8", "M8"))
        await until(lambda: len(finals(sent)) == 4)
        assert users(ollama.replies()[-1]) == ["M6", "M7", "M8"]
    run(scenario)


def test_a_resume_of_a_reply_cut_off_before_later_turns_fails_instead_of_asking_again(run):
    # Its round cannot be continued with turns after it: Retry asks anew, at the end, by the user's choice.
    async def scenario(engine, ollama, sent, clock, watch):
        cut_off(engine, ollama, "M6")
        ollama.scripts.append(["Seven."])
        engine.handle(chat("r7", "M7"))
        await until(lambda: len(finals(sent)) == 2)
        engine.handle(resume("r1", "Once", "M6"))
        await until(lambda: len(finals(sent)) == 3)
        assert finals(sent)[-1].code is FailCode.NOT_RESUMED and finals(sent)[-1].text == "Once"
        ollama.scripts.append(["Eight."])
        engine.handle(chat("r8", "M8"))
        await until(lambda: len(finals(sent)) == 4)
        assert users(ollama.replies()[-1]) == ["M6", "M7", "M8"]
    run(scenario)


def test_a_question_asked_before_in_so_many_words_is_asked_again_for_a_reply_not_begun(run):
    "Only the reply's own question counts: an earlier 'ok' is not the 'ok' a resume was cut off before saving."
    async def scenario(engine, ollama, sent, clock, watch):
        ollama.scripts += [["Fine."], ["Sure."]]
        engine.handle(chat("r1", "ok"))
        engine.handle(chat("r2", "and?"))
        await until(lambda: len(finals(sent)) == 2)
        ollama.scripts.append([" then."])
        engine.handle(resume("r3", "Well", "ok"))
        await until(lambda: len(finals(sent)) == 3)
        assert finals(sent)[-1].text == "Well then."
        assert users(ollama.replies()[-1]) == ["ok", "and?", "ok"]
    run(scenario)
