"""The todo app (apps/todo): its store (ids of each session's own, never reused, a bounded list), its
actions with the arguments small models really write (ids as text, titles instead of ids, keys the
schema does not have, names of their own for the tools) and every refusal saying what to do, undo
that puts back exactly what was, and how its changes are told to the model."""
import pytest
from fastlite import database

from apps.todo import PERSONA
from apps.todo.store import (MAX_ID, MAX_TITLE_CHARS, TODO_MAX_BYTES, ListFull, Todo, Todos, clean_title, listed, state,
                             tell, todo_limit)
from shared.config import Settings
from shared.messages import AppEvent, Prompt, ToolResult, encode_valid
from web import apps
from web.actions import Actions
from web.apps import Refused

S = "session-a"


def load(tmp_path, monkeypatch, max_todos=None):
    "The todo app as the web loads it, its actions, and its store read directly."
    if max_todos is None:
        monkeypatch.delenv("MAX_TODOS", raising=False)
    else:
        monkeypatch.setenv("MAX_TODOS", str(max_todos))
    db = database(tmp_path / "web.db")
    app = apps.load("todo", apps.Host(Settings.from_env({"DATA_DIR": str(tmp_path)})))
    return app, Actions(db, app), Todos(tmp_path / "todo.db")


# The store.

def test_todo_ids_count_from_1_in_each_session_and_are_never_reused_in_it(tmp_path):
    todos = Todos(tmp_path / "todo.db")
    assert [todos.add("a", t).id for t in ("one", "two")] == [1, 2]
    assert todos.add("b", "other").id == 1, "another session's todos do not show in the numbers"
    todos.delete("a", 2)
    assert todos.add("a", "three").id == 3
    assert todos.toggle("b", 3) is None and todos.get("a", 3).title == "three"


def test_a_deleted_todo_comes_back_with_its_id_whatever_another_session_did_meanwhile(tmp_path):
    todos = Todos(tmp_path / "todo.db")
    gone = todos.add("a", "water plants")
    todos.delete("a", gone.id)
    todos.add("b", "taxes")
    todos.restore("a", gone)
    assert todos.all("a") == [gone] and [t.title for t in todos.all("b")] == ["taxes"]


@pytest.mark.parametrize("older", [
    ["create table todos (id integer primary key, session text, title text, done integer)",
     "insert into todos values (7, 'a', 'old', 0), (9, 'b', 'other', 1)"],
    ["create table todos (session text, id integer, title text, done integer, primary key (session, id))",
     "insert into todos values ('a', 7, 'old', 0), ('b', 9, 'other', 1)",
     "create table todo_ids (session text primary key, last integer)", "insert into todo_ids values ('a', 7)"]],
    ids=["global ids", "ids per session"])
def test_todos_an_older_version_kept_in_web_db_move_over_once_with_their_ids(tmp_path, older):
    "Each session's todos keep their ids, the next is past them; the web's own database is left as it was."
    db = database(tmp_path / "web.db")
    for sql in older:
        db.execute(sql)
    todos = Todos(tmp_path / "todo.db")
    assert todos.all("a") == [Todo(7, "old", False)] and todos.all("b") == [Todo(9, "other", True)]
    assert todos.add("a", "new").id == 8 and todos.add("c", "fresh").id == 1
    todos.delete("a", 7)
    assert Todos(tmp_path / "todo.db").all("a") == [Todo(8, "new", False)], "moved over once: a deleted one stays gone"
    assert [r[0] for r in db.execute("select id from todos order by id")] == [7, 9]


def test_an_id_past_what_sqlite_holds_names_no_todo(tmp_path):
    todos = Todos(tmp_path / "todo.db")
    todos.add("a", "one")
    for tid in (0, -1, MAX_ID + 1, 2**70):
        assert todos.get("a", tid) is None and todos.toggle("a", tid) is None and todos.delete("a", tid) is None


def test_a_full_list_refuses_another_todo_and_says_why(tmp_path):
    todos = Todos(tmp_path / "todo.db", max_todos=2)
    todos.add("a", "one"), todos.add("a", "two")
    assert todos.room("a") == 0 and todos.room("b") == 2
    with pytest.raises(ListFull, match="MAX_TODOS"):
        todos.add("a", "three")
    assert issubclass(ListFull, Refused) and [t.title for t in todos.all("a")] == ["one", "two"]


