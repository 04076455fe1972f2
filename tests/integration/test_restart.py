"""The brain comes and goes; the page stays up and nothing the user did is lost."""
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from brain.conversations import STORED_WAIT_S
from shared.messages import Chunk, Done, Hello, encode
from tests.fake_ollama import Plan, words
from tests.system import ROOT


def test_kill_9_of_an_idle_brain_keeps_the_page_and_comes_back(system, visitor, fake):
    tab = visitor.open_tab()
    assert tab.status == "brain ready"
    killed = time.monotonic()
    os.kill(system.worker_pid(), signal.SIGKILL)

    tab.wait(lambda t: "offline" in t.status, what="offline shown")
    tab.wait(lambda t: "ready" in t.status, what="ready again")
    print(f"kill -9 -> ready again: {time.monotonic() - killed:.2f}s")
    tab.send("are you back?")
    assert tab.wait(lambda t: t.finished(1))[0].status == "done"
    assert "worker exited with signal SIGKILL" in system.log("brain")


def test_what_the_user_did_while_the_brain_was_down_is_answered_once(system, visitor, fake):
    tab = visitor.open_tab()
    system.stop("brain")
    tab.wait(lambda t: "offline" in t.status or "restarting" in t.status, what="brain gone")

    visitor.add_todo("call the plumber")
    questions = ["anything urgent?", "and after that?", "thanks!"]
    for q in questions:
        tab.send(q)
    queued = tab.wait(lambda t: len(t.replies("queued")) == 3 and t.replies("queued"), what="3 queued")
    assert all("Queued" in b.note for b in queued)
    time.sleep(0.5)
    assert fake.chat_requests() == []

    system.start("brain")
    replies = tab.wait(lambda t: t.finished(3), timeout=20)
    assert [r.status for r in replies] == ["done"] * 3
    time.sleep(1.5)  # any duplicate answer or extra comment would have started by now
    asked = [r["messages"][-1]["content"] for r in fake.chat_requests()]
    assert asked == questions, "each queued message answered exactly once, in order"
    assert len(tab.replies()) == 3
    first = fake.chat_requests()[0]["messages"]
    assert first[-2]["content"] == "App note: The user added #1 'call the plumber'.\nThe todo list now:\n- [ ] #1 call the plumber"


def asks_for_the_moral_after(tab, fake, first: str, question: str, story: str) -> None:
    "The next question is asked with every earlier turn once: the first exchange, then `question` and the whole `story`."
    tab.send("and the moral?")
    tab.wait(lambda t: t.finished(3))
    turns = [(m["role"], m["content"]) for m in fake.chat_requests()[-1]["messages"][1:]]
    assert turns == [("user", "remember: the password is swordfish"), ("assistant", first),
                     ("user", question), ("assistant", story), ("user", "and the moral?")], \
        "earlier turns kept, the whole reply once, no repeated question"


def test_kill_9_mid_reply_is_carried_on_by_the_next_brain_from_where_it_stopped(system, visitor, fake):
    tab = visitor.open_tab()
    tab.send("remember: the password is swordfish")
    [first] = tab.wait(lambda t: t.finished(1))

    story = ("once upon a time there was a brain that would not finish " * 6).strip()
    fake.plan(Plan(chunks=words(story), delay=0.05))
    tab.send("tell me a long story")
    [streaming] = tab.wait(lambda t: t.reply_ids("streaming"), what="the reply streaming")
    tab.wait(lambda t: len(t.bubbles[streaming].text) > 40, what="some words shown")
    os.kill(system.worker_pid(), signal.SIGKILL)

    shown = []  # the bubble's text each time the tab took frames in

    def finished(t):
        shown.append(t.bubbles[streaming].text)
        return t.bubbles[streaming].status == "done"

    tab.wait(finished, timeout=20, what="the reply finished by the next brain")
    assert tab.bubbles[streaming].text == story, "the text before the cut once, then the rest"
    assert all(story.startswith(text) for text in shown), "never a word twice on the page, even for a moment"
    resumed = fake.chat_requests()[-1]["messages"]
    assert resumed[-1]["role"] == "assistant" and story.startswith(resumed[-1]["content"]), "asked to continue"

    asks_for_the_moral_after(tab, fake, first.text, "tell me a long story", story)


