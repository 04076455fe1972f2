"""The app's tools as the model is given them (brain/tools.py): `recited`, which tells a model
reciting its tools from one asked to act; for MODEL_TOOL_MODE=decide, the schema a decision is held
to and what is taken from a decision; and what each mode offers the model. The tools themselves are
the app's, sent in each Prompt (here a fake app's, tests/fake_app.py, or the todo app's); the app
layer's tests check the tools an app offers."""
import asyncio

import jsonschema
import pytest

from apps.todo import loop
from brain import tools
from brain.conversation import Conversation
from brain.ollama_client import OllamaFailed, ToolCall
from shared.config import Settings
from shared.messages import Prompt
from tests.fake_app import PROMPT, TOOLS, tool
from tests.fake_ollama import format_schema
from web.apps import Host, tool_schema

NAMES = [t["function"]["name"] for t in TOOLS]
TODO_TOOLS = [tool_schema(a) for a in loop.as_app(Host(None)).actions]


@pytest.mark.parametrize("offered", [TOOLS, TODO_TOOLS], ids=["fake app", "todo app"])
def test_the_schema_is_one_ollama_and_llama_cpp_take_and_holds_calls_to_the_offered_tools(offered):
    schema = format_schema(tools.schema(offered))  # raises as Ollama refuses a schema it cannot use
    valid = jsonschema.Draft202012Validator(schema)
    assert valid.is_valid({"calls": []})
    assert valid.is_valid({"calls": [{"name": "add_todo", "arguments": {"title": "milk"}},
                                     {"name": "delete_todo", "arguments": {"id": 2}}]})
    for wrong in ({"calls": [{"name": "launch", "arguments": {}}]},
                  {"calls": [{"name": "delete_todo", "arguments": {"id": "the milk"}}]},
                  {"calls": [{"name": "delete_todo", "arguments": {"id": 2, "why": "because"}}]},
                  {"calls": [{"name": "rename_todo", "arguments": {"id": 2}}]},
                  {"calls": [{"name": "add_todo", "arguments": {"title": "x"}}] * (tools.MAX_DECIDED + 1)},
                  {"calls": [], "reply": "hi"}, {}):
        assert not valid.is_valid(wrong), wrong


def test_a_decisions_calls_are_taken_when_they_name_offered_tools_and_nothing_else_is():
    assert tools.calls_in('{"calls": [{"name": "add_todo", "arguments": {"title": "milk"}}]}', TOOLS) == \
        [ToolCall("add_todo", {"title": "milk"})]
    for nothing in ('{"calls": []}', "", "Sure, adding it!", '{"calls": "add_todo"}', "[1, 2]",
                    '{"calls": [{"name": "launch", "arguments": {}}]}', '{"calls": [7]}'):
        assert tools.calls_in(nothing, TOOLS) == [], nothing
    many = '{"calls": [' + ", ".join(['{"name": "add_todo", "arguments": {"title": "x"}}'] * 9) + "]}"
    assert len(tools.calls_in(many, TOOLS)) == tools.MAX_DECIDED


def test_each_mode_offers_the_tools_its_own_way():
    native, deciding = Conversation(prompt=PROMPT), Conversation(prompt=PROMPT, decides=True)
    settings, off = Settings.from_env({}), Settings.from_env({"MODEL_TOOLS": "0"})
    assert settings.tool_mode == "auto"
    assert tools.offered(native, settings) == TOOLS and tools.decided(native, settings) is None
    assert tools.offered(deciding, settings) is None and tools.decided(deciding, settings) == TOOLS
    assert tools.decided(deciding, off) is None and tools.offered(deciding, off) is None


@pytest.mark.parametrize("shown, size", [
    ({"details": {"parameter_size": "494.03M"}}, 494.03e6), ({"details": {"parameter_size": "3.2B"}}, 3.2e9),
    ({"model_info": {"general.parameter_count": 8030261248}, "details": {"parameter_size": "8.0B"}}, 8030261248),
    ({"details": {"parameter_size": "270m"}}, 270e6), ({"details": {}}, None), ({}, None),
    ({"details": {"parameter_size": "big"}}, None), ({"model_info": {"general.parameter_count": True}}, None)])
def test_a_models_size_as_ollama_describes_it(shown, size):
    assert tools.parameters(shown) == size


def test_auto_decides_for_models_under_two_billion_parameters_asks_once_and_calls_natively_when_it_cannot_tell(caplog):
    asked = []

    async def show(model):
        asked.append(model)
        if model == "gone":
            raise OllamaFailed("Ollama answered 404: model 'gone' not found")
        return {"details": {"parameter_size": {"qwen": "494.03M", "llama": "3.2B"}.get(model, "?")}}

    async def main(settings, again=False):
        modes = tools.Modes(settings, show)
        return [await modes.decides(m, again) for m in ("qwen", "llama", "qwen", "odd", "gone", "gone")]
    assert asyncio.run(main(Settings.from_env({}))) == [True, False, True, False, False, False]
    assert asked == ["qwen", "llama", "odd", "gone"], "known sizes are asked once, and a failure not at every click"
    asked.clear()
    assert asyncio.run(main(Settings.from_env({}), again=True)) == [True, False, True, False, False, False]
    assert asked.count("gone") == 2, "a turn asks again about a model Ollama could not describe (pulled meanwhile?)"
    assert [r.message for r in caplog.records].count(
        "MODEL_TOOL_MODE=auto: Ollama answered 404: model 'gone' not found; gone calls tools natively for now") == 2, \
        "one warning per run of main (each a new Modes), not one per look"
    asked.clear()
    assert asyncio.run(main(Settings.from_env({"MODEL_TOOL_MODE": "native"}))) == [False] * 6
    assert asyncio.run(main(Settings.from_env({"MODEL_TOOL_MODE": "decide"}))) == [True] * 6 and asked == []


