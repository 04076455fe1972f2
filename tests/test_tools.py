"""The tools offered to the model (brain/tools.py): the same definitions in every request, each one
the web knows how to apply, and `recited`, which tells a model reciting its tools from one asked to act."""
import json

from brain.tools import TOOLS, recited
from web.actions import ARGUMENTS

NAMES = [t["function"]["name"] for t in TOOLS]


def test_every_tool_offered_is_one_the_web_applies_and_asks_for_all_its_arguments():
    assert NAMES == ["add_todo", "set_todo_done", "rename_todo", "delete_todo", "clear_done"]
    assert set(NAMES) == set(ARGUMENTS)
    for tool in TOOLS:
        params = tool["function"]["parameters"]
        assert params["required"] == list(params["properties"]), tool["function"]["name"]
        assert tool["function"]["description"]


def test_three_or_more_different_tools_in_the_offered_order_are_a_recital():
    assert recited(["add_todo", "set_todo_done", "rename_todo"], TOOLS)
    assert recited(["add_todo", "set_todo_done", "rename_todo", "delete_todo", "clear_done"], TOOLS)
    assert recited(["add_todo", "rename_todo", "clear_done"], TOOLS), "gaps in the order are still the order"


def test_calls_a_user_may_well_have_asked_for_are_not_a_recital():
    assert not recited(["add_todo", "set_todo_done"], TOOLS), "two calls"
    assert not recited(["rename_todo", "add_todo", "delete_todo"], TOOLS), "not in the offered order"
    assert not recited(["add_todo", "add_todo", "add_todo"], TOOLS), "the same tool: several todos added"
    assert not recited(["add_todo", "set_todo_done", "set_todo_done", "delete_todo"], TOOLS), "a tool twice"
    assert not recited([], TOOLS)


def test_the_order_is_the_one_offered_in_the_request():
    offered = list(reversed(TOOLS))
    assert recited(["clear_done", "delete_todo", "add_todo"], offered)
    assert not recited(["add_todo", "delete_todo", "clear_done"], offered)
