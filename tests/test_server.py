"""The web's routes and WebSocket handler (web/server.py) in-process, through Starlette's
TestClient, with a fake bus: every input is checked where it enters and refused with a reason."""
import json

import pytest
from starlette.testclient import TestClient

from shared.config import Settings
from tests.test_chats import FakeBus
from web.server import create_app


@pytest.fixture
def app(tmp_path, request, monkeypatch):
    "`@pytest.mark.env(NAME=value)`: settings, and the environment the app reads itself (MAX_TODOS)."
    env = request.node.get_closest_marker("env").kwargs if request.node.get_closest_marker("env") else {}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return create_app(Settings.from_env({"DATA_DIR": str(tmp_path), **env}), bus=FakeBus)


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
    assert len(events) == 3, "a change refused is no change: nothing to tell, and the tap leaves the app's routes alone"


@pytest.mark.env(APP="reading")
def test_app_reading_serves_the_reading_list_and_not_the_todos(app):
    with TestClient(app, base_url="http://localhost") as http:
        page = http.get("/")
        assert page.status_code == 200 and "Reading list" in page.text and 'id="book-form"' in page.text
        assert 'id="todo-form"' not in page.text and "Ask the librarian" in page.text
        added = http.post("/books", data={"title": "Dune", "author": "Frank Herbert"}, headers={"HX-Request": "true"})
        assert added.status_code == 200 and 'id="book-1"' in added.text
        assert http.post("/todos", data={"title": "milk"}).status_code == 404
        assert http.get("/export/markdown").text.startswith("# Reading list: conversation")
        surrogate = http.post("/books", content=b'{"title": "Emma \\ud800"}', headers={"content-type": "application/json"})
        assert surrogate.status_code == 400 and "cannot be stored" in surrogate.text
    [event] = [m for m in app.state.broker.sent if m.kind == "app_event"]
    assert event.lines == ["added #1 'Dune' by Frank Herbert"] and event.prompt.system.startswith("You are the librarian")
    assert [t["function"]["name"] for t in event.prompt.tools] == ["add_book", "mark_read", "remove_book"]
