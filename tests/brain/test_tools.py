"""How the brain runs the model's tool calls (brain/tools.py): `recited`, which tells a model reciting
its tools from one asked to act. The tools themselves are the app's, sent in each Prompt (here a
fake app's, tests/fake_app.py); the app layer's tests check the tools an app offers."""
from brain.tools import recited
from tests.fake_app import TOOLS, tool

NAMES = [t["function"]["name"] for t in TOOLS]


def test_three_or_more_different_tools_in_the_offered_order_are_a_recital():
    assert NAMES == ["add_todo", "set_todo_done", "rename_todo", "delete_todo"]
    assert recited(["add_todo", "set_todo_done", "rename_todo"], TOOLS)
    assert recited(["add_todo", "set_todo_done", "rename_todo", "delete_todo"], TOOLS)
    assert recited(["add_todo", "rename_todo", "delete_todo"], TOOLS), "gaps in the order are still the order"


def test_calls_a_user_may_well_have_asked_for_are_not_a_recital():
    assert not recited(["add_todo", "set_todo_done"], TOOLS), "two calls"
    assert not recited(["rename_todo", "add_todo", "delete_todo"], TOOLS), "not in the offered order"
    assert not recited(["add_todo", "add_todo", "add_todo"], TOOLS), "the same tool: several items added"
    assert not recited(["add_todo", "set_todo_done", "set_todo_done", "delete_todo"], TOOLS), "a tool twice"
    assert not recited([], TOOLS)


def test_the_order_is_the_one_offered_in_the_request_whatever_the_app():
    offered = list(reversed(TOOLS))
    assert recited(["delete_todo", "rename_todo", "add_todo"], offered)
    assert not recited(["add_todo", "rename_todo", "delete_todo"], offered)
    books = [tool("add_book", "Add a book.", title="string", author="string"),
             tool("mark_read", "Mark a book read.", id="integer", read="boolean"),
             tool("remove_book", "Remove a book.", id="integer")]
    assert recited(["add_book", "mark_read", "remove_book"], books)
    assert not recited(["add_book", "mark_read", "remove_book"], TOOLS), "tools never offered are no recital of these"
    assert not recited(["add_todo", "set_todo_done", "rename_todo"], []), "no tools offered: nothing to recite"
