"""Front-end features people expect: reply stats, export, the persona on show."""
import html
import os
import signal

import pytest

from apps.todo import PERSONA
from web.loop import APP_NOTES, RESTRAINT
from tests.fake_ollama import Plan, render_prompt, words
from tests.page import Visitor
from tests.replay import known_list
from tests.system import System


def test_reply_stats_show_when_ollama_sends_them_and_are_left_out_when_it_does_not(system, visitor, fake):
    chunks = words("Ten words here, give or take, for the stats line.")
    fake.plan(Plan(chunks=chunks), Plan(stats=False))
    tab = visitor.open_tab()
    tab.send("with stats")
    [reply] = tab.wait(lambda t: t.finished(1))
    # The fake reports eval_count=len(chunks) over 0.5 s, and 1 ms load + 100 ms prompt evaluation.
    assert reply.note == f"{len(chunks)} tokens · {len(chunks) / 0.5:.1f} tok/s · first token 0.10 s"
    tab.send("without stats")
    bare = tab.wait(lambda t: t.finished(2))[-1]
    assert bare.status == "done" and bare.note == ""


def test_export_holds_the_whole_conversation_as_markdown_and_json(system, visitor, fake):
    tab = visitor.open_tab()
    tab.send("first question")
    tab.wait(lambda t: t.finished(1))
    tab.send("second <question>")
    first, second = tab.wait(lambda t: t.finished(2))

    md = visitor.http.get(system.url + "/export/markdown", timeout=5)
    assert md.headers["content-disposition"] == 'attachment; filename="conversation.md"'
    assert md.headers["content-type"].startswith("text/markdown")
    for text in ("first question", first.text, "second <question>", second.text):
        assert text in md.text
    assert md.text.index("first question") < md.text.index(first.text) < md.text.index("second <question>")

    data = visitor.http.get(system.url + "/export/json", timeout=5).json()
    assert [(m["role"], m["text"]) for m in data["messages"]] == [
        ("user", "first question"), ("assistant", first.text),
        ("user", "second <question>"), ("assistant", second.text)]
    stranger = Visitor(system.url)
    assert stranger.http.get(system.url + "/export/json", timeout=5).json()["messages"] == []
    assert visitor.http.get(system.url + "/export/pdf", timeout=5).status_code == 404


def test_the_persona_is_configurable_and_shown_on_the_page(start_system, fake, tmp_path):
    persona = tmp_path / "persona.txt"
    persona.write_text("You are <b>terse</b> & dry. Never more than ten words.\n")
    system = start_system(SYSTEM_PROMPT_FILE=persona)
    visitor = Visitor(system.url)
    assert html.escape("You are <b>terse</b> & dry.", quote=False) in visitor.page.text
    tab = visitor.open_tab()
    tab.send("hello")
    tab.wait(lambda t: t.finished(1))
    system_message = fake.chat_requests()[-1]["messages"][0]
    assert system_message["role"] == "system"
    assert system_message["content"].startswith("You are <b>terse</b> & dry. Never more than ten words.")
    visitor.close()


def test_a_long_conversation_never_overflows_the_window_and_says_when_it_trims(start_system, fake):
    num_ctx = 2048  # the tool definitions take about 650 of them
    # The todo event goes with the first turn, not as a comment of its own, however long the tab takes to open.
    system = start_system(OLLAMA_NUM_CTX=num_ctx, COMMENT_DELAY_S=30,
                          SESSION_MAX_REPLIES=200, SESSION_BURST=500, SESSION_MAX_PENDING=500)  # 200 sent at once
    fake.default = Plan()  # no delay between chunks: 200 turns
    visitor = Visitor(system.url)
    visitor.add_todo("renew passport")
    tab = visitor.open_tab()
    turns = 200
    for i in range(turns):
        tab.send(f"message {i}: tell me something about the number {i} please")
    tab.wait(lambda t: t.finished(turns), timeout=100)  # the first turn carries the todo event too

    asked = fake.chat_requests()
    assert len(asked) == turns == len(fake.prompts)
    for request, prompt in zip(asked, fake.prompts):
        messages = request["messages"]
        assert request["options"]["num_ctx"] == num_ctx
        assert prompt.tokens <= num_ctx, "more than the window was sent"
        assert messages[0] == {"role": "system", "content": PERSONA + APP_NOTES + RESTRAINT}
        assert [t.title for t in known_list(messages)] == ["renew passport"], "the model always knows the list"
    typed = [m["content"] for m in asked[-1]["messages"] if m["role"] == "user" and not m["content"].startswith("App note:")]
    assert typed[-1].startswith(f"message {turns - 1}:")
    evaluated = [p.evaluated for p in fake.prompts]
    assert sum(evaluated) < 0.25 * sum(p.tokens for p in fake.prompts), "the cache holds between set-asides"
    notes = [b for b in tab.bubbles.values() if b.role == "note"]
    assert 1 <= len(notes) < turns / 5
    assert "set aside the" in notes[0].text and f"{num_ctx} tokens" in notes[0].text
    visitor.close()


