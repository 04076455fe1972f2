"""The reading-list app (apps/reading), the second app on the layer: its three actions, each undone
exactly, a book named by its number or its title, the list as the model is told it, and the
numbers: each session's own from 1, a removed book's never given to another, so an Undo always finds
the book it means; and a session's list is bounded (MAX_BOOKS)."""
import pytest
from bs4 import BeautifulSoup
from fastlite import database

from apps import reading
from apps.reading import MAX_CHARS, Book
from shared.config import Settings
from web import apps
from web.actions import Actions
from web.apps import Refused, tool_schema

S = "session-a"


class NowDisk:
    async def call(self, fn, *args): return fn(*args)


async def _nothing(session, changes): pass


@pytest.fixture
def world(tmp_path):
    db = database(tmp_path / "web.db")
    app = apps.load("reading", apps.Host(db, Settings.from_env({"DATA_DIR": str(tmp_path)}), NowDisk(), _nothing))
    return app, Actions(db, app)


def call(actions, name, n=[0], session=S, **arguments):
    n[0] += 1
    row, changes = actions.act(session, "r1", f"call_{n[0]}", name, arguments)
    return row, changes


def test_its_three_tools_and_what_they_take(world):
    app, _ = world
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in (tool_schema(a) for a in app.actions)}
    assert list(tools) == ["add_book", "mark_read", "remove_book"]
    assert {k: v["type"] for k, v in tools["add_book"]["properties"].items()} == {"title": "string", "author": "string"}
    assert {k: v["type"] for k, v in tools["mark_read"]["properties"].items()} == {"id": "integer", "read": "boolean"}
    assert tools["remove_book"]["required"] == ["id"]


def test_add_mark_and_remove_change_the_list_and_say_what_they_did(world):
    app, actions = world
    row, changes = call(actions, "add_book", title="  Dune ", author="Frank   Herbert")
    assert (row.ok, row.text) == (True, "Added #1 'Dune' by Frank Herbert.")
    assert changes == [("added", Book(1, S, "Dune", "Frank Herbert", False))]
    call(actions, "add_book", title="Emma")  # no author: the model leaves it out
    row, changes = call(actions, "mark_read", id="#1")
    assert row.text == "Marked #1 'Dune' by Frank Herbert read." and changes[0][1].read is True
    assert app.state(S) == "The reading list now:\n- [x] #1 'Dune' by Frank Herbert\n- [ ] #2 'Emma'"
    assert app.brief(S) == "The reading list now: - [x] #1 'Dune' by Frank Herbert - [ ] #2 'Emma'"
    row, changes = call(actions, "remove_book", id="emma")  # by its title, any case
    assert row.text == "Removed #2 'Emma'." and changes == [("removed", Book(2, S, "Emma", "", False))]
    row, _ = call(actions, "mark_read", id=1, read="false")
    assert row.ok and app.state(S) == "The reading list now:\n- [ ] #1 'Dune' by Frank Herbert"


def test_a_book_that_is_not_there_or_a_bad_title_is_refused_with_what_to_do(world):
    app, actions = world
    call(actions, "add_book", title="Dune")
    row, changes = call(actions, "remove_book", id=7)
    assert (row.ok, changes) == (False, []) and row.text == "Error: no book is 7. The reading list now:\n- [ ] #1 'Dune'"
    assert call(actions, "mark_read", id="Dune Messiah")[0].text.startswith("Error: no book is 'Dune Messiah'.")
    assert call(actions, "add_book", title="   ")[0].text == f"Error: a title must be 1 to {MAX_CHARS} characters."
    assert call(actions, "add_book", title="x" * (MAX_CHARS + 1))[0].ok is False
    assert call(actions, "add_book", title="Dune \ud800")[0].text == "Error: a title or an author holds a character that cannot be stored (a lone surrogate)."
    assert call(actions, "add_book", title="Dune", author="\udfff")[0].ok is False
    assert app.state(S) == "The reading list now:\n- [ ] #1 'Dune'"


@pytest.mark.parametrize("fields", [{"title": "Dune\x00"}, {"title": "\x1b[2JDune"}, {"title": "Dune", "author": "F\x00H"}])
def test_a_title_or_author_with_a_control_character_is_refused_and_says_so(world, fields):
    app, actions = world
    row, changes = call(actions, "add_book", **fields)
    assert (row.ok, changes) == (False, [])
    assert row.text == "Error: a title or an author cannot hold control characters (such as NUL)."
    assert app.state(S) == "The reading list is now empty."


