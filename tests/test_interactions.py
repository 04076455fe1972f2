"""The brain's interaction policy (brain/interactions.py): which of the page's interactions the
model is told of (and in what words), and which it hears of another way and must not hear twice."""
from brain.interactions import heard
from shared.messages import Interaction


def event(method, path, trigger="", name="", values=None, status=200):
    return Interaction(session="s", request="r", method=method, path=path, trigger=trigger, name=name,
                       values=values or {}, status=status)


def test_todo_changes_chat_controls_and_undo_are_told_another_way():
    assert heard(event("POST", "/todos", values={"title": "milk"})) is None
    assert heard(event("POST", "/todos/12/toggle")) is None
    assert heard(event("DELETE", "/todos/3")) is None
    for field in ("msg", "stop", "retry", "regenerate", "reset", "model", "undo"):
        assert heard(event("WS", "/ws", values={field: "x"}, status=0)) is None, field


def test_any_other_interaction_is_told_with_what_was_used_its_values_and_answer():
    assert heard(event("GET", "/export/md", trigger="export-md")) == "used #export-md (GET /export/md → 200)"
    assert heard(event("POST", "/settings", name="theme", values={"theme": "dark", "n": "2"})) == \
        "used theme (POST /settings theme='dark', n='2' → 200)"
    assert heard(event("WS", "/ws", values={"pull": "qwen3"}, status=0)) == "used the page (WS /ws pull='qwen3')"


def test_only_the_exact_todo_routes_are_told_another_way():
    assert heard(event("GET", "/todos")) is not None, "another method"
    assert heard(event("POST", "/todos/12/toggle/extra")) is not None
    assert heard(event("POST", "/todos/abc/toggle")) is not None
    assert heard(event("DELETE", "/todos")) is not None