def test_the_list_is_bounded_by_what_a_bus_frame_carries():
    "A tool result carries the whole list twice (on one line, and as the state): a full list of the longest todos fits."
    assert todo_limit(100, 1 << 20) == 100
    for frame in (1 << 20, 64 * 1024):
        n = todo_limit(10_000, frame)
        assert n == (frame - 16_384) // (2 * TODO_MAX_BYTES)
        worst = [Todo(i + 1, "\x01" * MAX_TITLE_CHARS, True) for i in range(n)]  # every character escaped in JSON
        encode_valid(ToolResult(session=S, id="m1", reply="r1", call="c1", ok=True,
                                text=f"Added #{n} '{worst[-1].title}'. {listed(worst)}", state=state(worst)), frame)
        encode_valid(AppEvent(session=S, id="m1", lines=[tell("added", worst[-1])], prompt=Prompt(PERSONA),
                              state=state(worst), comment=True), frame)
    assert todo_limit(200, 100) == 1, "never none"


def test_max_todos_is_read_by_the_app(tmp_path, monkeypatch):
    app, actions, _ = load(tmp_path, monkeypatch, max_todos=1)
    assert actions.act(S, "r1", "c1", "add_todo", {"title": "one"})[0].ok
    row, _ = actions.act(S, "r1", "c2", "add_todo", {"title": "two"})
    assert not row.ok and "MAX_TODOS" in row.text


def test_a_title_is_folded_and_bounded():
    assert clean_title("  oat \n milk\t") == "oat milk"
    assert clean_title("x" * MAX_TITLE_CHARS) == "x" * MAX_TITLE_CHARS
    for bad in ("   ", "x" * (MAX_TITLE_CHARS + 1)):
        with pytest.raises(Refused, match=f"a title must be 1 to {MAX_TITLE_CHARS} characters"):
            clean_title(bad)
    with pytest.raises(Refused, match="lone surrogate"):
        clean_title("milk \ud800")  # no store or message could encode it


@pytest.mark.parametrize("title", ["milk\x00", "oat\x00milk", "\x1b[31mred", "bell\x07", "del\x7f", "c1\x9b"])
def test_a_title_with_a_control_character_is_refused_and_says_so(title):
    with pytest.raises(Refused, match=r"a title cannot hold control characters \(such as NUL\)"):
        clean_title(title)


def test_a_title_that_is_no_text_is_refused_and_says_so():
    "A multipart upload reaches the route as an UploadFile, whose repr must not become a todo."
    from starlette.datastructures import UploadFile
    with pytest.raises(Refused, match="a title is text, not a file"):
        clean_title(UploadFile(file=None, filename="list.txt"))


# The actions, with the arguments small models write.

@pytest.fixture
def world(tmp_path, monkeypatch):
    app, actions, todos = load(tmp_path, monkeypatch)
    ids = {t: todos.add(S, t).id for t in ("buy stamps", "call the plumber", "buy stamps for letters", "Water plants")}
    return actions, todos, ids


def act(actions, name, n=[0], **arguments):
    n[0] += 1
    row, _ = actions.act(S, "r1", f"call_{n[0]}", name, arguments)
    return row


def asked(actions, text, name, n=[0], **arguments):
    "A call in a reply to the user's message `text`."
    n[0] += 1
    row, _ = actions.act(S, "r1", f"asked_{n[0]}", name, arguments, text)
    return row


@pytest.mark.parametrize("text", ["I called the plumber", "the plumber's done", "tick off #2", "2 is done",
                                  "CALL THE PLUMBER", "the plumbers came"])
def test_a_todo_the_users_message_names_is_changed(world, text):
    actions, todos, ids = world
    assert ids["call the plumber"] == 2
    assert asked(actions, text, "set_todo_done", id=2).ok and todos.get(S, 2).done


