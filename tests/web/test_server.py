"""The web's routes and WebSocket handler (web/server.py) in-process, through Starlette's
TestClient, with a fake bus: every input is checked where it enters and refused with a reason."""
import json
import os
import stat

import pytest
from bs4 import BeautifulSoup
from starlette.testclient import TestClient

from shared.config import Settings
from tests.fake_bus import FakeBus
from web.server import create_app


@pytest.fixture
def app(tmp_path, request, monkeypatch):
    "`@pytest.mark.env(NAME=value)`: settings, and the environment the app reads itself (MAX_TODOS)."
    env = request.node.get_closest_marker("env").kwargs if request.node.get_closest_marker("env") else {}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return create_app(Settings.from_env({"DATA_DIR": str(tmp_path), **env}), fake_bus=FakeBus)


def test_what_the_web_writes_in_data_dir_is_private_to_the_account(tmp_path):
    "The session key and web.db (with its -wal and -shm) are no other account's to read, whatever umask it started with."
    data, umask = tmp_path / "data", os.umask(0o022)
    try:
        app = create_app(Settings.from_env({"DATA_DIR": str(data)}), fake_bus=FakeBus)
        with TestClient(app, base_url="http://localhost") as http:
            http.get("/")
            http.post("/todos", data={"title": "written to web.db"})
    finally:
        os.umask(umask)
    written = [data, *data.rglob("*")]
    assert {".sesskey", "web.db", "web.db-wal"} <= {p.name for p in written}
    assert {p.name: oct(stat.S_IMODE(p.stat().st_mode) & 0o077) for p in written} == {p.name: "0o0" for p in written}


def test_a_todo_id_past_what_sqlite_holds_is_no_such_todo(app):
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        for huge in (2**63, 2**70, -(2**63) - 1):
            assert http.post(f"/todos/{huge}/toggle").status_code == 404
            assert http.delete(f"/todos/{huge}").status_code == 404


def test_a_title_with_a_lone_surrogate_is_refused_with_a_reason(app):
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        answer = http.post("/todos", content=b'{"title": "milk \\ud800"}', headers={"content-type": "application/json"})
        assert answer.status_code == 400 and "title" in answer.text
        assert app.state.broker.sent == []


READING = pytest.mark.env(APP="reading")


@pytest.mark.parametrize("path, form, files, why", [
    ("/todos", {"title": "milk\x00"}, None, "Not added: a title cannot hold control characters (such as NUL)."),
    ("/todos", None, {"title": ("list.txt", b"milk")}, "Not added: a title is text, not a file."),
    pytest.param("/books", {"title": "Dune", "author": "\x00"}, None,
                 "a title or an author cannot hold control characters (such as NUL).", marks=READING),
    pytest.param("/books", None, {"title": ("list.txt", b"Dune")}, "a title or an author is text, not a file.",
                 marks=READING),
])
def test_a_title_with_a_control_character_or_that_is_a_file_is_refused_with_why(app, path, form, files, why):
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        answer = http.post(path, data=form, files=files)
        assert (answer.status_code, answer.text) == (400, why)
        assert app.state.broker.sent == []


@pytest.mark.env(MAX_TODOS="2")
def test_a_full_list_refuses_another_todo_and_says_why(app):
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        assert [http.post("/todos", data={"title": t}).status_code for t in ("a", "b", "c")] == [200, 200, 400]
        assert "MAX_TODOS" in http.post("/todos", data={"title": "d"}).text


def test_each_session_numbers_its_todos_from_1(app):
    with TestClient(app, base_url="http://localhost") as one, TestClient(app, base_url="http://localhost") as two:
        one.get("/"), two.get("/")
        assert 'id="todo-1"' in one.post("/todos", data={"title": "a"}).text
        assert 'id="todo-1"' in two.post("/todos", data={"title": "b"}).text


