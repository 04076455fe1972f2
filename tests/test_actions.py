"""The model's actions on the list (web/actions.py), with the arguments small models really write:
ids as text, titles instead of ids, keys the schema does not have; and every refusal says what to do."""
import pytest

from web.actions import Actions
from web.store import Store

S = "session-a"


@pytest.fixture
def world(tmp_path):
    store = Store(tmp_path)
    actions = Actions(store)
    ids = {t: store.add_todo(S, t).id for t in ("buy stamps", "call the plumber", "buy stamps for letters", "Water plants")}
    return actions, store, ids


def act(actions, name, n=[0], **arguments):
    n[0] += 1
    row, _ = actions.act(S, "r1", f"call_{n[0]}", name, arguments)
    return row


@pytest.mark.parametrize("ref", [lambda i: i, lambda i: str(i), lambda i: f"#{i}", lambda i: f" #{i} "])
def test_an_id_as_a_number_or_text(world, ref):
    actions, store, ids = world
    row = act(actions, "set_todo_done", id=ref(ids["call the plumber"]), done=True)
    assert row.ok and store.todo(S, ids["call the plumber"]).done


@pytest.mark.parametrize("title", ["call the plumber", "CALL THE PLUMBER", "plumber"])
def test_a_todo_named_by_its_title_exact_then_any_case_then_a_unique_part(world, title):
    actions, store, ids = world
    assert act(actions, "delete_todo", id=title).ok
    assert store.todo(S, ids["call the plumber"]) is None


def test_an_exact_title_wins_over_one_that_holds_it(world):
    actions, store, ids = world
    assert act(actions, "set_todo_done", id="buy stamps").ok
    assert store.todo(S, ids["buy stamps"]).done and not store.todo(S, ids["buy stamps for letters"]).done


def test_an_ambiguous_title_names_the_candidates(world):
    actions, store, ids = world
    row = act(actions, "delete_todo", id="stamps")
    assert not row.ok
    assert row.text == (f"Error: 'stamps' could be #{ids['buy stamps']} 'buy stamps' or "
                        f"#{ids['buy stamps for letters']} 'buy stamps for letters'; give the id.")
    assert len(store.todo_list(S)) == 4


def test_a_missing_todo_is_told_with_the_list(world):
    actions, _, ids = world
    row = act(actions, "delete_todo", id="dentist")
    assert row.text.startswith("Error: no todo is called 'dentist'. The list: #")
    assert "Water plants" in row.text
    assert act(actions, "delete_todo", id=999).text.startswith("Error: there is no todo #999. The list: ")


def test_keys_the_schema_does_not_have_are_ignored(world):
    actions, store, _ = world
    row = act(actions, "add_todo", title="Oat Milk", required=["title"], priority="high")
    assert row.ok and row.text.startswith("Added #")
    assert store.todo_list(S)[-1].title == "Oat Milk"


def test_the_todo_under_another_key(world):
    actions, store, ids = world
    assert act(actions, "delete_todo", title="plumber").ok  # delete takes no title: it names the todo
    assert act(actions, "set_todo_done", todo="Water plants").ok  # done defaults to true
    assert store.todo(S, ids["call the plumber"]) is None and store.todo(S, ids["Water plants"]).done


def test_rename_by_title_keeps_title_as_the_new_one(world):
    actions, store, ids = world
    assert act(actions, "rename_todo", id="plumber", title="call the electrician").ok
    assert store.todo(S, ids["call the plumber"]).title == "call the electrician"


def test_an_unknown_tool_names_the_tools(world):
    actions, _, _ = world
    row = act(actions, "get_todo_list")
    assert row.text == ("Error: there is no tool named 'get_todo_list'; the tools are add_todo, set_todo_done, "
                        "rename_todo, delete_todo, clear_done.")


def test_done_as_text(world):
    actions, store, ids = world
    assert act(actions, "set_todo_done", id=ids["buy stamps"], done="false").ok
    assert not store.todo(S, ids["buy stamps"]).done


def test_a_name_small_models_give_a_tool_is_taken_for_it(world):
    actions, store, ids = world
    row = act(actions, "remove_todo", id="plumber")
    assert row.ok and row.name == "delete_todo" and store.todo(S, ids["call the plumber"]) is None


def test_a_kept_action_read_back_is_told_to_the_brain_as_it_was(world):
    "SQLite gives booleans back as integers; the brain's schema takes only booleans."
    from shared.messages import ToolResult, encode_valid
    actions, store, _ = world
    actions.act(S, "r1", "call_kept", "add_todo", {"title": "oat milk"})
    row, changes = actions.act(S, "r1", "call_kept", "add_todo", {"title": "oat milk"})
    assert changes == [] and row.ok is True and row.undone is False
    encode_valid(ToolResult(session=S, request="x", reply="r1", call="call_kept", ok=row.ok, text=row.text, todos=[]),
                 1 << 20)


def test_two_sessions_may_use_the_same_call_id(world):
    actions, store, _ = world
    assert actions.act("session-b", "r1", "call_1", "add_todo", {"title": "milk"})[0].ok
    assert actions.act("session-c", "r1", "call_1", "add_todo", {"title": "eggs"})[0].ok
    assert [t.title for t in store.todo_list("session-c")] == ["eggs"]
    assert actions.undo("session-b", "call_1")[0] is not None and store.todo_list("session-b") == []
