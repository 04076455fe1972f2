"""The whole system as a user meets it: real web and brain processes, a fake Ollama, WebSocket tabs."""
import time

import requests

from apps.todo import PERSONA
from web.loop import APP_NOTES, RESTRAINT
from apps.todo.store import Todo
from tests.fake_ollama import Plan, words
from tests.page import Visitor
from tests.replay import known_list


def test_reply_streams_chunk_by_chunk_and_equals_what_ollama_sent(system, visitor, fake):
    chunks = words("Well well. Another human who wants to chat with a todo list. Go on then.")
    fake.plan(Plan(chunks=chunks, delay=0.03))
    tab = visitor.open_tab()

    tab.send("hello there")
    tab.wait(lambda t: any(b.role == "user" and b.text == "hello there" for b in t.bubbles.values()),
             timeout=2, what="the user's own message shown at once")
    [reply] = tab.wait(lambda t: t.finished(1), what="the reply")

    assert reply.status == "done"
    assert reply.text == "".join(chunks) == fake.replies[-1]
    # Typewriter: after the first chunk opened the bubble, the rest was appended in order over many
    # frames, not as one block at the end (under load, chunks that arrive together may share one).
    appended = [text for bid, text in tab.appends if bid.startswith("reply-")]
    assert appended and "".join(chunks).endswith("".join(appended))
    assert len(appended) > len(chunks) // 2


def test_second_turn_carries_the_first_as_context(system, visitor, fake):
    tab = visitor.open_tab()
    tab.send("my name is Ada")
    [first] = tab.wait(lambda t: t.finished(1))
    tab.send("what is my name?")
    tab.wait(lambda t: t.finished(2))

    messages = fake.chat_requests()[-1]["messages"]
    assert messages[0]["role"] == "system" and "attitude" in messages[0]["content"]
    turns = [(m["role"], m["content"]) for m in messages[1:]]
    assert turns == [("user", "my name is Ada"), ("assistant", first.text), ("user", "what is my name?")]


def test_two_tabs_of_one_session_see_the_same_stream(system, visitor, fake):
    fake.plan(Plan(delay=0.02))
    one, two = visitor.open_tab(), visitor.open_tab()
    one.send("hi from tab one")
    [reply_one] = one.wait(lambda t: t.finished(1))
    [reply_two] = two.wait(lambda t: t.finished(1))
    assert reply_one.text == reply_two.text == fake.replies[-1]
    assert any(b.text == "hi from tab one" for b in two.bubbles.values())


def test_a_new_tab_gets_the_transcript(system, visitor):
    tab = visitor.open_tab()
    tab.send("remember this")
    [reply] = tab.wait(lambda t: t.finished(1))
    late = visitor.open_tab()
    assert [(b.role, b.text, b.status) for b in late.bubbles.values()] == [
        ("user", "remember this", "done"), ("reply", reply.text, "done")]
    assert "remember this" in visitor.http.get(system.url + "/").text


def test_two_sessions_stream_at_once_and_never_see_each_other(start_system, fake):
    system = start_system()
    long_reply = words(" ".join(f"word{i}" for i in range(40)))
    fake.plan(Plan(chunks=long_reply, delay=0.05), Plan(chunks=long_reply, delay=0.05))
    alice, bob = Visitor(system.url), Visitor(system.url)
    a, b = alice.open_tab(), bob.open_tab()

    a.send("alice here")
    a.wait(lambda t: t.replies("streaming"), what="alice's reply streaming")
    b.send("bob here")
    b.wait(lambda t: t.replies("streaming"), what="bob's reply streaming")
    while a.pump(0):
        pass
    assert a.replies("streaming"), "bob's reply began only after alice's ended"
    # The page still loads at once while two replies stream.
    assert requests.get(system.url + "/", timeout=2).status_code == 200

    a.wait(lambda t: t.finished(1), timeout=15)
    b.wait(lambda t: t.finished(1), timeout=15)
    assert {x.text for x in a.bubbles.values()} == {"alice here", "".join(long_reply)}
    assert {x.text for x in b.bubbles.values()} == {"bob here", "".join(long_reply)}
    assert not set(a.bubbles) & set(b.bubbles)
    alice.close()
    bob.close()


