"""The model acts on the todo list through tool calls: applied by the web once, live in every tab
of the session (and no other), shown as cards with an Undo, and answered to the model."""
import os
import signal
import time

import pytest
from bs4 import BeautifulSoup

from apps.todo import loop
from tests import slow_app
from tests.fake_ollama import Plan
from tests.page import Visitor
from web.apps import Host, tool_schema

TOOLS = [tool_schema(a) for a in loop.as_app(Host(None)).actions]  # as the web offers them


def call(tool, call_id="", **arguments):
    "The model calls `tool`, with its own id `call_id` (one the fake makes up when \"\")."
    return Plan(tool_calls=[{"name": tool, "arguments": arguments, "id": call_id}])


def test_add_me_oat_milk_adds_it_live_in_every_tab_of_the_session_and_nowhere_else(system, visitor, fake):
    fake.plan(call("add_todo", title="oat milk"), Plan(chunks=["Added", " it."]))
    tab, other_tab = visitor.open_tab(), visitor.open_tab()
    stranger = Visitor(system.url).open_tab()
    tab.send("add oat milk to my list")
    [reply] = tab.wait(lambda t: t.reply_ids("done"))
    assert tab.bubbles[reply].text == "Added it." and tab.bubbles[reply].cards == [("Added #1 'oat milk'.", "Undo")]
    other_tab.wait(lambda t: t.todos == {1: ("oat milk", False)}, what="the other tab sees it live")
    assert tab.todos == {1: ("oat milk", False)} and stranger.todos == {}
    assert list_on_page(visitor) == ["oat milk"]

    first, second = fake.chat_requests()[-2:]
    assert first["tools"] == TOOLS == second["tools"], "the same tools in every request"
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "add_todo"
    assert second["messages"][-1] == {"role": "tool", "tool_name": "add_todo",
                                      "content": "Added #1 'oat milk'. The todo list is now: #1 oat milk."}


def test_each_action_and_its_undo(system, visitor, fake):
    ids = {title: visitor.add_todo(title) for title in ("call the plumber", "buy stamps", "water plants")}
    tab = visitor.open_tab()
    tab.wait(lambda t: t.finished(1), what="the comment on the new todos")
    steps = [  # what the user says names the todo: the app changes no other (apps/todo `find`)
        ("tick off the stamps", call("set_todo_done", id=ids["buy stamps"], done=True), {ids["buy stamps"]: ("buy stamps", True)}),
        ("the plants are ferns", call("rename_todo", id=ids["water plants"], title="water the ferns"),
         {ids["water plants"]: ("water the ferns", False)}),
        ("the plumber came", call("delete_todo", id=ids["call the plumber"]), {}),
        ("clear the done ones", call("clear_done"), {}),
    ]
    for n, (said, plan, shown) in enumerate(steps, start=2):
        fake.plan(plan, Plan(chunks=["Done."]))
        tab.send(said)
        tab.wait(lambda t, n=n: t.finished(n))
        for tid, value in shown.items():
            assert tab.todos[tid] == value
    assert ids["call the plumber"] not in tab.todos and ids["buy stamps"] not in tab.todos
    # Each action by the id the brain gave its call (the model's never reaches the web).
    calls = [m["tool_calls"][0]["id"] for m in fake.chat_requests()[-1]["messages"] if m.get("tool_calls")]
    assert len(calls) == 4 and not {c[0]["id"] for c in fake.calls} & set(calls)
    for undo in reversed(calls):  # undo everything, newest first
        tab.undo(undo)
    tab.wait(lambda t: {tid: t.todos.get(tid) for tid in ids.values()} == {
        ids["call the plumber"]: ("call the plumber", False), ids["buy stamps"]: ("buy stamps", False),
        ids["water plants"]: ("water plants", False)}, what="everything undone")
    assert list_on_page(visitor) == sorted(ids), "after a reload too"
    tab.wait(lambda t: [state for b in t.bubbles.values() for _, state in b.cards] == ["undone"] * 4,
             what="every card marked undone")
    fake.wait(lambda f: any(m["content"].startswith("App note: The user undid the model's")
                            and "undid the model's delete_todo (Deleted" in m["content"]
                            for r in f.chat_requests() for m in r["messages"]), timeout=10)


def list_on_page(visitor) -> list[str]:
    page = BeautifulSoup(visitor.http.get(visitor.base + "/", timeout=5).text, "html.parser")
    return sorted(span.get_text() for span in page.select("#todo-list .title"))


