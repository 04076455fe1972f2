"""The app layer (web/apps.py): an action's typed parameters made into Ollama's tool definition,
an app's prompt, the names small models give tools, and loading the app APP names."""
import enum
import typing
from pathlib import Path
from typing import Annotated

import msgspec
import pytest

from shared.config import Settings
from web import apps
from web.apps import Action, App, Host, Outcome, tool_schema

# The todo app's tools as the brain offered them before the app layer (brain/tools.py TOOLS at
# 9130a05), decided with a real small model (BENCHMARKS.md): the prompt the engine caches, so the
# app layer must make the very same definitions, but one: since the todo app is a Loop (web/loop.py),
# a parameter with a default is not required (set_todo_done's done).
TODO_ID = {"type": "integer", "description": "The todo's number: 2 for #2."}
TITLE = {"type": "string", "description": "The todo in a few words, e.g. 'buy oat milk'."}


def _tool(name, description, optional=(), **properties):
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": properties,
                       "required": [p for p in properties if p not in optional]}}}


OLD_TOOLS = [
    _tool("add_todo", "Add a new todo. Only when the user asks to add something, put it on the list, or be "
                      "reminded of it.", title=TITLE),
    _tool("set_todo_done", "Tick a todo off (done=true) or back on (done=false). Only when the user says a todo "
                           "is done or not done yet.", optional=("done",), id=TODO_ID,
          done={"type": "boolean", "description": "true: done; false: not done."}),
    _tool("rename_todo", "Give a todo a new title. Only when the user asks to rename or reword it.", id=TODO_ID, title=TITLE),
    _tool("delete_todo", "Remove one todo. Only when the user asks to delete, remove or drop it.", id=TODO_ID),
    _tool("clear_done", "Remove every todo that is ticked off. Only when the user asks to clear the done ones."),
]


def host(tmp_path, **env) -> Host:
    return Host(Settings.from_env({"DATA_DIR": str(tmp_path), **env}))


def test_the_todo_apps_tools_are_byte_for_byte_the_ones_the_brain_offered_before_but_an_optional_done(tmp_path):
    app = apps.load("todo", host(tmp_path))
    made = [tool_schema(a) for a in app.actions]
    assert made == OLD_TOOLS
    assert msgspec.json.encode(made) == msgspec.json.encode(OLD_TOOLS), "the same bytes: key order too"
    assert app.prompt(Settings.from_env({})).tools == OLD_TOOLS


class Lamp(msgspec.Struct):
    room: Annotated[str, msgspec.Meta(description="Which room.")]
    level: Annotated[int | str, msgspec.Meta(description="0 to 10.")]
    on: bool = True
    warmth: float = 0.5


class Nothing(msgspec.Struct):
    pass


def act(name, arguments, **kw):
    return Action(name, f"{name}, when asked.", arguments, lambda s, a: Outcome("ok"), lambda s, u: [], **kw)


def test_a_schema_lists_every_field_as_required_offers_a_union_as_its_first_type_and_omits_no_description():
    assert tool_schema(act("lamp", Lamp)) == {"type": "function", "function": {
        "name": "lamp", "description": "lamp, when asked.",
        "parameters": {"type": "object", "properties": {
            "room": {"type": "string", "description": "Which room."},
            "level": {"type": "integer", "description": "0 to 10."},
            "on": {"type": "boolean"},
            "warmth": {"type": "number"}},
            "required": ["room", "level", "on", "warmth"]}}}
    assert tool_schema(act("nothing", Nothing))["function"]["parameters"] == {"type": "object", "properties": {},
                                                                               "required": []}


class Mood(enum.Enum):
    CALM = "calm"
    BRIGHT = "bright"


class Scene(msgspec.Struct):
    mood: Mood
    rooms: Annotated[list[str], msgspec.Meta(description="Which rooms.")]
    level: typing.Literal[1, 2, 3] = 2
    colour: typing.Literal["red", "blue"] | None = None


