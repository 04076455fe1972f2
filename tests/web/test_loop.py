"""The layer as an app author meets it (web/loop.py): a plain FastHTML app plus a Loop becomes the
web's App, its actions' tool schemas come from their signatures, and its pages get the chat."""
import asyncio
import difflib
import enum
import threading
from pathlib import Path
from typing import Annotated, Literal

import pytest
from fastlite import database
from fasthtml.common import H1, Li, Link, Meta, Script, Style, Title, fast_app, to_xml

from shared.config import Settings
from web.actions import Actions
from web.apps import Host, Outcome, Refused, tool_schema
from web.components import local_heads
from web.loop import Loop, _framed

ROOT = Path(__file__).resolve().parents[2]
HOST = Host(Settings.from_env({}))


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


def app_with(*tools, state=None):
    app, _ = fast_app(default_hdrs=False)
    loop = Loop(app, "You are a lamp.", state=state, title="Lamp")
    for tool in tools:
        loop.action(tool)
    return loop


def test_a_tools_schema_comes_from_its_signature_docstring_and_annotations():
    def dim(level: Annotated[int, "0 to 10"], mode: Literal["warm", "cold"], sizes: list[Size], note: str = "",
            session=None):
        "Dim the lamp. Only when asked."
    [action] = app_with(dim).as_app(HOST).actions
    assert tool_schema(action) == {"type": "function", "function": {
        "name": "dim", "description": "Dim the lamp. Only when asked.",
        "parameters": {"type": "object", "properties": {
            "level": {"type": "integer", "description": "0 to 10"},
            "mode": {"type": "string", "enum": ["warm", "cold"]},
            "sizes": {"type": "array", "items": {"type": "string", "enum": ["small", "large"]}},
            "note": {"type": "string"}},
            "required": ["level", "mode", "sizes"]}}}, "a default makes it optional; session is not the model's"


def test_a_parameter_that_cannot_be_a_tools_stops_the_web_naming_the_function():
    def spread(*lamps: str):
        "Many at once."
    with pytest.raises(SystemExit, match=r"action spread: \*lamps cannot be a tool's parameter"):
        app_with(spread).as_app(HOST)

    def shine(where: threading.Lock):
        "Somewhere."
    with pytest.raises(SystemExit, match=r"action shine: its parameter 'where' is typed .*\(in tests.web.test_loop\..*shine\)"):
        app_with(shine).as_app(HOST)


def test_an_action_runs_with_its_arguments_and_the_session_and_its_result_is_told_and_kept_for_its_undo():
    undone = []

    def add(title: str, session, done: bool = False) -> dict:
        "Add."
        return {"id": 3, "title": title, "by": session["sid"], "done": done}

    add_tool = Loop.action(loop := app_with(), add)
    add_tool.undo(lambda row, session: undone.append((row, session["sid"])))
    [action] = loop.as_app(HOST).actions
    outcome = action.run("s1", action.arguments(title="milk"))
    assert outcome == Outcome('add done: {"id": 3, "title": "milk", "by": "s1", "done": false}',
                              ['the model\'s add (add done: {"id": 3, "title": "milk", "by": "s1", "done": false})'],
                              {"id": 3, "title": "milk", "by": "s1", "done": False})
    assert action.undo("s1", outcome.undo) == ['undid the model\'s add ({"id": 3, "title": "milk", "by": "s1", "done": false})']
    assert undone == [({"id": 3, "title": "milk", "by": "s1", "done": False}, "s1")]
    assert add("x", {"sid": "s2"})["by"] == "s2", "to the app it is still the plain function"


def test_an_actions_session_holds_the_users_message_its_reply_answers_when_there_is_one():
    seen = []

    def ring(session) -> str:
        "Ring."
        seen.append(session)
        return "Rang."

    Loop.action(loop := app_with(), ring)
    [action] = loop.as_app(HOST).actions
    action.run("s1", action.arguments(), "ring the bell")
    action.run("s1", action.arguments())
    assert seen == [{"sid": "s1", "asked": "ring the bell"}, {"sid": "s1"}]


def test_text_is_told_as_it_is_and_an_action_without_undo_has_none():
    def ring() -> str:
        "Ring."
        return "Rang once."
    [action] = app_with(ring).as_app(HOST).actions
    assert action.undo is None and action.run("s", action.arguments()) == Outcome("Rang once.", ["the model's ring (Rang once.)"])


def test_an_async_action_is_awaited_on_the_webs_loop():
    seen = []

    async def glow(level: int) -> str:
        "Glow."
        seen.append(asyncio.get_running_loop())
        return f"glowing at {level}"
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        [action] = app_with(glow).as_app(Host(HOST.settings, loop=loop)).actions
        assert action.run("s", action.arguments(level=4)).text == "glowing at 4" and seen == [loop]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()


