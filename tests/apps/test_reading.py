"""The reading-list app (apps/reading), a plain FastHTML app with a Loop, driven the way the web
drives it: its three actions through the layer (apps.load, web.actions), each undone exactly, a
book named by its number or its title, the list as the model is told it, and the numbers: each
session's own from 1, a removed book's never given to another, so an Undo always finds the book it
means; a session's list is bounded (MAX_BOOKS). Its routes through the whole web (TestClient): each
change told in the app's words, refused with why, and the session's other tabs told to refresh."""
import json
import sys
import uuid

import pytest
from bs4 import BeautifulSoup
from fastlite import database
from starlette.testclient import TestClient

from shared.config import Settings
from tests.fake_bus import FakeBus
from web import apps
from web.actions import Actions
from web.apps import Refused, tool_schema
from web.server import create_app

S = "session-a"
HX = {"HX-Request": "true", "Origin": "http://localhost"}


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    "apps/reading is imported anew for each test, so its database is in this test's DATA_DIR."
    monkeypatch.setenv("DATA_DIR", str(tmp_path))  # apps.load sets it: put back after the test
    monkeypatch.delitem(sys.modules, "apps.reading", raising=False)
    return lambda: sys.modules["apps.reading"]


@pytest.fixture
def world(tmp_path, fresh):
    db = database(tmp_path / "web.db")
    app = apps.load("reading", apps.Host(Settings.from_env({"DATA_DIR": str(tmp_path)})))
    assert (tmp_path / "reading.db").exists(), "the app's database is in its data folder"
    return app, Actions(db, app)


def call(actions, name, n=[0], session=S, **arguments):
    n[0] += 1
    return actions.act(session, "r1", f"call_{n[0]}", name, arguments)


def done(name: str, **book) -> str:
    "An action's text, as the layer tells the model and the action's card shows it."
    return f"{name} done: " + json.dumps({"id": 0, "title": "", "author": "", "read": False} | book)


def test_its_three_tools_and_what_they_take(world):
    app, _ = world
    tools = {t["function"]["name"]: t["function"]["parameters"] for t in (tool_schema(a) for a in app.actions)}
    assert list(tools) == ["add_book", "mark_read", "remove_book"]
    assert {k: v["type"] for k, v in tools["add_book"]["properties"].items()} == {"title": "string", "author": "string"}
    assert {k: v["type"] for k, v in tools["mark_read"]["properties"].items()} == {"id": "integer", "read": "boolean"}
    assert tools["mark_read"]["properties"]["id"]["description"] == "The book's number: 2 for #2, or its title."
    assert [tools[t]["required"] for t in tools] == [["title"], ["id"], ["id"]], "session is not the model's"
    assert app.persona.startswith("You are the librarian inside a reading-list app") and "App note:" in app.persona
    assert (app.title, app.placeholder) == ("Reading list", "Ask the librarian…")


def test_add_mark_and_remove_change_the_list_and_say_what_they_did(world):
    app, actions = world
    row, changes = call(actions, "add_book", title="  Dune ", author="Frank   Herbert")
    assert (row.ok, row.text) == (True, done("add_book", id=1, title="Dune", author="Frank Herbert"))
    assert changes == [f"the model's add_book ({row.text})"]
    call(actions, "add_book", title="Emma")  # no author: the model leaves it out
    row, _ = call(actions, "mark_read", id="#1")
    assert row.text == done("mark_read", id=1, title="Dune", author="Frank Herbert", read=True)
    assert app.state(S) == "The reading list now:\n- [x] #1 'Dune' by Frank Herbert\n- [ ] #2 'Emma'"
    assert app.brief(S) == "The reading list now: - [x] #1 'Dune' by Frank Herbert - [ ] #2 'Emma'"
    row, _ = call(actions, "remove_book", id="emma")  # by its title, any case
    assert row.text == done("remove_book", id=2, title="Emma")
    row, _ = call(actions, "mark_read", id=1, read="false")
    assert row.ok and app.state(S) == "The reading list now:\n- [ ] #1 'Dune' by Frank Herbert"
    row, _ = call(actions, "mark_read", id=1, read=False)
    assert row.text == "Error: #1 'Dune' by Frank Herbert is marked not read already.", "no change, so nothing to undo"


def test_a_book_that_is_not_there_or_a_bad_title_is_refused_with_what_to_do(world):
    app, actions = world
    call(actions, "add_book", title="Dune")
    row, changes = call(actions, "remove_book", id=7)
    assert (row.ok, changes) == (False, []) and row.text == "Error: no book is 7."
    assert app.brief(S) == "The reading list now: - [ ] #1 'Dune'", "the list follows once, as the layer adds it"
    assert call(actions, "mark_read", id="Dune Messiah")[0].text.startswith("Error: no book is 'Dune Messiah'.")
    assert call(actions, "add_book", title="   ")[0].text == "Error: a title must be 1 to 200 characters."
    assert call(actions, "add_book", title="x" * 201)[0].ok is False
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
    assert changes == ["undid the model's remove_book " + f"({json.dumps({'id': 1, 'title': 'Dune', 'author': 'Frank Herbert', 'read': True})})"]


def test_a_removed_books_number_is_never_given_again_so_an_undo_finds_the_book_it_means(world):
    app, actions = world
    added, _ = call(actions, "add_book", title="Dune")
    removed, _ = call(actions, "remove_book", id=1)
    assert call(actions, "add_book", title="1")[0].text == done("add_book", id=2, title="1"), "not #1 again"
    with pytest.raises(Refused, match="gone already"):
        actions.undo(S, added.call)  # Dune is gone: neither #2 nor the book titled '1' is taken for it
    assert app.state(S) == "The reading list now:\n- [ ] #2 '1'"
    assert actions.undo(S, removed.call)[0].undone
    assert app.state(S) == "The reading list now:\n- [ ] #1 'Dune'\n- [ ] #2 '1'"