def test_a_literal_an_enum_and_a_list_are_offered_as_their_values_and_an_array():
    assert tool_schema(act("scene", Scene))["function"]["parameters"] == {"type": "object", "properties": {
        "mood": {"type": "string", "enum": ["calm", "bright"]},
        "rooms": {"type": "array", "items": {"type": "string"}, "description": "Which rooms."},
        "level": {"type": "integer", "enum": [1, 2, 3]},
        "colour": {"type": "string", "enum": ["red", "blue"]}},
        "required": ["mood", "rooms", "level", "colour"]}


class Odd(msgspec.Struct):
    settings: dict


def test_a_parameter_with_no_json_form_stops_the_web_naming_the_action_and_the_field():
    with pytest.raises(SystemExit, match=r"action odd: its parameter 'settings' is typed 'dict'"):
        tool_schema(act("odd", Odd))


def tiny_app(**kw) -> App:
    return App(title="Lamps", persona="You are a lamp.", actions=[act("switch_lamp", Lamp), act("nothing", Nothing)],
               state=lambda s: "", brief=lambda s: "", fasthtml=None, **kw)


def test_a_name_small_models_give_a_tool_is_taken_for_the_real_one_and_an_unknown_one_for_none():
    app = tiny_app(aliases={"turn_on_lamp": "switch_lamp", "ghost": "no_such_tool"})
    assert app.action("switch_lamp").name == "switch_lamp"
    assert app.action("turn_on_lamp") is app.action("switch_lamp")
    assert app.action("nothing").arguments is Nothing
    assert app.action("get_lamps") is None and app.action("ghost") is None and app.action("") is None
    assert tiny_app().action("turn_on_lamp") is None, "no aliases: only the real names"


def test_the_prompt_is_the_persona_and_the_tools_unless_the_settings_say_otherwise():
    app = tiny_app()
    prompt = app.prompt(Settings.from_env({}))
    assert prompt.system == "You are a lamp." and [t["function"]["name"] for t in prompt.tools] == ["switch_lamp", "nothing"]
    assert msgspec.json.encode(app.prompt(Settings.from_env({}))) == msgspec.json.encode(prompt), "the same bytes each time"
    assert app.prompt(Settings.from_env({"SYSTEM_PROMPT": "Be terse."})).system == "Be terse."
    assert app.prompt(Settings.from_env({"MODEL_TOOLS": "off"})).tools == []


def test_load_finds_an_app_by_its_name_under_apps_and_the_todo_app_by_default(tmp_path):
    assert apps.load("", host(tmp_path)).title == "Todo with attitude"
    assert apps.load("reading", host(tmp_path)).title == "Reading list"
    assert apps.load("apps.reading", host(tmp_path)).title == "Reading list", "or any module, by its dotted name"


def test_any_importable_module_is_an_app_with_or_without_a_dot_and_its_own_missing_imports_are_named(tmp_path,
                                                                                                       monkeypatch):
    (tmp_path / "expenses.py").write_text("from apps.reading import loop\n")
    (tmp_path / "broken.py").write_text("import no_such_library\n")
    (tmp_path / "loopless.py").write_text("from fasthtml.common import fast_app\napp, rt = fast_app()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert apps.load("expenses", host(tmp_path)).title == "Reading list", "a module outside apps/ with no dot"
    with pytest.raises(SystemExit, match=r"APP='broken': broken could not be imported: No module named 'no_such_library'"):
        apps.load("broken", host(tmp_path))
    with pytest.raises(SystemExit, match=r"APP='loopless': loopless has no Loop: wrap its FastHTML app in one"):
        apps.load("loopless", host(tmp_path))


def test_each_app_has_a_data_folder_of_its_own_even_when_named_by_a_dotted_path():
    folders = {app: Settings.from_env({"APP": app}).data_dir for app in ("reading", "apps.reading", "mypkg.app", "other.app")}
    assert folders == {"reading": Path("data/reading"), "apps.reading": Path("data/reading"),
                       "mypkg.app": Path("data/mypkg.app"), "other.app": Path("data/other.app")}


@pytest.mark.parametrize("name", ["nope", "apps.nope", "no.such.module"])
def test_an_app_that_does_not_exist_stops_the_web_with_a_clear_reason(tmp_path, name):
    with pytest.raises(SystemExit) as stopped:
        apps.load(name, host(tmp_path))
    assert str(stopped.value).startswith(f"APP={name!r}: no such app") and "apps/" in str(stopped.value)