def test_a_todo_reaches_the_model_which_comments_and_knows_the_list(system, visitor, fake):
    tab = visitor.open_tab()
    tid = visitor.add_todo("buy oat milk")

    [comment] = tab.wait(lambda t: t.finished(1), what="the model's comment on the new todo")
    assert comment.status == "done" and comment.text == fake.replies[-1]
    request = fake.chat_requests()[-1]["messages"]
    assert request[0] == {"role": "system", "content": PERSONA + APP_NOTES + RESTRAINT}, "the persona alone: it never changes"
    note = {"role": "user", "content": f"App note: The user added #{tid} 'buy oat milk'.\n"
                                        f"The todo list now:\n- [ ] #{tid} buy oat milk"}
    assert request[-1] == note, "the first note states the whole list"

    tid2 = visitor.add_todo("walk the dog")
    tab.wait(lambda t: t.finished(2), what="the comment on the second todo")
    request = fake.chat_requests()[-1]["messages"]
    assert request[-1] == {"role": "user", "content": f"App note: The user added #{tid2} 'walk the dog'."}, \
        "the model works the list out from what it was told: the change alone"
    assert known_list(request) == [Todo(tid, "buy oat milk", False), Todo(tid2, "walk the dog", False)]

    tab.send("what's on my list?")
    tab.wait(lambda t: t.finished(3))
    request = fake.chat_requests()[-1]["messages"]
    assert request[1:] == [
        note, {"role": "assistant", "content": fake.replies[0]}, request[3],
        {"role": "assistant", "content": fake.replies[1]}, {"role": "user", "content": "what's on my list?"}]


def test_a_burst_of_clicks_makes_one_comment(start_system, fake):
    system = start_system(COMMENT_DELAY_S=1.0)
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    tid = visitor.add_todo("water the plants")
    for _ in range(5):
        visitor.htmx("POST", f"/todos/{tid}/toggle").raise_for_status()
    visitor.htmx("DELETE", f"/todos/{tid}").raise_for_status()
    visitor.add_todo("feed the cat")

    tab.wait(lambda t: t.finished(1))
    time.sleep(2.0)  # longer than the coalescing window: any second comment would have started
    requests_made = fake.chat_requests()
    assert len(requests_made) == 1
    messages = requests_made[0]["messages"]
    events = messages[-1]["content"]
    assert events.count(f"marked #{tid} 'water the plants'") == 5 and f"deleted #{tid} 'water the plants'" in events
    assert [t.title for t in known_list(messages)] == ["feed the cat"]
    visitor.close()


def test_todo_routes_validate_and_scope_to_the_session(system, visitor):
    assert visitor.htmx("POST", "/todos", title="   ").status_code == 400
    tid = visitor.add_todo("mine")
    stranger = Visitor(system.url)
    assert stranger.htmx("POST", f"/todos/{tid}/toggle").status_code == 404
    assert stranger.htmx("DELETE", f"/todos/{tid}").status_code == 404
    assert "mine" not in stranger.http.get(system.url + "/").text
    assert "mine" in visitor.http.get(system.url + "/").text


def test_two_copies_of_the_app_run_side_by_side(start_system, fake):
    first, second = start_system(), start_system()
    assert first.env["DATA_DIR"] != second.env["DATA_DIR"] and first.port != second.port
    one, two = Visitor(first.url), Visitor(second.url)
    one.add_todo("only in the first app")
    tab_one, tab_two = one.open_tab(), two.open_tab()
    tab_two.send("hello second app")
    assert tab_two.wait(lambda t: t.finished(1))[0].status == "done"
    tab_one.wait(lambda t: t.finished(1))  # the first app's comment on its todo
    assert all(b.text != "hello second app" for b in tab_one.bubbles.values())
    assert first.wait_status(lambda s: s["workers"])["workers"] != second.wait_status(lambda s: s["workers"])["workers"]
    one.close()
    two.close()