def test_kill_9_while_the_store_is_slow_loses_no_answer_the_page_shows_ended(system, visitor, fake):
    """A reply's end goes out only once the reply is on disk (docs/protocol.md §9.1). With another
    writer holding the store when a reply ends, and the brain killed then, the page must not have
    been told it ended: the next brain carries it on, and the next question finds it in the context.
    (Told first, the page would show it done while the store never got it.)"""
    tab = visitor.open_tab()
    tab.send("remember: the password is swordfish")
    [first] = tab.wait(lambda t: t.finished(1))
    story = "the store was slow, and still nothing was lost in the end"
    fake.plan(Plan(chunks=words(story), delay=0.01))
    store = sqlite3.connect(system.workdir / "data" / "brain.db", isolation_level=None, timeout=10)
    store.execute("begin immediate")  # another writer holds the store: the brain's saves wait for it
    try:
        tab.send("tell me a short story")
        reply = tab.wait(lambda t: next((r for r in t.reply_ids() if t.bubbles[r].text == story), None),
                         what="the whole story shown")
        with pytest.raises(AssertionError):  # well within the brain's wait for the store, however slow this machine
            tab.wait(lambda t: t.bubbles[reply].status != "streaming", timeout=STORED_WAIT_S / 10,
                     what="the end, before its save")
        os.kill(system.worker_pid(), signal.SIGKILL)
    finally:
        store.execute("rollback")
        store.close()
    tab.wait(lambda t: t.bubbles[reply].status == "done", timeout=20, what="the story ended by the next brain")
    assert tab.bubbles[reply].text == story

    asks_for_the_moral_after(tab, fake, first.text, "tell me a short story", story)


def test_a_reply_whose_next_brain_dies_too_before_it_says_a_word_is_carried_on_by_the_one_after(system, visitor, fake):
    story = ("two brains down and the story still ends where it should " * 5).strip()
    fake.plan(Plan(chunks=words(story), delay=0.05), Plan(first_byte_delay=30))  # the second brain hears nothing
    tab = visitor.open_tab()
    tab.send("tell me a long story")
    [streaming] = tab.wait(lambda t: t.reply_ids("streaming"), what="the reply streaming")
    tab.wait(lambda t: len(t.bubbles[streaming].text) > 40, what="some words shown")
    os.kill(system.worker_pid(), signal.SIGKILL)
    fake.wait(lambda f: len(f.chat_requests()) == 2, timeout=20)  # the next brain has taken the reply on
    os.kill(system.worker_pid(), signal.SIGKILL)
    tab.wait(lambda t: t.bubbles[streaming].status == "done", timeout=30, what="the reply finished by a third brain")
    assert tab.bubbles[streaming].text == story


def test_restart_brain_command_shows_restarting_and_keeps_the_conversation(system, visitor, fake):
    tab = visitor.open_tab()
    tab.send("my cat is called Miso")
    [first] = tab.wait(lambda t: t.finished(1))
    old_pid = system.worker_pid()

    restart = subprocess.run([sys.executable, "-m", "brain.supervise", "--restart"], cwd=ROOT, env=system.env,
                             capture_output=True, text=True, timeout=10)
    assert restart.returncode == 0, restart.stderr
    tab.wait(lambda t: "restarting" in t.status, what="restarting shown")
    tab.wait(lambda t: "ready" in t.status, timeout=20, what="ready again")
    assert system.worker_pid() != old_pid

    tab.send("what is my cat called?")
    tab.wait(lambda t: t.finished(2))
    turns = [m["content"] for m in fake.chat_requests()[-1]["messages"][1:]]
    assert turns == ["my cat is called Miso", first.text, "what is my cat called?"]


def test_restart_brain_mid_reply_has_the_next_brain_carry_it_on(system, visitor, fake):
    story = ("a deploy in the middle of a sentence is no reason to lose it " * 5).strip()
    fake.plan(Plan(chunks=words(story), delay=0.05))
    tab = visitor.open_tab()
    tab.send("tell me a long story")
    [streaming] = tab.wait(lambda t: t.reply_ids("streaming"), what="the reply streaming")
    tab.wait(lambda t: len(t.bubbles[streaming].text) > 40, what="some words shown")
    restart = subprocess.run([sys.executable, "-m", "brain.supervise", "--restart"], cwd=ROOT, env=system.env,
                             capture_output=True, text=True, timeout=10)
    assert restart.returncode == 0, restart.stderr
    tab.wait(lambda t: t.bubbles[streaming].status in ("done", "failed", "stopped"), timeout=20, what="the reply ended")
    assert (tab.bubbles[streaming].status, tab.bubbles[streaming].text) == ("done", story)