@pytest.mark.env(SESSION_RATE="1", SESSION_BURST="3")
def test_changes_past_the_sessions_rate_are_refused_with_429(app):
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        answers = [http.post("/todos", data={"title": f"t{i}"}, headers={"HX-Request": "true"}).status_code
                   for i in range(5)]
        assert answers == [200, 200, 200, 429, 429]
        assert [m.lines for m in app.state.broker.sent if m.kind == "app_event"] == [
            [f"added #{i + 1} 't{i}'"] for i in range(3)], "a refusal goes no further"


@pytest.mark.env(WS_MAX_FRAME_CHARS="300000")
def test_a_frame_nested_too_deep_is_refused_and_the_tab_stays_open(app):
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        with http.websocket_connect("ws://localhost/ws", headers={"origin": "http://localhost"}) as ws:
            ws.receive_text()
            ws.send_text("[" * 100_000 + "]" * 100_000)
            assert "could not be read" in ws.receive_text()
            ws.send_text(json.dumps({"msg": "hi there"}))
            assert "hi there" in ws.receive_text()


def test_the_todo_apps_routes_tell_the_model_each_change_once(app):
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        hx = {"HX-Request": "true"}
        http.post("/todos", data={"title": "  oat   milk "}, headers=hx)
        assert 'class="item done"' in http.post("/todos/1/toggle", headers=hx).text
        assert http.delete("/todos/1", headers=hx).text == ""
        assert http.post("/todos/1/toggle", headers=hx).status_code == 404
        assert http.post("/todos", data={"title": " "}, headers=hx).status_code == 400
    events = [m for m in app.state.broker.sent if m.kind == "app_event"]
    assert [(e.lines, e.comment) for e in events[:3]] == [
        (["added #1 'oat milk'"], True), (["marked #1 'oat milk' done"], True), (["deleted #1 'oat milk'"], True)]
    assert events[1].state == "The todo list now:\n- [x] #1 oat milk" and events[2].state == "The todo list is now empty."
    assert [(e.lines, e.comment) for e in events[3:]] == [
        (["used the page (POST /todos/1/toggle → 404)"], False), (["used the page (POST /todos title=' ' → 400)"], False)], \
        "a change refused is no change, so the app tells none: what the user tried is told as used, like any request"


@pytest.mark.env(APP="reading")
def test_app_reading_serves_the_reading_list_and_not_the_todos(app):
    with TestClient(app, base_url="http://localhost") as http:
        page = http.get("/")
        assert page.status_code == 200 and "Reading list" in page.text and 'id="book-form"' in page.text
        assert 'id="todo-form"' not in page.text and "Ask the librarian" in page.text, "the chat beside it"
        added = http.post("/books", data={"title": "Dune", "author": "Frank Herbert"}, headers={"HX-Request": "true"})
        assert added.status_code == 200 and 'id="book-1"' in added.text
        assert http.post("/todos", data={"title": "milk"}).status_code == 404
        assert http.get("/export/markdown").text.startswith("# Reading list: conversation")
        surrogate = http.post("/books", content=b'{"title": "Emma \\ud800"}', headers={"content-type": "application/json"})
        assert surrogate.status_code == 400 and "cannot be stored" in surrogate.text
    [event] = [m for m in app.state.broker.sent if m.kind == "app_event"]
    assert event.lines == ["added #1 'Dune' by Frank Herbert"] and event.prompt.system.startswith("You are the librarian")
    assert [t["function"]["name"] for t in event.prompt.tools] == ["add_book", "mark_read", "remove_book"]