def test_refused_reaches_the_layer_as_it_was_raised():
    def burn():
        "Burn."
        raise Refused("a lamp does not burn; dim it instead.")
    [action] = app_with(burn).as_app(HOST).actions
    with pytest.raises(Refused, match="dim it instead"):
        action.run("s", action.arguments())


def test_the_system_message_is_the_persona_with_the_layers_own_words_and_the_state_is_text_or_json():
    lamps = [{"id": 1, "on": True}]
    app = app_with(state=lambda session: lamps if session["sid"] == "s" else "none").as_app(HOST)
    assert app.persona.startswith("You are a lamp.\n\nMessages that start with 'App note:' are not typed by the user")
    assert "Call a tool only" not in app.persona, "no tools, no word on calling them"
    assert (app.state("s"), app.state("t"), app.brief("s")) == ('[{"id": 1, "on": true}]', "none", '[{"id": 1, "on": true}]')

    def ring():
        "Ring."
    assert "Call a tool only when the user asks you" in app_with(ring).as_app(HOST).persona
    assert app_with().as_app(HOST).state("s") == "", "no state: the interactions alone"


class Req:
    def __init__(self, **headers):
        self.headers = headers


def test_a_full_page_gets_the_chat_beside_the_apps_part_and_a_fragment_is_left_alone():
    slot = lambda: Li("chat")  # noqa: E731 - the chat, as the web makes it for this request
    page = _framed(Req(), (Title("Lamp"), H1("Lamp")), slot)
    assert [getattr(p, "tag", "") for p in page] == ["title", "div", "li"] and page[1].id == "loop-app"
    assert to_xml(page[1]).count("<h1>Lamp</h1>") == 1
    assert _framed(Req(**{"hx-request": "true"}), H1("x"), slot) is None, "an htmx fragment as the route made it"
    assert _framed(Req(), "plain text", slot) is None and _framed(Req(), {"a": 1}, slot) is None
    refetched = _framed(Req(**{"hx-request": "true", "x-loop-refresh": "1"}), (Title("Lamp"), H1("Lamp")), slot)
    assert refetched.id == "loop-app" and "chat" not in to_xml(refetched), "another tab's refetch: the app's part only"


def test_only_head_elements_that_stay_on_this_machine_are_kept():
    kept = local_heads([Script(src="https://cdn.example/htmx.js"), Link(rel="stylesheet", href="//cdn.example/pico.css"),
                        Link(rel="stylesheet", href="/mine.css"), Style("li { color: red }"), Meta(charset="utf-8"),
                        Meta(name="description", content="lamps")])
    mine = [to_xml(h) for h in kept[-3:]]
    assert "/mine.css" in mine[0] and "color: red" in mine[1] and 'content="lamps"' in mine[2]
    assert not [h for h in kept if "cdn.example" in to_xml(h)]


def test_the_tutorials_app_is_the_plain_fasthtml_one_plus_two_lines_to_see_and_ten_more_to_act():
    "What the README's tutorial shows: apps/starter.py against docs/starter_plain.py, code lines only."
    def code(path):
        source = (ROOT / path).read_text()
        return [line for line in source.split('"""', 2)[2].splitlines() if line.strip()]  # past the module docstring
    plain, starter = code("docs/starter_plain.py"), code("apps/starter.py")
    diff = [line for line in difflib.ndiff(plain, starter) if line[:2] in ("+ ", "- ")]
    assert not [line for line in diff if line.startswith("- ")], "nothing of the plain app changes"
    added = [line[2:] for line in diff]
    seeing = [line for line in added if "Loop" in line and "def" not in line]
    assert seeing == ["from web.loop import Loop", added[2]] and added[2].startswith("loop = Loop(app, ")
    assert len(seeing) <= 3 and len(added) <= 15, added


def test_an_action_or_undo_that_fails_is_told_as_failed_and_the_log_names_the_apps_function(tmp_path, caplog):
    def drop(id: int) -> dict:
        "Drop."
        return {"id": id}

    def put_back(row: dict):
        raise KeyError(row["id"])

    def explode():
        "Explode."
        return 1 / 0
    loop = app_with(drop, explode)
    loop.tools[0].undo(put_back)
    app = loop.as_app(HOST)
    actions = Actions(database(tmp_path / "web.db"), app)
    row, _ = actions.act("s", "r", "call_1", "explode", {})
    assert (row.ok, row.text) == (False, "Error: the app could not do explode; its log says why.")
    assert "tests.web.test_loop.test_an_action_or_undo_that_fails_is_told_as_failed_and_the_log_names_the_apps_function" \
           ".<locals>.explode" in caplog.text
    assert actions.act("s", "r", "call_2", "drop", {"id": "4"})[0].ok and actions.undoable("drop")
    with pytest.raises(Refused, match="the app hit an error undoing drop"):
        actions.undo("s", "call_2")
    assert "<locals>.put_back" in caplog.text
    assert not actions.undoable("explode") and actions.undo("s", "call_1") == (None, [])