@pytest.mark.env(MODEL_TOOL_ROUNDS=5)
def test_a_wrong_call_changes_nothing_and_tells_the_model_what_to_do(system, visitor, fake):
    fake.plan(call("delete_todo", id=7), call("add_todo", title="   "), call("add_todo"),
              call("launch_rockets"), Plan(chunks=["Sorry."]))
    tab = visitor.open_tab()
    tab.send("delete number seven")
    [reply] = tab.wait(lambda t: t.reply_ids("done"))
    results = [m["content"] for m in fake.chat_requests()[-1]["messages"] if m["role"] == "tool"]
    assert results[0].startswith("Error: there is no todo #7. The todo list is now empty.")
    assert results[1].startswith("Error: a title must be 1 to 500 characters.")
    assert results[2].startswith("Error: add_todo takes title:")
    assert results[3].startswith("Error: there is no tool named 'launch_rockets'")
    assert all(state == "" for _, state in tab.bubbles[reply].cards) and tab.todos == {}


def test_calls_after_the_round_limit_are_not_made_and_the_reply_says_so(system, visitor, fake):
    fake.plan(call("add_todo", title="oat milk"), call("delete_todo", id=1), Plan(chunks=["never asked"]))
    tab = visitor.open_tab()
    tab.send("add oat milk")
    [reply] = tab.wait(lambda t: t.reply_ids("done") and any("MODEL_TOOL_ROUNDS" in b.text for b in t.bubbles.values())
                       and t.reply_ids("done"))
    assert tab.todos == {1: ("oat milk", False)} and len(fake.chat_requests()) == 2, "one round by default, then none"
    assert [b.text for b in tab.bubbles.values() if b.role == "note"] == [
        "The model asked for more changes (delete_todo) after 1 round of them in one reply; they were not made "
        "(MODEL_TOOL_ROUNDS)."]


def test_a_round_whose_calls_all_failed_may_be_put_right_and_does_not_count(system, visitor, fake):
    fake.plan(call("clean_up_completed"), call("delete_todo", id=7), call("add_todo", title="oat milk"),
              Plan(chunks=["Added."]))
    tab = visitor.open_tab()
    tab.send("add oat milk")
    tab.wait(lambda t: t.reply_ids("done"))
    assert tab.todos == {1: ("oat milk", False)} and len(fake.chat_requests()) == 4


@pytest.mark.env(MODEL_TOOL_ROUNDS=3)
def test_more_rounds_when_configured(system, visitor, fake):
    fake.plan(*[call("add_todo", title=f"item {i}") for i in range(4)], Plan(chunks=["never asked"]))
    tab = visitor.open_tab()
    tab.send("add item 0, item 1, item 2, item 3 and more items forever")
    tab.wait(lambda t: t.reply_ids("done") and any("after 3 rounds" in b.text for b in t.bubbles.values()))
    assert len(tab.todos) == 3 and len(fake.chat_requests()) == 4


def test_at_most_eight_calls_of_one_message_are_applied(system, visitor, fake):
    fake.plan(Plan(tool_calls=[{"name": "add_todo", "arguments": {"title": f"thing {i}"}} for i in range(10)]),
              Plan(chunks=["Done."]))
    tab = visitor.open_tab()
    tab.send("add ten things")
    tab.wait(lambda t: t.reply_ids("done"))
    results = [m["content"] for m in fake.chat_requests()[-1]["messages"] if m["role"] == "tool"]
    assert len(results) == 10 and all(r.startswith("Error: at most 8 calls at once") for r in results[8:])
    assert sorted(title for title, _ in tab.todos.values()) == sorted(f"thing {i}" for i in range(8))


def test_a_model_without_tools_is_asked_again_without_them_and_the_session_remembers(start_system, fake):
    fake.models.append("gemma3:270m")
    fake.without_tools.add("gemma3:270m")
    system = start_system(OLLAMA_MODEL="gemma3:270m")
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    tab.send("add milk")
    tab.wait(lambda t: t.reply_ids("done"))
    tab.send("and eggs")
    tab.wait(lambda t: len(t.reply_ids("done")) == 2)
    notes = [b.text for b in tab.bubbles.values() if b.role == "note"]
    assert notes == ["gemma3:270m cannot act on the app (it does not support tools); it can still talk about it."]
    asked = [r for r in fake.requests if r.get("messages")]
    assert ["tools" in r for r in asked] == [True, False, False]
    time.sleep(0.1)
    visitor.close()


