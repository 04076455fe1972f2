"""When Ollama misbehaves the user is told, in the chat, what happened and what to do; the brain
stays up and the next message works once Ollama is fine again. A reply whose requests Ollama drops
fails alone, after a few, and no other tab hears of it; a reply is cut at REPLY_MAX_TOKENS and
REPLY_MAX_S, and the chat says so."""
import time

import pytest
from bs4 import BeautifulSoup

from tests.fake_ollama import FakeOllama, Plan
from tests.page import Visitor


def test_with_ollama_absent_the_page_says_so_and_a_message_waits_then_is_answered_once(without_ollama):
    system, port = without_ollama
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    down = f"Ollama is not running at 127.0.0.1:{port} — start it with `ollama serve`"
    tab.wait(lambda t: t.status_text == down, what="the not-running instruction")
    assert tab.status == "brain ollama-down" and down in visitor.http.get(system.url + "/", timeout=5).text
    assert tab.picker == ["llama3.2:latest"], "nothing is called 'not pulled' before Ollama has listed its models"

    visitor.add_todo("buy a lamp")
    time.sleep(1.0)  # past the comment delay: no comment waits for Ollama, the event stays in the context
    tab.send("anyone home?")
    [waiting] = tab.wait(lambda t: t.replies("waiting"), what="the message waiting for Ollama")
    assert f"not running at http://127.0.0.1:{port}" in waiting.note and "ollama serve" in waiting.note
    time.sleep(1.0)

    late = FakeOllama(port=port).start()
    try:
        tab.wait(lambda t: t.status_text == "brain ready", timeout=10, what="ready without a reload")
        [reply] = tab.wait(lambda t: t.finished(1), timeout=10)
        assert reply.status == "done" and reply.text == late.replies[0]
        time.sleep(1.0)  # a second answer or a late comment would have started by now
        [asked] = late.chat_requests()
        assert [m["content"] for m in asked["messages"][1:]][-1] == "anyone home?"
        assert "buy a lamp" in asked["messages"][-2]["content"], "the todo event rode with the waiting message"
        assert len(tab.replies()) == 1
    finally:
        late.stop()
        visitor.close()


def test_a_message_waiting_for_ollama_can_be_stopped(without_ollama):
    system, port = without_ollama
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    tab.send("never mind")
    [waiting] = tab.wait(lambda t: t.reply_ids("waiting"), what="waiting")
    tab.click("stop", waiting)
    tab.wait(lambda t: t.bubbles[waiting].status == "stopped", what="stopped")
    late = FakeOllama(port=port).start()
    try:
        tab.wait(lambda t: t.status_text == "brain ready", timeout=10)
        time.sleep(1.0)
        assert late.chat_requests() == [], "a stopped message is not asked once Ollama is back"
    finally:
        late.stop()
        visitor.close()


def test_a_model_that_is_not_pulled_names_the_pull_command_until_it_is_pulled(start_system, fake):
    system = start_system(ready=False, OLLAMA_MODEL="qwen3:4b", OLLAMA_CHECK_S=0.5)
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    pull = "qwen3:4b is not pulled — run `ollama pull qwen3:4b` (or pick another model)"
    tab.wait(lambda t: t.status_text == pull, what="the pull instruction")
    assert tab.picker == ["llama3.2:latest", "qwen3:4b (not pulled)"]

    tab.send("hello")
    [failed] = tab.wait(lambda t: t.finished(1))
    assert failed.status == "failed" and "`ollama pull qwen3:4b`" in failed.note

    fake.models.append("qwen3:4b")  # `ollama pull` finished while the page is open
    tab.wait(lambda t: t.status_text == "brain ready", timeout=10, what="ready once pulled")
    tab.wait(lambda t: t.picker == ["llama3.2:latest", "qwen3:4b"], what="the picker updated live")
    tab.send("hello again")
    assert tab.wait(lambda t: t.finished(2))[-1].status == "done"
    visitor.close()


