"""The model's calls relayed to the web (brain/tool_calls.py), with the web played by the test: which
calls are answered in the brain and never sent, one call at a time in order, results by call id, what
the reply's calls made so far, the app's last state, no answer in time, a fenced session's waits
released, and a result nobody waits for told apart (the engine queues it as late)."""
import asyncio

import pytest

from brain import tools
from brain.jobs import Turn
from brain.ollama_client import ToolCall
from brain.tool_calls import NO_ANSWER, ToolCalls, answered_here, asked
from shared.messages import ToolResult
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

    def call_tool(self, turn, call, name, arguments):
        self.calls.append((turn.reply, call, name, arguments))


def result(call, text, ok=True, state=""):
    return ToolResult(session="s", id=f"x-{call}", reply="r1", call=call, ok=ok, text=text, state=state)


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
        while len(web.calls) <= i:
            await asyncio.sleep(0.001)
        if text is not None:
            _, call, _, _ = web.calls[i]
            assert calls.awaited(call)
            assert calls.resolve(result(call, *text))


def test_a_rounds_calls_are_sent_one_at_a_time_and_their_results_kept_in_order(relay):
    async def scenario(calls, web):
        made = {}
        asking = [ADD, ToolCall("set_todo_done", {"id": 1, "done": True}, id="bad id!"),
                  ToolCall("add_todo", {"title": ""}, id="call_3")]  # not a recital: add_todo twice
        answering = asyncio.ensure_future(answer(calls, web, [
            ("Added #1.", True, "- [ ] #1 milk"), ("Ticked #1.", True, "- [x] #1 milk"), ("No title.", False, "")]))
        sent, results, state = await calls.round(Turn("s", "r1", "hi"), asking, made, TOOLS)
        await answering
        assert [c for _, c, _, _ in web.calls][0::2] == ["call_1", "call_3"]
        assert web.calls[1][1].startswith("call_") and web.calls[1][1] != "bad id!", "an id the bus could not carry"
        assert [s["id"] for s in sent] == [c for _, c, _, _ in web.calls]
        assert [s["function"]["index"] for s in sent] == [0, 1, 2]
        assert results == [("add_todo", "Added #1."), ("set_todo_done", "Ticked #1."), ("add_todo", "No title.")]
        assert state == "- [x] #1 milk", "the last state told"
        assert set(made) == {asked(asking[0]), asked(asking[1])}, "only what was done counts as made"
        assert not calls.waiting
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
        await asyncio.sleep(0.01)
        calls.release("s")
        _, results, _ = await asyncio.wait_for(waiting, 1.0)  # long before the call's timeout
        assert results == [("add_todo", NO_ANSWER)]
        assert not other.done(), "another session's call still waits"
        calls.resolve(result("call_2", "Added."))
        assert (await other)[1] == [("add_todo", "Added.")]
    relay(scenario, timeout_s=30)


def test_a_result_nobody_waits_for_is_told_apart(relay):
    async def scenario(calls, web):
        assert not calls.awaited("call_9") and not calls.resolve(result("call_9", "Added."))
    relay(scenario)