@pytest.mark.parametrize("text, name, arguments", [
    ("tell me a joke", "delete_todo", {"id": 2}), ("hi! how is your day going?", "set_todo_done", {"id": 1}),
    ("remove everything I've finished", "delete_todo", {"id": 2}), ("tick off #12", "set_todo_done", {"id": 2}),
    ("the dentist is booked", "rename_todo", {"id": 2, "title": "call the dentist"})])
def test_a_change_to_a_todo_the_users_message_does_not_name_is_refused_and_says_which(world, text, name, arguments):
    actions, todos, ids = world
    before = todos.all(S)
    row = asked(actions, text, name, **arguments)
    assert not row.ok and row.text.startswith(f"Error: the user's message does not name #{arguments['id']} '")
    assert todos.all(S) == before


@pytest.mark.parametrize("text, ok", [("clear the done ones", True), ("remove everything I've finished", True),
                                      ("clean up the completed todos", True), ("drop the water plants one and the rest", True),
                                      ("remind me to pick up the dry cleaning", False), ("tell me a joke", False)])
def test_the_done_todos_are_cleared_only_when_the_users_message_speaks_of_them(world, text, ok):
    actions, todos, ids = world
    act(actions, "set_todo_done", id=ids["Water plants"], done=True)
    row = asked(actions, text, "clear_done")
    assert row.ok is ok and (ids["Water plants"] in [t.id for t in todos.all(S)]) is not ok
    if not ok:
        assert row.text == "Error: the user's message does not ask to clear the done todos; clear them only when it does."


def test_an_add_must_be_in_the_users_message_and_not_on_the_list_already(world):
    actions, todos, ids = world
    assert asked(actions, "remind me to pick up the dry cleaning", "add_todo", title="pick up the dry cleaning").ok
    assert asked(actions, "good morning!", "add_todo", title="#1 buy stamps").text == \
        "Error: the user's message does not mention '#1 buy stamps'; add only what the user asks for."
    assert asked(actions, "the stamps are bought", "add_todo", title="#1 buy stamps").text == \
        "Error: 'buy stamps' is on the list already, as #1."
    assert asked(actions, "add water plants", "add_todo", title="water plants").text == \
        "Error: 'Water plants' is on the list already, as #4."
    assert act(actions, "add_todo", title="buy stamps").text.startswith("Error: 'buy stamps' is on the list already")
    assert act(actions, "add_todo", title="feed the cat").ok, "a call no message asked for (not known) is not checked"


@pytest.mark.parametrize("ref", [lambda i: i, lambda i: str(i), lambda i: f"#{i}", lambda i: f" #{i} "])
def test_an_id_as_a_number_or_text(world, ref):
    actions, todos, ids = world
    row = act(actions, "set_todo_done", id=ref(ids["call the plumber"]), done=True)
    assert row.ok and todos.get(S, ids["call the plumber"]).done


@pytest.mark.parametrize("title", ["call the plumber", "CALL THE PLUMBER", "plumber"])
def test_a_todo_named_by_its_title_exact_then_any_case_then_a_unique_part(world, title):
    actions, todos, ids = world
    assert act(actions, "delete_todo", id=title).ok
    assert todos.get(S, ids["call the plumber"]) is None


def test_an_exact_title_wins_over_one_that_holds_it(world):
    actions, todos, ids = world
    assert act(actions, "set_todo_done", id="buy stamps").ok
    assert todos.get(S, ids["buy stamps"]).done and not todos.get(S, ids["buy stamps for letters"]).done


def test_an_ambiguous_title_names_the_candidates(world):
    actions, todos, ids = world
    row = act(actions, "delete_todo", id="stamps")
    assert not row.ok
    assert row.text == (f"Error: 'stamps' could be #{ids['buy stamps']} 'buy stamps' or "
                        f"#{ids['buy stamps for letters']} 'buy stamps for letters'; give the id.")
    assert len(todos.all(S)) == 4


def test_a_missing_todo_is_refused_by_name(world):
    "The list itself follows in the tool's result (the app's brief, added by the web: test_chats)."
    actions, _, ids = world
    assert act(actions, "delete_todo", id="dentist").text == "Error: no todo is called 'dentist'."
    assert act(actions, "delete_todo", id=999).text == "Error: there is no todo #999."