@pytest.mark.env(NEW_SESSIONS_RATE="1", NEW_SESSIONS_BURST="2")
def test_new_sessions_past_everyones_bound_are_refused_and_existing_ones_go_on(app):
    "Fresh cookies are free: past NEW_SESSIONS_BURST a request without a session is refused, with the setting."
    browsers = [TestClient(app, base_url="http://localhost") for _ in range(3)]
    with browsers[0] as first, browsers[1] as second, browsers[2] as third:
        for _ in range(5):
            assert first.get("/api/status").status_code == 200  # status polls open no session
        assert first.get("/").status_code == second.get("/").status_code == 200
        refused = third.get("/")
        assert refused.status_code == 429 and "NEW_SESSIONS_RATE" in refused.text and "session_" not in third.cookies
        assert third.post("/todos", data={"title": "x"}).status_code == 429
        assert first.get("/").status_code == 200 and first.post("/todos", data={"title": "milk"}).status_code == 200


@pytest.mark.env(NEW_SESSIONS_RATE="1", NEW_SESSIONS_BURST="1")
def test_pages_another_site_makes_the_browser_ask_for_spend_nothing_of_the_new_sessions_bound(app):
    "They can write nothing (the origin check); counted, any page on the web could keep new visitors out."
    for _ in range(5):
        with TestClient(app, base_url="http://localhost") as lured:
            assert lured.get("/", headers={"sec-fetch-site": "cross-site"}).status_code == 200
            assert lured.post("/todos", data={"title": "x"}, headers={"origin": "http://evil.example"}).status_code == 403
    with TestClient(app, base_url="http://localhost") as visitor, TestClient(app, base_url="http://localhost") as script:
        assert visitor.get("/", headers={"sec-fetch-site": "none"}).status_code == 200
        assert script.get("/").status_code == 429


@pytest.mark.env(CHANGES_RATE="0.1", CHANGES_BURST="3")
def test_changes_past_everyones_rate_are_refused_whichever_session_makes_them(app):
    with TestClient(app, base_url="http://localhost") as one, TestClient(app, base_url="http://localhost") as two:
        one.get("/"), two.get("/")
        assert [one.post("/todos", data={"title": t}).status_code for t in ("a", "b")] == [200, 200]
        assert two.post("/todos", data={"title": "c"}).status_code == 200
        refused = two.post("/todos", data={"title": "d"})
        assert refused.status_code == 429 and "CHANGES_RATE" in refused.text
        assert one.delete("/todos/1").status_code == 429
        assert "a" in one.get("/").text, "reading goes on"


@pytest.mark.env(DATA_MAX_MB="1")
def test_past_data_max_mb_changes_and_messages_are_refused_and_reading_goes_on(app, tmp_path):
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        assert http.post("/todos", data={"title": "milk"}).status_code == 200
        (tmp_path / "brain.db").write_bytes(b"x" * (1 << 20))  # the conversations filled it
        refused = http.post("/todos", data={"title": "eggs"})
        assert refused.status_code == 507 and "DATA_MAX_MB" in refused.text
        assert http.post("/todos/1/toggle").status_code == 507
        page = http.get("/")
        assert page.status_code == 200 and "milk" in page.text and "eggs" not in page.text
        with http.websocket_connect("ws://localhost/ws", headers={"origin": "http://localhost"}) as ws:
            ws.receive_text()
            ws.send_text(json.dumps({"msg": "hi there"}))
            notice = ws.receive_text()
            assert "DATA_MAX_MB" in notice and "Nothing was sent" in notice
        assert not [m for m in app.state.broker.sent if m.kind == "chat"]


def test_each_page_is_a_tab_of_its_own_which_its_websocket_and_htmx_requests_name(app):
    "So what a tab changes is sent to the session's other tabs, not back to it (web/clients.py)."
    with TestClient(app, base_url="http://localhost") as http:
        tabs = []
        for _ in range(2):
            page = BeautifulSoup(http.get("/").text, "html.parser")
            tab = page.select_one("#chat")["data-tab"]  # app.js sends it as X-Tab with each htmx request
            assert page.select_one("[ws-connect]")["ws-connect"] == f"/ws?tab={tab}"
            tabs.append(tab)
        assert tabs[0] != tabs[1] and all(len(t) == 32 for t in tabs)