def test_sessions_see_and_change_only_their_own_books_each_numbered_from_1(world):
    app, actions = world
    call(actions, "add_book", title="Dune")
    row, _ = call(actions, "remove_book", session="other", id=1)
    assert not row.ok and app.state("other") == "The reading list is now empty."
    assert call(actions, "add_book", session="other", title="Emma")[0].text == done("add_book", id=1, title="Emma")
    assert call(actions, "mark_read", session="other", id=1)[0].ok
    assert app.state(S) == "The reading list now:\n- [ ] #1 'Dune'", "the other session's #1 is not this one's"
    assert call(actions, "remove_book", id="#1")[0].ok and app.state("other") == "The reading list now:\n- [x] #1 'Emma'"


def test_a_full_list_refuses_one_more_book_and_says_why(world, fresh, monkeypatch):
    monkeypatch.setattr(fresh(), "MAX_BOOKS", 2)
    _, actions = world
    call(actions, "add_book", title="Dune")
    call(actions, "add_book", title="Emma")
    row, changes = call(actions, "add_book", title="Ulysses")
    assert not row.ok and changes == [] and "holds 2 books" in row.text
    assert call(actions, "add_book", session="session-b", title="Ulysses")[0].ok, "another session's list has room"


@pytest.fixture
def web(tmp_path, fresh):
    return create_app(Settings.from_env({"DATA_DIR": str(tmp_path), "APP": "reading"}), fake_bus=FakeBus)


def test_the_page_has_the_form_the_notice_and_the_list_and_the_chat_comes_beside_it(web):
    with TestClient(web, base_url="http://localhost") as http:
        page = BeautifulSoup(http.get("/").text, "html.parser")
        form = page.select_one("#loop-app form.app-form")
        assert (form["hx-post"], form["hx-target"], form["hx-swap"]) == ("/books", "#book-list", "beforeend")
        assert [(i["id"], i["name"]) for i in form.find_all("input")] == [("book-title", "title"), ("book-author", "author")]
        assert page.select_one("#app-notice.notice[role=alert]") and page.select_one("ul#book-list.items")
        assert page.title.get_text() == "Reading list" and page.select_one("section#chat[ws-connect]")


def test_the_routes_tell_each_change_in_words_and_refuse_with_why(web):
    with TestClient(web, base_url="http://localhost") as http:
        http.get("/")
        li = BeautifulSoup(http.post("/books", data={"title": "<script>x</script>", "author": "Anon"}, headers=HX).text,
                           "html.parser").li
        assert (li["id"], li["class"], li.find(class_="title").get_text()) == ("book-1", ["item"], "<script>x</script>")
        assert not li.find("script") and li.input["hx-post"] == "/books/1/read" and li.button["hx-delete"] == "/books/1"
        http.post("/books", data={"title": "Dune", "author": "Frank Herbert"}, headers=HX)
        assert BeautifulSoup(http.post("/books/2/read", headers=HX).text, "html.parser").li["class"] == ["item", "done"]
        assert http.delete("/books/1", headers=HX).text == ""
        assert (http.delete("/books/1", headers=HX).status_code, http.post("/books/9/read", headers=HX).text) == (
            404, "No such book")
        refused = http.post("/books", data={"title": " "}, headers=HX)
        assert (refused.status_code, refused.text) == (400, "a title must be 1 to 200 characters.")
        page = BeautifulSoup(http.get("/").text, "html.parser")
        assert [(li["id"], li["class"]) for li in page.select("#book-list > li")] == [("book-2", ["item", "done"])]
    events = [(e.lines, e.comment) for e in web.state.broker.sent if e.kind == "app_event"]
    assert events[:3] == [(["added #1 '<script>x</script>' by Anon"], True), (["added #2 'Dune' by Frank Herbert"], True),
                          (["marked #2 'Dune' by Frank Herbert read"], True)]
    assert events[3:] == [(["removed #1 '<script>x</script>' by Anon"], True),
                          (["used the page (DELETE /books/1 → 404)"], False),
                          (["used the page (POST /books/9/read → 404)"], False),
                          (["used the page (POST /books title=' ' → 400)"], False)], "a refusal changes nothing"
    [removed] = [e for e in web.state.broker.sent if e.kind == "app_event" and e.lines[0].startswith("removed")]
    assert removed.state == "The reading list now:\n- [x] #2 'Dune' by Frank Herbert"


def test_a_change_in_one_tab_tells_the_sessions_other_tabs_to_fetch_the_app_again(web):
    with TestClient(web, base_url="http://localhost") as http:
        http.get("/")
        other, made_it = uuid.uuid4().hex, uuid.uuid4().hex
        with http.websocket_connect(f"ws://localhost/ws?tab={other}", headers={"origin": "http://localhost"}) as ws:
            assert "brain ready" in ws.receive_text()
            http.post("/books", data={"title": "Dune"}, headers=HX | {"X-Tab": made_it})
            signal = BeautifulSoup(ws.receive_text(), "html.parser").find(id="loop-refresh")
            assert signal is not None and signal["hx-swap-oob"] == "true"
        part = http.get("/", headers={"HX-Request": "true", "X-Loop-Refresh": "1"})  # what that tab fetches
        soup = BeautifulSoup(part.text, "html.parser")
        assert soup.find().get("id") == "loop-app" and [li["id"] for li in soup.select("#book-list > li")] == ["book-1"]
        assert not soup.select("#chat"), "its part of the page only"