def test_a_web_restart_closes_tabs_so_htmx_reconnects_and_the_transcript_returns(system, visitor, fake):
    tab = visitor.open_tab()
    tab.send("before the restart")
    [reply] = tab.wait(lambda t: t.finished(1))

    system.stop("web")
    assert tab.closed_code() in (1006, 1012), "htmx-ext-ws reconnects only on 1006, 1012 and 1013"
    system.start("web")
    system.wait_ready()
    again = visitor.open_tab()
    assert [(b.role, b.text) for b in again.bubbles.values()] == [("user", "before the restart"), ("reply", reply.text)]
    assert again.status == "brain ready"


def test_a_reply_streaming_through_a_web_restart_ends_complete(system, visitor, fake):
    chunks = words(" ".join(f"w{i}" for i in range(60)))
    fake.plan(Plan(chunks=chunks, delay=0.05))
    tab = visitor.open_tab()
    tab.send("stream through it")
    tab.wait(lambda t: t.replies("streaming"))
    system.stop("web")
    system.start("web")
    system.wait_status(lambda s: s["status"] != "offline")
    again = visitor.open_tab()
    [reply] = again.wait(lambda t: t.finished(1), timeout=20)
    assert reply.status == "done" and reply.text == "".join(chunks)


def test_lost_chunks_are_repaired_by_the_final_text(system, visitor):
    "A stand-in worker skips chunk 1, as a high-water-mark drop would."
    import zmq

    tab = visitor.open_tab()
    ctx = zmq.Context()
    try:  # a context left to the garbage collector with a socket open hangs the whole run in its term()
        pub = ctx.socket(zmq.PUB)
        pub.setsockopt(zmq.LINGER, 1000)
        pub.connect(system.env["BUS_PUB_ENDPOINT"])
        time.sleep(0.5)
        ids = dict(worker="standin", session=visitor.sid(), reply="gappy")
        for msg in (Chunk(**ids, seq=0, text="Hello"), Chunk(**ids, seq=2, text=" world"),
                    Done(**ids, seq=3, text="Hello brave new world")):
            pub.send_multipart(encode(msg))
            time.sleep(0.1)
        [reply] = tab.wait(lambda t: t.finished(1))
        assert reply.text == "Hello brave new world"
        assert "chunks 1..1 lost" in system.log("web")
        pub.send_multipart(encode(Hello(worker="standin", started=0, pid=1, model="x", parallel=1)))
    finally:
        ctx.destroy(linger=1000)


def test_stop_hangs_up_on_ollama_and_keeps_the_partial_reply(system, visitor, fake):
    fake.plan(Plan(chunks=words("la " * 200), delay=0.05))
    tab = visitor.open_tab()
    tab.send("sing forever")
    [rid] = tab.wait(lambda t: t.reply_ids("streaming"))
    tab.wait(lambda t: len(t.bubbles[rid].text) > 10)
    pressed = time.monotonic()
    tab.click("stop", rid)

    fake.wait(lambda f: f.hangups)
    print(f"Stop -> Ollama connection closed: {fake.hangups[0] - pressed:.3f}s")
    tab.wait(lambda t: t.bubbles[rid].status == "stopped", what="the bubble marked stopped")
    partial = tab.bubbles[rid].text
    assert 0 < len(partial) < len("la " * 200)

    tab.send("why did you stop?")
    tab.wait(lambda t: t.replies("done"))
    turns = fake.chat_requests()[-1]["messages"][1:]
    assert turns[-2] == {"role": "assistant", "content": partial}, "the stopped reply stays in context"


def test_stop_while_the_brain_is_down_withdraws_the_queued_message(system, visitor, fake):
    tab = visitor.open_tab()
    system.stop("brain")
    tab.wait(lambda t: "ready" not in t.status)
    tab.send("never mind")
    [rid] = tab.wait(lambda t: t.reply_ids("queued"))
    tab.click("stop", rid)
    tab.wait(lambda t: t.bubbles[rid].status == "stopped")
    system.start("brain")
    system.wait_ready()
    time.sleep(1)
    assert fake.chat_requests() == []


def test_a_second_message_during_a_reply_is_answered_after_it(system, visitor, fake):
    fake.plan(Plan(chunks=words("first answer, slowly " * 5), delay=0.05))
    tab = visitor.open_tab()
    tab.send("first")
    tab.wait(lambda t: t.replies("streaming"))
    tab.send("second")
    first, second = tab.wait(lambda t: t.finished(2), timeout=15)
    assert first.text == fake.replies[0] and second.text == fake.replies[1]
    turns = [m["content"] for m in fake.chat_requests()[1]["messages"][1:]]
    assert turns == ["first", first.text, "second"]