def test_stop_before_the_first_token_hangs_up_on_a_slow_load_at_once(system, visitor, fake):
    fake.plan(Plan(first_byte_delay=30))  # a cold model load: no byte for 30 s
    tab = visitor.open_tab()
    tab.send("wake up")
    fake.wait(lambda f: f.chat_requests())
    [reply] = tab.wait(lambda t: t.reply_ids("thinking"), what="the reply on its way")
    time.sleep(0.3)
    pressed = time.monotonic()
    tab.click("stop", reply)
    fake.wait(lambda f: f.hangups, timeout=5)
    tab.wait(lambda t: t.bubbles[reply].status == "stopped", timeout=5, what="stopped")
    print(f"Stop -> Ollama's request closed in {fake.hangups[0] - pressed:.3f}s")
    tab.send("and now?")
    assert tab.wait(lambda t: t.finished(1) and t.replies("done"))[0].text == fake.replies[-1]


def test_an_error_mid_stream_keeps_the_partial_text_out_of_context(system, visitor, fake):
    fake.plan(Plan(chunks=["One", " two", " three", " four"], error_after=2))
    tab = visitor.open_tab()

    tab.send("count for me")
    [failed] = tab.wait(lambda t: t.finished(1))
    assert failed.status == "failed" and failed.text == "One two"
    assert "Ollama reported an error mid-reply" in failed.note

    tab.send("try again")
    assert tab.wait(lambda t: t.finished(2))[-1].status == "done"
    turns = fake.chat_requests()[-1]["messages"][1:]
    assert [m["role"] for m in turns] == ["user", "user"], "a broken reply must not enter the context as complete"


def statuses(tab) -> list[str]:
    "Every status line a tab was sent, in order."
    return [el.get_text() for f in tab.frames for el in BeautifulSoup(f, "html.parser").find_all(id="brain-status")]


def test_a_reply_whose_every_request_ollama_drops_fails_after_a_few_and_nobody_else_notices(start_system, fake):
    fake.models.append("qwen3:4b")
    fake.closing.add("qwen3:4b")  # its runner crashes: each request is closed before a byte, health checks pass
    system = start_system()
    system.wait_status(lambda s: any("qwen3:4b" in w["models"] for w in s["workers"].values()))
    doomed, other = Visitor(system.url), Visitor(system.url)
    try:
        tab, bystander = doomed.open_tab(), other.open_tab()
        bystander.wait(lambda t: t.status_text == "brain ready")
        tab.send_raw('{"model": "qwen3:4b"}')
        tab.send("hello?")
        fake.wait(lambda f: any(r["model"] == "qwen3:4b" for r in f.requests))
        bystander.send("me too")
        assert bystander.wait(lambda t: t.finished(1))[0].status == "done", "answered while the other reply retries"
        [failed] = tab.wait(lambda t: t.finished(1), timeout=15)
        assert failed.status == "failed" and failed.note.startswith(
            "Ollama answers its health check but not this reply: 3 requests in a row got no answer (Ollama at "
            f"{fake.url} closed the connection before answering).")
        time.sleep(3.0)  # past every pause a retry would wait
        assert [r["model"] for r in fake.requests].count("qwen3:4b") == 3, "a bounded number of requests"
        bystander.pump(0.5)
        assert set(statuses(bystander)) <= {"brain ready", "brain thinking…"}, "no tab was told Ollama is down"
        tab.send_raw('{"model": "llama3.2:latest"}')
        tab.send("and with the default?")
        assert tab.wait(lambda t: t.finished(2))[-1].status == "done"
    finally:
        doomed.close()
        other.close()


@pytest.mark.env(REPLY_MAX_TOKENS="5", REPLY_MAX_S="2")
def test_a_reply_is_cut_at_reply_max_tokens_and_at_reply_max_s_and_the_chat_says_so(system, visitor, fake):
    fake.plan(Plan(chunks=[f" w{i}" for i in range(40)]),
              Plan(chunks=[" slow", " and", " slower"], delay=1.2))  # the 2nd word comes past 2 s
    tab = visitor.open_tab()
    tab.send("talk forever")
    [long] = tab.wait(lambda t: t.finished(1))
    assert long.status == "done" and long.text == " w0 w1 w2 w3 w4"
    tab.send("take forever")
    [_, slow] = tab.wait(lambda t: t.finished(2))
    assert slow.status == "done" and slow.text == " slow"
    fake.wait(lambda f: f.hangups, timeout=5)  # Ollama was told to stop
    notes = [b.text for b in tab.bubbles.values() if b.role == "note"]
    assert notes == ["The reply was cut off at 5 tokens (REPLY_MAX_TOKENS).",
                     "The reply was cut off after 2 s (REPLY_MAX_S)."]
    assert {r["options"]["num_predict"] for r in fake.chat_requests()} == {5}