def test_auto_remembers_a_bounded_number_of_models_it_could_not_describe():
    async def show(model):
        raise OllamaFailed(f"Ollama answered 404: model '{model}' not found")

    async def main():
        modes = tools.Modes(Settings.from_env({}), show)
        for n in range(3 * tools.UNKNOWN_KEPT):
            await modes.decides(f"typo{n}")
        return modes
    assert len(asyncio.run(main()).unknown) == tools.UNKNOWN_KEPT, "names users typed cannot fill the memory"


def test_auto_learns_a_model_once_ollama_can_describe_it():
    pulled = False

    async def show(model):
        if not pulled:
            raise OllamaFailed("Ollama answered 404: model 'qwen' not found")
        return {"details": {"parameter_size": "494.03M"}}

    async def main():
        nonlocal pulled
        modes = tools.Modes(Settings.from_env({}), show)
        before = [await modes.decides("qwen"), await modes.decides("qwen", again=True)]
        pulled = True
        return before + [await modes.decides("qwen"), await modes.decides("qwen", again=True),
                         await modes.decides("qwen")]
    assert asyncio.run(main()) == [False, False, False, True, True]


def test_in_decide_mode_the_tools_are_told_in_the_system_message_and_a_reply_is_asked_for_in_words():
    decide, native = Settings.from_env({"MODEL_TOOL_MODE": "decide"}), Settings.from_env({})
    told = tools.as_told(PROMPT, decide, True)
    assert told.tools == TOOLS and told.system.startswith(PROMPT.system + "\n\nThe app's actions:\n")
    assert "- rename_todo(id, title): Rename an item." in told.system
    assert tools.as_told(PROMPT, native, False) == PROMPT and tools.as_told(Prompt("sys"), decide, True) == Prompt("sys")
    assert tools.as_told(PROMPT, Settings.from_env({"MODEL_TOOL_MODE": "decide", "MODEL_TOOLS": "0"}), True) == PROMPT
    assert tools.words(True) == (tools.NOW,) and tools.words(False) == ()


def test_in_decide_mode_rounds_of_calls_are_shown_as_notes_of_what_the_app_did():
    conversation = Conversation(prompt=PROMPT)
    conversation.begin_turn("add milk and eggs")
    calls = [{"id": f"call_{n}", "function": {"index": n, "name": "add_todo", "arguments": {"title": t}}}
             for n, t in enumerate(["milk", "eggs"])]
    conversation.add_tool_round("On it.", calls, [("add_todo", "Added #1 'milk'."), ("add_todo", "Added #2 'eggs'.")], "")
    conversation.add_reply("Both on.")
    shown = tools.shown(True, conversation.messages())
    assert shown[1:] == [{"role": "user", "content": "add milk and eggs"}, {"role": "assistant", "content": "On it."},
                         {"role": "user", "content": "App note: As the user asked, the app did this: Added #1 'milk'. "
                                                     "Added #2 'eggs'."},
                         {"role": "assistant", "content": "Both on."}]
    assert tools.shown(False, conversation.messages()) == conversation.messages()


def test_an_unknown_mode_stops_the_process_with_the_choices_named():
    with pytest.raises(SystemExit, match="MODEL_TOOL_MODE='guess' is not one of auto, native, decide"):
        Settings.from_env({"MODEL_TOOL_MODE": "guess"})


def test_three_or_more_different_tools_in_the_offered_order_are_a_recital():
    assert NAMES == ["add_todo", "set_todo_done", "rename_todo", "delete_todo"]
    assert tools.recited(["add_todo", "set_todo_done", "rename_todo"], TOOLS)
    assert tools.recited(["add_todo", "set_todo_done", "rename_todo", "delete_todo"], TOOLS)
    assert tools.recited(["add_todo", "rename_todo", "delete_todo"], TOOLS), "gaps in the order are still the order"


def test_calls_a_user_may_well_have_asked_for_are_not_a_recital():
    assert not tools.recited(["add_todo", "set_todo_done"], TOOLS), "two calls"
    assert not tools.recited(["rename_todo", "add_todo", "delete_todo"], TOOLS), "not in the offered order"
    assert not tools.recited(["add_todo", "add_todo", "add_todo"], TOOLS), "the same tool: several items added"
    assert not tools.recited(["add_todo", "set_todo_done", "set_todo_done", "delete_todo"], TOOLS), "a tool twice"
    assert not tools.recited([], TOOLS)


def test_the_order_is_the_one_offered_in_the_request_whatever_the_app():
    offered = list(reversed(TOOLS))
    assert tools.recited(["delete_todo", "rename_todo", "add_todo"], offered)
    assert not tools.recited(["add_todo", "rename_todo", "delete_todo"], offered)
    books = [tool("add_book", "Add a book.", title="string", author="string"),
             tool("mark_read", "Mark a book read.", id="integer", read="boolean"),
             tool("remove_book", "Remove a book.", id="integer")]
    assert tools.recited(["add_book", "mark_read", "remove_book"], books)
    assert not tools.recited(["add_book", "mark_read", "remove_book"], TOOLS), "tools never offered are no recital of these"
    assert not tools.recited(["add_todo", "set_todo_done", "rename_todo"], []), "no tools offered: nothing to recite"