def test_each_action_is_undone_exactly(world):
    app, actions = world
    call(actions, "add_book", title="Dune", author="Frank Herbert")
    call(actions, "mark_read", id=1)
    before = app.state(S)
    for name, arguments in [("add_book", {"title": "Emma"}), ("mark_read", {"id": 1, "read": False}),
                            ("remove_book", {"id": 1})]:
        row, _ = call(actions, name, **arguments)
        assert row.ok and app.state(S) != before, name
        undone, changes = actions.undo(S, row.call)
        assert undone.undone and changes and app.state(S) == before, name
    assert [c[0] for c in changes] == ["restored"] and changes[0][1] == Book(1, S, "Dune", "Frank Herbert", True)


def test_a_removed_books_number_is_never_given_again_so_an_undo_finds_the_book_it_means(world):
    app, actions = world
    added, _ = call(actions, "add_book", title="Dune")
    removed, _ = call(actions, "remove_book", id=1)
    assert call(actions, "add_book", title="Emma")[0].text == "Added #2 'Emma'.", "not #1 again"
    with pytest.raises(Refused, match="gone already"):
        actions.undo(S, added.call)  # Dune is gone: Emma is not taken for it
    assert app.state(S) == "The reading list now:\n- [ ] #2 'Emma'"
    assert actions.undo(S, removed.call)[1] == [("restored", Book(1, S, "Dune", "", False))]
    assert app.state(S) == "The reading list now:\n- [ ] #1 'Dune'\n- [ ] #2 'Emma'"


def test_sessions_see_and_change_only_their_own_books_each_numbered_from_1(world):
    app, actions = world
    call(actions, "add_book", title="Dune")
    row, _ = call(actions, "remove_book", session="other", id=1)
    assert not row.ok and app.state("other") == "The reading list is now empty."
    assert call(actions, "add_book", session="other", title="Emma")[0].text == "Added #1 'Emma'."
    assert call(actions, "mark_read", session="other", id=1)[0].ok
    assert app.state(S) == "The reading list now:\n- [ ] #1 'Dune'", "the other session's #1 is not this one's"
    assert call(actions, "remove_book", id="#1")[0].ok and app.state("other") == "The reading list now:\n- [x] #1 'Emma'"


def test_changes_are_told_in_words_and_shown_in_every_tab_as_text(world):
    app, actions = world
    evil = Book(3, S, "<script>alert(1)</script>", "Anon", True)
    assert app.tell(("added", Book(1, S, "Dune", "Frank Herbert", False))) == "added #1 'Dune' by Frank Herbert"
    assert app.tell(("marked", evil)) == "marked #3 '<script>alert(1)</script>' by Anon read"
    assert app.tell(("removed", Book(2, S, "Emma", "", False))) == "removed #2 'Emma'"
    html = app.show([("added", Book(1, S, "Dune", "", False)), ("marked", evil), ("removed", Book(2, S, "Emma", "", False))])
    added, marked, removed = BeautifulSoup(html, "html.parser").find_all(recursive=False)
    assert (added["id"], added["hx-swap-oob"], added.li["id"]) == ("book-list", "beforeend", "book-1")
    assert (marked["id"], marked["hx-swap-oob"], marked["class"]) == ("book-3", "true", ["item", "done"])
    assert marked.find(class_="title").get_text() == evil.title and not marked.find("script")
    assert (removed["id"], removed["hx-swap-oob"]) == ("book-2", "delete")
    assert app.state("nobody") == "The reading list is now empty."


def test_a_full_list_refuses_one_more_book_and_says_why(world, monkeypatch):
    monkeypatch.setattr(reading, "MAX_BOOKS", 2)
    _, actions = world
    call(actions, "add_book", title="Dune")
    call(actions, "add_book", title="Emma")
    row, changes = call(actions, "add_book", title="Ulysses")
    assert not row.ok and changes == [] and "holds 2 books" in row.text
    assert call(actions, "add_book", session="session-b", title="Ulysses")[0].ok, "another session's list has room"