@pytest.mark.parametrize("ref", ["²", "#²", "9" * 5000, "#" + "9" * 5000, 10**30, 0])
def test_an_id_no_todo_can_have_is_refused_without_a_traceback(world, ref, caplog):
    "\"²\" is a digit to str.isdigit() but not to int(); int() of 5,000 digits raises past sys.int_max_str_digits."
    actions, todos, _ = world
    row = act(actions, "delete_todo", id=ref)
    assert not row.ok and row.text in ("Error: there is no todo with that number.", f"Error: no todo is called {ref!r}.")
    assert len(todos.all(S)) == 4 and "Traceback" not in caplog.text and "could not do" not in row.text


def test_keys_the_schema_does_not_have_are_ignored(world):
    actions, todos, _ = world
    row = act(actions, "add_todo", title="Oat Milk", required=["title"], priority="high")
    assert row.ok and row.text == "Added #5 'Oat Milk'."
    assert todos.all(S)[-1].title == "Oat Milk"


def test_the_todo_under_another_key(world):
    actions, todos, ids = world
    assert act(actions, "delete_todo", title="plumber").ok  # delete takes no title: it names the todo
    assert act(actions, "set_todo_done", todo="Water plants").ok  # done defaults to true
    assert todos.get(S, ids["call the plumber"]) is None and todos.get(S, ids["Water plants"]).done


def test_rename_by_title_keeps_title_as_the_new_one(world):
    actions, todos, ids = world
    assert act(actions, "rename_todo", id="plumber", title="call the electrician").ok
    assert todos.get(S, ids["call the plumber"]).title == "call the electrician"


def test_an_unknown_tool_names_the_tools(world):
    actions, _, _ = world
    row = act(actions, "get_todo_list")
    assert row.text == ("Error: there is no tool named 'get_todo_list'; the tools are add_todo, set_todo_done, "
                        "rename_todo, delete_todo, clear_done.")


def test_done_as_text(world):
    actions, todos, ids = world
    assert act(actions, "set_todo_done", id=ids["buy stamps"], done="false").ok
    assert not todos.get(S, ids["buy stamps"]).done


@pytest.mark.parametrize("name, real", [("remove_todo", "delete_todo"), ("mark_done", "set_todo_done"),
                                        ("complete_todo", "set_todo_done"), ("mark_todo_done", "set_todo_done")])
def test_a_name_small_models_give_a_tool_is_taken_for_it(world, name, real):
    actions, todos, ids = world
    row = act(actions, name, id="plumber")
    assert row.ok and row.name == real
    plumber = todos.get(S, ids["call the plumber"])
    assert plumber is None if real == "delete_todo" else plumber.done


def test_a_title_past_the_bound_is_refused_with_the_bound(world):
    actions, todos, _ = world
    row = act(actions, "add_todo", title="x" * (MAX_TITLE_CHARS + 1))
    assert (row.ok, row.text) == (False, f"Error: a title must be 1 to {MAX_TITLE_CHARS} characters.")
    assert len(todos.all(S)) == 4


# Undo puts back exactly what was.

def undo(actions, call):
    row, changes = actions.undo(S, call)
    assert row is not None
    return changes


def test_undo_of_each_action_puts_back_exactly_what_was(world):
    actions, todos, ids = world
    before = todos.all(S)
    plumber = ids["call the plumber"]
    for name, arguments in [("add_todo", {"title": "milk"}), ("set_todo_done", {"id": plumber}),
                            ("rename_todo", {"id": plumber, "title": "fix it myself"}), ("delete_todo", {"id": plumber})]:
        row, changes = actions.act(S, "r1", f"call_{name}", name, arguments)
        assert row.ok and changes and todos.all(S) != before and actions.undoable(name), name
        undo(actions, f"call_{name}")
        assert todos.all(S) == before, name
    assert actions.act(S, "r1", "call_again", "add_todo", {"title": "milk"})[0].text == "Added #6 'milk'.", \
        "the undone todo's id is not given again"


