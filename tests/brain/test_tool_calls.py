"""The model's calls relayed to the web (brain/tool_calls.py), with the web played by the test: which
calls are answered in the brain and never sent, one call at a time in order, call ids the brain makes
(never the model's), results by call id and only from the call's session and reply, what the reply's
calls made so far, the app's last state, no answer in time, a fenced session's waits released, a
result nobody waits for told apart (the engine queues it as late), and a cut-off reply's answered
calls grouped back into their rounds."""
import asyncio

import pytest

from brain import tools
from brain.jobs import Turn
from brain.ollama_client import ToolCall
from brain.tool_calls import NO_ANSWER, ToolCalls, answered_here, asked, rounds_of
from shared.messages import Answered, ToolResult
from tests.brain.test_engine import drained, until
from tests.fake_app import TOOLS

ADD = ToolCall("add_todo", {"title": "milk"}, id="call_1")


def test_a_call_is_the_same_call_however_its_arguments_are_ordered():
    assert asked(ToolCall("f", {"a": 1, "b": 2})) == asked(ToolCall("f", {"b": 2, "a": 1}, id="other"))
    assert asked(ToolCall("f", {"a": 1})) != asked(ToolCall("f", {"a": 2}))


def test_calls_past_the_limit_the_rest_of_a_recital_and_repeats_are_answered_here():
    assert answered_here(0, ADD, False, {}) is None, "sent to the web"
    assert answered_here(tools.MAX_CALLS, ADD, False, {}).startswith(f"Error: at most {tools.MAX_CALLS} calls")
    assert answered_here(0, ADD, True, {}) is None, "a recital's first call is made"
    assert answered_here(1, ADD, True, {}).startswith("Not done: that looked like every tool")
    made = {asked(ADD): "Added #1 'milk'."}
    assert answered_here(0, ADD, False, made) == "Added #1 'milk'. (Already done in this reply; not done again.)"


class Web:
    "Sends each tool_call to the test (as CallTool would go on the bus)."
    def __init__(self):
        self.calls = []

    def __init__(self):
        self.calls, self.sessions, self.places, self.decided = [], [], [], []

    def call_tool(self, turn, call, name, arguments, at=0, index=0, decided=False):
        self.calls.append((turn.reply, call, name, arguments))
        self.sessions.append(turn.session)
        self.places.append((at, index))
        self.decided.append(decided)


def result(call, text, ok=True, state="", session="s", reply="r1"):
    return ToolResult(session=session, id=f"x-{call}", reply=reply, call=call, ok=ok, text=text, state=state)


@pytest.fixture
def relay():
    "run(scenario): scenario(calls, web) on a loop, a call unanswered after `timeout_s`."
    def go(scenario, timeout_s=0.1):
        async def main():
            web = Web()
            await scenario(ToolCalls(web, asyncio.get_running_loop(), timeout_s), web)
        asyncio.run(main())
    return go


async def answer(calls, web, results):
    "Play the web: answer each call as it is sent, in order, with the next result text (None: never)."
    for i, text in enumerate(results):
        await until(lambda: len(web.calls) > i)
        if text is not None:
            reply, call, _, _ = web.calls[i]
            answer = result(call, *text, session=web.sessions[i], reply=reply)
            assert calls.awaited(answer)
            assert calls.resolve(answer)


def test_a_rounds_calls_are_sent_one_at_a_time_and_their_results_kept_in_order(relay):
    async def scenario(calls, web):
        made = {}
        asking = [ADD, ToolCall("set_todo_done", {"id": 1, "done": True}, id="bad id!"),
                  ToolCall("add_todo", {"title": ""}, id="call_3")]  # not a recital: add_todo twice
        answering = asyncio.ensure_future(answer(calls, web, [
            ("Added #1.", True, "- [ ] #1 milk"), ("Ticked #1.", True, "- [x] #1 milk"), ("No title.", False, "")]))
        sent, results, state = await calls.round(Turn("s", "r1", "hi"), asking, made, TOOLS, at=12)
        await answering
        ids = [c for _, c, _, _ in web.calls]
        assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 3, "ids the brain made, one per call"
        assert not {"call_1", "bad id!", "call_3"} & set(ids), "never the model's"
        assert web.places == [(12, 0), (12, 1), (12, 2)], "where the round came in the reply, and each call's place"
        assert [s["id"] for s in sent] == ids
        assert [s["function"]["index"] for s in sent] == [0, 1, 2]
        assert results == [("add_todo", "Added #1."), ("set_todo_done", "Ticked #1."), ("add_todo", "No title.")]
        assert state == "- [x] #1 milk", "the last state told"
        assert set(made) == {asked(asking[0]), asked(asking[1])}, "only what was done counts as made"
        assert not calls.waiting
    relay(scenario)


def test_a_decisions_calls_are_sent_as_decided_and_those_the_app_refuses_are_left_out_of_the_round(relay):
    async def scenario(calls, web):
        made = {}
        tick = ToolCall("set_todo_done", {"id": 3, "done": True})
        answering = asyncio.ensure_future(answer(calls, web, [
            ("Error: the user's message does not name #3.", False, ""), ("Added #1.", True, "- [ ] #1 milk")]))
        sent, results, state = await calls.round(Turn("s", "r1", "add milk"), [tick, ADD], made, TOOLS, decided=True)
        await answering
        assert web.decided == [True, True], "the web is told, so it shows no card for a refused guess"
        assert [s["function"]["name"] for s in sent] == ["add_todo"] and [s["function"]["index"] for s in sent] == [1]
        assert results == [("add_todo", "Added #1.")], "no brief after a decided call's text either"
        assert state == "- [ ] #1 milk" and set(made) == {asked(ADD)}
    relay(scenario)