def test_a_brain_killed_mid_action_leaves_one_applied_action_and_the_next_brain_goes_on_after_it(system, visitor, fake):
    fake.plan(call("add_todo", title="oat milk"), Plan(chunks=["Added"] * 200, delay=0.05))
    tab = visitor.open_tab()
    tab.send("add oat milk")
    [reply] = tab.wait(lambda t: t.reply_ids("streaming"), what="the reply going on after the action")
    os.kill(system.worker_pid(), signal.SIGKILL)
    tab.wait(lambda t: t.bubbles[reply].status == "done", timeout=20, what="carried on and finished")
    assert tab.bubbles[reply].text == "Added" * 200
    assert tab.bubbles[reply].cards == [("Added #1 'oat milk'.", "Undo")] and tab.todos == {1: ("oat milk", False)}
    asked = fake.chat_requests()[-1]["messages"]
    assert [m["role"] for m in asked[1:]] == ["user", "assistant", "tool", "assistant"], "continued after the result"
    assert list_on_page(visitor) == ["oat milk"] and len(fake.calls) == 1, "the action applied once"




def test_a_call_id_the_model_gives_again_in_a_later_reply_is_a_new_call(system, visitor, fake):
    "Templates and engines that number calls give call_0 in every reply: the second is not the first."
    fake.plan(call("add_todo", "call_0", title="milk"), Plan(chunks=["Added."]),
              call("add_todo", "call_0", title="eggs"), Plan(chunks=["Added too."]))
    tab = visitor.open_tab()
    tab.send("add milk")
    tab.wait(lambda t: t.finished(1))
    tab.send("add eggs")
    first, second = tab.wait(lambda t: t.finished(2))
    assert tab.todos == {1: ("milk", False), 2: ("eggs", False)}
    assert second.cards == [("Added #2 'eggs'.", "Undo")], "applied, not answered with the first call's result"
    told = [m["content"] for m in fake.chat_requests()[-1]["messages"] if m["role"] == "tool"]
    assert [t.split(".")[0] for t in told] == ["Added #1 'milk'", "Added #2 'eggs'"]


def tools_told(messages: list[dict]) -> tuple[list[str], list[str]]:
    "The calls an assistant message holds, and the results told, in a request's messages."
    calls = [c["function"]["name"] for m in messages for c in m.get("tool_calls") or ()]
    return calls, [m["content"] for m in messages if m["role"] == "tool"]


@pytest.mark.env(APP="tests.slow_app")
@pytest.mark.parametrize("run", range(3))
def test_a_brain_killed_while_the_web_applies_its_call_has_it_applied_once_and_never_asked_again(system, visitor, fake,
                                                                                                 run):
    """The web applies the call and answers after its brain died unsaved: the resume carries the call and
    its result, so the next brain neither asks the question as if nothing was done nor makes the call again."""
    # After the kill the model asks for it again (a model told nothing of it would), then says something.
    fake.plan(call("add_todo", title="oat milk"), call("add_todo", title="oat milk"), Plan(chunks=["Added it."]))
    tab = visitor.open_tab()
    tab.send("add oat milk")
    [reply] = tab.wait(lambda t: t.reply_ids("thinking") or t.reply_ids("streaming"))
    deadline = time.monotonic() + 10
    while slow_app.BEGINS not in system.log("web"):
        assert time.monotonic() < deadline, "the web never began applying the call"
        time.sleep(0.01)
    os.kill(system.worker_pid(), signal.SIGKILL)  # the web is applying: the brain has saved nothing of the round
    tab.wait(lambda t: t.bubbles[reply].status in ("done", "failed"), timeout=20, what="carried on to its end")
    assert tab.bubbles[reply].status == "done"
    assert tab.bubbles[reply].cards == [("Added #1 'oat milk'.", "Undo")] and tab.todos == {1: ("oat milk", False)}
    resumed = fake.chat_requests()[1]["messages"]
    assert tools_told(resumed) == (["add_todo"], ["Added #1 'oat milk'."]), "the resume holds the call and its result"

    tab.send("thanks")
    tab.wait(lambda t: t.finished(2))
    asked = fake.chat_requests()[-1]["messages"]
    calls, results = tools_told(asked)
    assert calls == ["add_todo"] and len(results) == 1 and results[0].startswith("Added #1 'oat milk'."), \
        "the call once in the model's context"
    assert not any("cut off" in m["content"] for m in asked), "and not told again as a late result"
    assert list_on_page(visitor) == ["oat milk"] and len(fake.calls) == 2, "applied once, though asked for twice"