def test_undo_tells_what_it_undid_in_the_actions_words(world):
    actions, todos, ids = world
    plumber = todos.get(S, ids["call the plumber"])
    act_ = lambda call, name, **a: actions.act(S, "r1", call, name, a)
    act_("c1", "add_todo", title="milk")
    assert undo(actions, "c1") == ["undid the model's add_todo (Added #5 'milk'.)"]
    act_("c2", "set_todo_done", id=plumber.id)
    assert undo(actions, "c2") == [f"undid the model's set_todo_done (Marked #{plumber.id} 'call the plumber' done.)"]
    act_("c4", "delete_todo", id=plumber.id)
    assert undo(actions, "c4") == [f"undid the model's delete_todo (Deleted #{plumber.id} 'call the plumber'.)"]
    assert todos.get(S, plumber.id) == plumber


def test_clear_done_and_its_undo_bring_back_every_done_todo_with_its_id(world):
    actions, todos, ids = world
    row, changes = actions.act(S, "r1", "c0", "clear_done", {})
    assert (row.ok, row.text) == (True, "There were no done todos to delete.")
    for title in ("buy stamps", "Water plants"):
        todos.change(S, ids[title], done=True)
    before = todos.all(S)
    row, changes = actions.act(S, "r1", "c1", "clear_done", {})
    assert row.text == f"Deleted the 2 done todos: #{ids['buy stamps']} 'buy stamps', #{ids['Water plants']} 'Water plants'."
    assert len(todos.all(S)) == 2
    undo(actions, "c1")
    assert todos.all(S) == before


def test_an_undo_that_would_overfill_the_list_is_refused_and_changes_nothing(tmp_path, monkeypatch):
    app, actions, todos = load(tmp_path, monkeypatch, max_todos=2)
    for title in ("one", "two"):
        actions.act(S, "r1", f"add_{title}", "add_todo", {"title": title})
    actions.act(S, "r1", "c_del", "delete_todo", {"id": 1})
    actions.act(S, "r1", "add_three", "add_todo", {"title": "three"})  # the list is full again
    with pytest.raises(Refused, match="room for"):
        actions.undo(S, "c_del")
    assert [t.title for t in todos.all(S)] == ["two", "three"]
    assert actions.undo(S, "add_three")[0] is not None and actions.undo(S, "c_del")[0] is not None, "room again: undone"
    assert [t.title for t in todos.all(S)] == ["one", "two"]


# How changes are told to the model and shown in every tab.

def test_a_change_in_words_and_the_state_as_the_model_is_told_it():
    milk = Todo(3, "milk", False)
    assert tell("added", milk) == "added #3 'milk'"
    assert tell("toggled", Todo(3, "milk", True)) == "marked #3 'milk' done"
    assert tell("toggled", milk) == "marked #3 'milk' not done"
    assert tell("renamed", Todo(3, "oat milk", False)) == "renamed #3 to 'oat milk'"
    assert tell("deleted", milk) == "deleted #3 'milk'" and tell("restored", milk) == "restored #3 'milk'"
    assert state([]) == "The todo list is now empty."
    assert state([milk, Todo(4, "eggs", True)]) == "The todo list now:\n- [ ] #3 milk\n- [x] #4 eggs"
    assert listed([milk, Todo(4, "eggs", True)]) == "The todo list is now: #3 milk; #4 eggs (done)."
    assert listed([]) == "The todo list is now empty."


def test_the_apps_state_and_brief_are_the_sessions_own(tmp_path, monkeypatch):
    app, actions, todos = load(tmp_path, monkeypatch)
    todos.add(S, "milk"), todos.add("other", "secret plans")
    assert app.state(S) == "The todo list now:\n- [ ] #1 milk" and app.brief(S) == "The todo list is now: #1 milk."


def test_the_persona_has_attitude_and_the_page_its_own_words(tmp_path, monkeypatch):
    app, _, _ = load(tmp_path, monkeypatch)
    assert app.persona.startswith(PERSONA) and "attitude" in PERSONA and "App note:" in app.persona
    assert (app.title, app.placeholder) == ("Todo with attitude", "Talk to your todo list…")
    assert {(m, r.path) for r in app.fasthtml.routes for m in getattr(r, "methods", ()) if "todos" in r.path} == {
        ("POST", "/todos"), ("POST", "/todos/{tid}/toggle"), ("DELETE", "/todos/{tid}")}
