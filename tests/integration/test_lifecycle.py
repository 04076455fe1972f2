"""Process-level: a reply's whole life as a user meets it over the WebSocket: retried as often as
it fails, comments that fail say so, the transcript keeps the order the page showed, and every
way of asking again uses the session's model."""
from tests.fake_ollama import FakeOllama, Plan
from tests.page import Visitor


def test_a_reply_can_be_retried_as_often_as_it_fails(system, visitor, fake):
    fake.plan(Plan(status=500, error="out of memory"), Plan(status=500, error="out of memory again"))
    tab = visitor.open_tab()
    tab.send("try me")
    [first] = tab.wait(lambda t: t.reply_ids("failed"), what="the first failure")
    tab.click("retry", first)
    [second] = tab.wait(lambda t: [r for r in t.reply_ids("failed") if r != first], what="the retry failing too")
    tab.click("retry", second)
    [answer] = tab.wait(lambda t: t.reply_ids("done"), what="the second retry answered")
    assert tab.bubbles[answer].text == fake.replies[-1] and "nothing to retry" not in tab.notice
    assert [m["content"] for m in fake.chat_requests()[-1]["messages"][1:]] == ["try me"], "asked once in the context"


def test_a_comment_that_fails_says_why_and_can_be_retried_after_a_reload_too(system, visitor, fake):
    fake.plan(Plan(status=500, error="CUDA out of memory"))
    tab = visitor.open_tab()
    visitor.add_todo("fix the bike")
    [failed] = tab.wait(lambda t: t.reply_ids("failed"), what="the failed comment shown")
    assert "CUDA out of memory" in tab.bubbles[failed].note
    later = visitor.open_tab()
    assert later.bubbles[failed].status == "failed" and "CUDA out of memory" in later.bubbles[failed].note
    later.click("retry", failed)
    [comment] = later.wait(lambda t: t.reply_ids("done"), what="the comment answered on retry")
    assert later.bubbles[comment].text == fake.replies[-1]
    assert fake.chat_requests()[-1]["messages"][-1]["content"] == (
        "App note: The user added #1 'fix the bike'.\nThe todo list now:\n- [ ] #1 fix the bike"), "the first note states the list"


def test_the_transcript_keeps_the_order_the_page_showed_in_the_export_and_after_a_web_restart(system, visitor, fake):
    fake.plan(Plan(delay=0.05), Plan())
    tab = visitor.open_tab()
    tab.send("one")
    tab.send("two")  # while the first reply streams: it waits its turn
    tab.wait(lambda t: t.finished(2))
    shown = [(b.role, b.text) for b in tab.bubbles.values()]
    assert [role for role, _ in shown] == ["user", "reply", "user", "reply"]
    exported = visitor.http.get(system.url + "/export/json", timeout=5).json()["messages"]
    assert [(m["role"], m["text"]) for m in exported] == [("user" if r == "user" else "assistant", t) for r, t in shown]

    system.stop("web")
    system.start("web")
    system.wait_ready()
    again = Visitor(system.url)
    again.http.cookies.update(visitor.http.cookies)
    assert [(b.role, b.text) for b in again.open_tab().bubbles.values()] == shown
    again.close()


def test_retry_and_regenerate_use_the_model_the_session_picked_since(start_system, fake):
    fake.models.append("qwen3:4b")
    system = start_system()
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    fake.plan(Plan(status=500, error="llama3.2 is broken today"))
    tab.send("hello")
    [failed] = tab.wait(lambda t: t.reply_ids("failed"))
    tab.send_raw('{"model": "qwen3:4b"}')  # the user switches model, then retries
    tab.wait(lambda t: t.model == "qwen3:4b", what="the model chosen")
    tab.click("retry", failed)
    [done] = tab.wait(lambda t: t.reply_ids("done"))
    tab.send_raw('{"model": "llama3.2:latest"}')  # and back, then regenerates
    tab.wait(lambda t: t.model == "llama3.2:latest", what="the model chosen again")
    tab.click("regenerate", done)
    fake.wait(lambda f: len(f.chat_requests()) == 3)
    assert [r["model"] for r in fake.chat_requests()] == ["llama3.2", "qwen3:4b", "llama3.2:latest"]
    visitor.close()


def test_a_model_can_be_chosen_before_the_brain_has_listed_the_models(without_ollama):
    system, port = without_ollama
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    tab.wait(lambda t: "ollama-down" in t.status, what="no model list yet")
    tab.send_raw('{"model": "qwen3:4b"}')
    tab.wait(lambda t: t.model == "qwen3:4b", what="the choice taken")
    assert tab.notice == ""
    late = FakeOllama(models=("llama3.2:latest", "qwen3:4b"), port=port).start()
    try:
        tab.wait(lambda t: t.status_text == "brain ready", timeout=10)
        tab.send("hi")
        tab.wait(lambda t: t.finished(1))
        assert late.chat_requests()[-1]["model"] == "qwen3:4b"
    finally:
        late.stop()
        visitor.close()