@pytest.mark.env(MODEL_TOOL_MODE="decide")
def test_in_decide_mode_a_decision_held_to_the_tools_acts_and_the_reply_in_words_follows(system, visitor, fake):
    fake.plan(Plan(json={"calls": [{"name": "add_todo", "arguments": {"title": "oat milk"}}]}),
              Plan(chunks=["Oat milk,", " noted."]))
    tab = visitor.open_tab()
    tab.send("add oat milk to my list")
    [reply] = tab.wait(lambda t: t.reply_ids("done"))
    assert tab.bubbles[reply].text == "Oat milk, noted." and tab.bubbles[reply].cards == [("Added #1 'oat milk'.", "Undo")]
    assert list_on_page(visitor) == ["oat milk"]
    decision, words = fake.chat_requests()[-2:]
    assert "tools" not in decision and "tools" not in words, "tools are told in the system message, never sent"
    assert decision["messages"][0]["content"].endswith("Your reply to the user is words only, never JSON.")
    assert decision["format"]["properties"]["calls"]["items"]["anyOf"][0]["properties"]["name"] == {"const": "add_todo"}
    assert "format" not in words and decision["options"]["temperature"] == 0
    assert words["messages"][:len(decision["messages"])] == decision["messages"], "the reply's prompt goes on from it"
    assert words["messages"][len(decision["messages"]):] == [
        {"role": "user", "content": "App note: As the user asked, the app did this: Added #1 'oat milk'."},
        {"role": "system", "content": "Now reply to the user in words, not JSON."}]
    assert not fake.errors, "the fake found the decision's schema valid, as llama.cpp's converter would"


def test_a_reply_that_says_it_changed_the_list_when_nothing_changed_is_marked_in_the_chat(system, visitor, fake):
    fake.plan(Plan(chunks=["I renamed it.", " The todo list is now: #1 oat milk."]))
    tab = visitor.open_tab()
    tab.send("rename the milk one")
    [reply] = tab.wait(lambda t: t.reply_ids("done"))
    assert tab.bubbles[reply].text == "I renamed it. The todo list is now: #1 oat milk."
    tab.wait(lambda t: any(b.role == "note" and b.text.startswith('Nothing was changed, though this reply says so ("I renamed")')
                           for b in t.bubbles.values()), what="the note under the reply")


@pytest.mark.env(MODEL_TOOL_MODE="decide")
def test_in_decide_mode_an_ollama_that_refuses_the_decisions_format_fails_the_reply_and_the_next_one_is_answered(
        system, visitor, fake):
    fake.plan(Plan(status=500, error="invalid JSON schema in format"), Plan(json={"calls": []}), Plan(chunks=["Hello."]))
    tab = visitor.open_tab()
    tab.send("add oat milk")
    [failed] = tab.wait(lambda t: t.finished(1), timeout=15)
    assert failed.status == "failed" and "Ollama answered 500: invalid JSON schema in format" in failed.note
    tab.send("hi")
    assert tab.wait(lambda t: t.finished(2), timeout=15)[-1].text == "Hello."
    assert list_on_page(visitor) == []


def test_auto_decides_for_a_small_model_as_ollama_describes_it_and_asks_about_it_once(start_system, fake):
    fake.models.append("qwen2.5-coder:0.5b")
    fake.sizes["qwen2.5-coder:0.5b"] = 494_032_768
    system = start_system(OLLAMA_MODEL="qwen2.5-coder:0.5b")
    fake.plan(Plan(json={"calls": [{"name": "add_todo", "arguments": {"title": "oat milk"}}]}), Plan(chunks=["Noted."]),
              Plan(json={"calls": []}), Plan(chunks=["Hi."]))
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    tab.send("add oat milk")
    tab.wait(lambda t: t.finished(1), timeout=15)
    tab.send("hi")
    assert tab.wait(lambda t: t.finished(2), timeout=15)[-1].text == "Hi."
    asked = fake.chat_requests()[-4:]
    assert [bool(r.get("format")) for r in asked] == [True, False, True, False] and list_on_page(visitor) == ["oat milk"]
    assert fake.shown == ["qwen2.5-coder:0.5b"], "asked once, for the model in use"
    visitor.close()