def test_a_call_made_already_in_the_reply_is_not_sent_again(relay):
    async def scenario(calls, web):
        made = {asked(ADD): "Added #1 'milk'."}
        _, results, state = await calls.round(Turn("s", "r1", "hi"), [ADD], made, TOOLS)
        assert web.calls == [] and results[0][1].endswith("(Already done in this reply; not done again.)")
        assert state == ""
    relay(scenario)


def test_a_call_the_web_does_not_answer_in_time_may_not_have_been_done(relay):
    async def scenario(calls, web):
        _, results, _ = await calls.round(Turn("s", "r1", "hi"), [ADD], {}, TOOLS)
        assert results == [("add_todo", NO_ANSWER)] and not calls.waiting
    relay(scenario)


def test_a_fenced_session_releases_its_replies_waits_and_no_other(relay):
    async def scenario(calls, web):
        waiting = asyncio.ensure_future(calls.round(Turn("s", "r1", "hi"), [ADD], {}, TOOLS))
        other = asyncio.ensure_future(calls.round(Turn("t", "r2", "hi"), [ToolCall("add_todo", {}, id="call_2")], {},
                                                  TOOLS))
        await until(lambda: len(web.calls) == 2)  # both wait on the web
        calls.release("s")
        _, results, _ = await asyncio.wait_for(waiting, 1.0)  # long before the call's timeout
        assert results == [("add_todo", NO_ANSWER)]
        await drained()
        assert not other.done(), "another session's call still waits"
        calls.resolve(result(web.calls[1][1], "Added.", session="t", reply="r2"))
        assert (await other)[1] == [("add_todo", "Added.")]
    relay(scenario, timeout_s=30)


def test_a_result_nobody_waits_for_is_told_apart(relay):
    async def scenario(calls, web):
        assert not calls.awaited(result("call_9", "Added.")) and not calls.resolve(result("call_9", "Added."))
    relay(scenario)


def test_two_sessions_whose_models_give_the_same_call_id_at_once_each_get_their_own_result(relay):
    "Templates and engines that number calls give call_0 in every session: the results must not cross."
    async def scenario(calls, web):
        same = ToolCall("add_todo", {"title": "milk"}, id="call_0")
        mine = asyncio.ensure_future(calls.round(Turn("s", "r1", "add milk"), [same], {}, TOOLS))
        theirs = asyncio.ensure_future(calls.round(Turn("t", "r2", "add milk"), [same], {}, TOOLS))
        await until(lambda: len(web.calls) == 2)
        (_, first, _, _), (_, second, _, _) = web.calls
        assert first != second, "one id per call, whatever the model said"
        assert calls.resolve(result(second, "Added #1 'milk' to t's list.", session="t", reply="r2"))
        assert calls.resolve(result(first, "Added #1 'milk' to s's list."))
        assert (await mine)[1] == [("add_todo", "Added #1 'milk' to s's list.")]
        assert (await theirs)[1] == [("add_todo", "Added #1 'milk' to t's list.")]
    relay(scenario)


def test_a_result_naming_another_sessions_or_replys_call_answers_nothing(relay, caplog):
    async def scenario(calls, web):
        waiting = asyncio.ensure_future(calls.round(Turn("s", "r1", "add milk"), [ADD], {}, TOOLS))
        await until(lambda: web.calls)
        call = web.calls[0][1]
        for forged in (result(call, "Deleted everything.", session="t"), result(call, "Deleted.", reply="r9")):
            assert not calls.awaited(forged)
            assert calls.resolve(forged), "handled (ignored), not queued as a late result of the other session"
        await drained()
        assert not waiting.done(), "still waits for its own result"
        calls.resolve(result(call, "Added #1 'milk'."))
        assert (await waiting)[1] == [("add_todo", "Added #1 'milk'.")]
    relay(scenario, timeout_s=5)
    assert "ignored" in caplog.text


def test_a_call_id_the_model_gives_again_in_a_later_reply_is_a_new_call(relay):
    async def scenario(calls, web):
        for reply, title in (("r1", "milk"), ("r2", "eggs")):
            same_id = ToolCall("add_todo", {"title": title}, id="call_0")
            round_ = asyncio.ensure_future(calls.round(Turn("s", reply, f"add {title}"), [same_id], {}, TOOLS))
            await until(lambda: len(web.calls) == (1 if reply == "r1" else 2))
            calls.resolve(result(web.calls[-1][1], f"Added '{title}'.", reply=reply))
            assert (await round_)[1] == [("add_todo", f"Added '{title}'.")]
        assert web.calls[0][1] != web.calls[1][1], "the web applies each once by its id: the second is not the first"
    relay(scenario)


def answered(call, index, at=0):
    return Answered(call=call, name="add_todo", arguments={"title": call}, ok=True, text="Added.", at=at, index=index)


def test_a_cut_off_replys_answered_calls_come_back_as_their_rounds():
    calls = [answered("a", 0, 5), answered("b", 1, 5), answered("c", 0, 9), answered("d", 0, 9)]
    assert [[c.call for c in r] for r in rounds_of(calls)] == [["a", "b"], ["c"], ["d"]], \
        "a round begins at its first call, even where no text came between two rounds"
    assert rounds_of([]) == []
    first_too_big = [answered("a", 0, 5), answered("c", 1, 9), answered("d", 2, 9), answered("e", 1, 9)]
    assert [[c.call for c in r] for r in rounds_of(first_too_big)] == [["a"], ["c", "d"], ["e"]], \
        "a round whose first call was never sent starts where the text moved on, or the index fell back"