def test_a_thinking_model_streams_its_reasoning_apart_from_the_answer(system, visitor, fake):
    fake.plan(Plan(thinking=["Hmm, ", "they want ", "a number."], chunks=["Forty", "-two."], delay=0.02))
    tab = visitor.open_tab()
    tab.send("pick a number")
    [reply] = tab.wait(lambda t: t.finished(1))
    assert reply.thinking == "Hmm, they want a number." and reply.text == "Forty-two."

    tab.send("why that one?")
    tab.wait(lambda t: t.finished(2))
    turns = fake.chat_requests()[-1]["messages"][1:]
    assert turns[1] == {"role": "assistant", "content": "Forty-two."}, "thinking stays out of the context"
    data = visitor.http.get(system.url + "/export/json", timeout=5).json()
    assert data["messages"][1]["thinking"] == "Hmm, they want a number."
    late = visitor.open_tab()
    assert [b.thinking for b in late.bubbles.values() if b.role == "reply"][0] == "Hmm, they want a number."


def test_regenerate_replaces_the_last_reply_everywhere(system, visitor, fake):
    tab = visitor.open_tab()
    tab.send("first")
    tab.wait(lambda t: t.finished(1))
    tab.send("tell me a joke")
    [first_id, last_id] = tab.wait(lambda t: t.finished(2) and t.reply_ids())
    old = tab.bubbles[last_id].text

    tab.click("regenerate", first_id)
    tab.wait(lambda t: "Only the newest" in t.notice, what="older replies are not regenerated")
    tab.click("regenerate", last_id)
    tab.wait(lambda t: t.bubbles[last_id].status == "done" and t.bubbles[last_id].text != old)
    assert tab.bubbles[last_id].text == fake.replies[-1] and len(tab.replies()) == 2
    asked = fake.chat_requests()[-1]["messages"]
    assert asked[-1] == {"role": "user", "content": "tell me a joke"}, "the old reply is not in the context"

    os.kill(system.worker_pid(), signal.SIGKILL)  # the change must be on disk, not just in memory
    system.wait_status(lambda s: s["status"] == "ready")
    tab.send("another")
    tab.wait(lambda t: t.finished(3))
    contents = [m["content"] for m in fake.chat_requests()[-1]["messages"][1:]]
    assert contents[-3:] == ["tell me a joke", fake.replies[-2], "another"] and old not in contents
    exported = visitor.http.get(system.url + "/export/json", timeout=5).json()["messages"]
    assert old not in [m["text"] for m in exported]


def test_the_brain_loads_the_model_at_start_and_the_page_says_so(tmp_path, fake):
    fake.load_delay = 2.0
    system = System(tmp_path, fake.url, OLLAMA_KEEP_ALIVE="1h").start()
    try:
        loading = system.wait_status(lambda s: s["status"] == "loading")
        assert loading["text"] == "loading llama3.2…"
        visitor = Visitor(system.url)
        assert "loading llama3.2…" in visitor.page.text
        tab = visitor.open_tab()
        assert tab.picker == ["llama3.2:latest"], "the list is known before the load ends"
        tab.wait(lambda t: t.status == "brain ready", timeout=10, what="ready once loaded")
        warm = [r for r in fake.requests if not r.get("messages")]
        assert warm == [{"model": "llama3.2", "messages": [], "stream": True, "options": {"num_ctx": 8192},
                         "keep_alive": "1h"}]
        tab.send("hi")
        tab.wait(lambda t: t.finished(1))
        assert fake.cache.loads == ["llama3.2"], "the first chat uses the loaded model: same num_ctx, no reload"
        assert "llama3.2 loaded in" in system.log("brain")
        visitor.close()
    finally:
        system.stop_all()


def test_the_model_picker_lists_pulled_models_switches_per_session_and_keeps_the_conversation(start_system, fake):
    fake.models.append("qwen3:4b")
    system = start_system()
    system.wait_status(lambda s: any("qwen3:4b" in w["models"] for w in s["workers"].values()))
    visitor = Visitor(system.url)
    page = visitor.http.get(system.url + "/", timeout=5).text
    assert 'value="llama3.2:latest" selected' in page and 'value="qwen3:4b"' in page
    tab = visitor.open_tab()
    tab.send("hello")
    tab.wait(lambda t: t.finished(1))

    tab.send_raw('{"model": "mistral"}')
    tab.wait(lambda t: "Run `ollama pull mistral`" in t.notice, what="the pull hint")
    tab.send_raw('{"model": "qwen3:4b"}')
    tab.send("and now?")
    tab.wait(lambda t: t.finished(2))
    asked = fake.chat_requests()[-1]
    assert asked["model"] == "qwen3:4b"
    assert [m["content"] for m in asked["messages"][1:]][:1] == ["hello"], "the conversation carried over"
    assert 'value="qwen3:4b" selected' in visitor.http.get(system.url + "/", timeout=5).text
    other = Visitor(system.url)
    other.open_tab().send("me too")
    assert fake.wait(lambda f: f.chat_requests()[-1]["model"] == "llama3.2"), "other sessions keep the default"
    other.close()
    visitor.close()


def test_todo_changes_between_turns_keep_the_prompt_cache_so_each_request_evaluates_only_its_newest_turn(
        system, visitor, fake):
    tab = visitor.open_tab()
    ids = []
    for turn in range(30):
        if turn % 2:  # a todo change right before every other turn: the case that used to re-read everything
            if turn % 4 == 1 or not ids:
                ids.append(visitor.add_todo(f"errand {turn}"))
            else:
                visitor.htmx("POST", f"/todos/{ids[-1]}/toggle").raise_for_status()
        tab.send(f"turn {turn}: what now?")
        tab.wait(lambda t, n=turn + 1: t.finished(n), timeout=15)

    asked, prompts = fake.chat_requests(), fake.prompts
    assert len(asked) == 30 and fake.cache.loads == ["llama3.2"], "one load: options never changed"
    for before, after in zip(asked, asked[1:]):
        assert after["messages"][:len(before["messages"])] == before["messages"], "append-only"
    for request, prompt in zip(asked[1:], prompts[1:]):
        last_reply = max(i for i, m in enumerate(request["messages"]) if m["role"] == "assistant")
        newest_turn = len(render_prompt({"messages": request["messages"][last_reply + 1:]}))
        assert prompt.evaluated <= newest_turn + 2, (prompt, request["messages"][last_reply + 1:])
    assert [t.id for t in known_list(asked[-1]["messages"])] == ids
    print(f"30 turns: {prompts[-1].tokens} prompt tokens at the end; evaluated per request: "
          f"{[p.evaluated for p in prompts]}")


@pytest.mark.env(COMMENT_DELAY_S=5)
def test_a_todo_change_is_evaluated_while_the_user_types_so_the_next_message_costs_only_itself(
        system, visitor, fake):
    tab = visitor.open_tab()
    tab.send("hello")
    tab.wait(lambda t: t.finished(1))
    tid = visitor.add_todo("buy oat milk")
    [warm] = fake.wait(lambda f: f.warms)
    app_turn = {"role": "user", "content": f"App note: The user added #{tid} 'buy oat milk'.\n"
                                           f"The todo list now:\n- [ ] #{tid} buy oat milk"}  # the first: stated whole
    assert warm.evaluated <= len(render_prompt({"messages": [app_turn]})) + 2, "only the new event is evaluated"
    warmed = fake.requests[-1]
    assert warmed["options"] == {"num_ctx": 8192, "num_predict": 1} and warmed["messages"][-1] == app_turn

    tab.send("what now?")
    tab.wait(lambda t: t.finished(2))
    chat = fake.chat_requests()[-1]
    assert chat["messages"][-2:] == [app_turn, {"role": "user", "content": "what now?"}]
    newest = len(render_prompt({"messages": [{"role": "user", "content": "what now?"}]}))
    assert fake.prompts[-1].evaluated <= newest + 2, "the event was already in the cache"
    assert fake.cache.loads == ["llama3.2"], "warming changed no load option"
