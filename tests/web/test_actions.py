"""Applying the model's calls (web/actions.py), for any app: here a tiny one of named counters built
in the test. Each call is applied once by its call id, checked against the action's typed
parameters (roughly right is taken; wrong is refused, naming the fields), kept, and undone once,
exactly, by the app's own undo; an undo the app refuses changes nothing."""
from typing import Annotated

import msgspec
import pytest
from fastlite import database

from shared.messages import ToolResult, encode_valid
from web.actions import Actions
from web.apps import Action, App, Outcome, Refused

S = "session-a"


class SetCounter(msgspec.Struct):
    name: Annotated[str, msgspec.Meta(description="Which counter.")]
    value: int


class Bump(msgspec.Struct):
    name: str
    by: int = 1


class Counters:
    "The app's data: counters by (session, name); `frozen` ones refuse to change back."

    def __init__(self):
        self.values: dict[tuple[str, str], int] = {}
        self.frozen: set[str] = set()
        self.runs = 0

    def set(self, session, args: SetCounter, asked=None) -> Outcome:
        self.runs += 1
        if args.value < 0:
            raise Refused("a counter cannot go below 0")
        before = self.values.get((session, args.name))
        self.values[session, args.name] = args.value
        return Outcome(f"Set {args.name} to {args.value}.", [("set", args.name, args.value)],
                       {"name": args.name, "before": before})

    def bump(self, session, args: Bump, asked=None) -> Outcome:
        return self.set(session, SetCounter(args.name, self.values.get((session, args.name), 0) + args.by))

    def undo(self, session, kept: dict) -> list:
        if kept["name"] in self.frozen:
            raise Refused(f"{kept['name']} is frozen; it cannot be set back.")
        if kept["before"] is None:
            del self.values[session, kept["name"]]
            return [("gone", kept["name"])]
        self.values[session, kept["name"]] = kept["before"]
        return [("set", kept["name"], kept["before"])]


@pytest.fixture
def world():
    counters = Counters()
    app = App(title="Counters", persona="You count.", fasthtml=None, state=lambda s: "", brief=lambda s: "",
              aliases={"increment": "bump"},
              actions=[Action("set_counter", "Set a counter.", SetCounter, counters.set, counters.undo),
                       Action("bump", "Add to a counter.", Bump, counters.bump, counters.undo,
                              prepare=lambda a: {"name": a["counter"], **a} if "counter" in a else a)])
    return Actions(database(":memory:"), app), counters


def test_a_call_is_applied_once_and_a_call_seen_before_is_answered_as_it_was(world):
    actions, counters = world
    row, changes = actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": 3})
    assert (row.ok, row.text, row.name, row.reply, changes) == (True, "Set cups to 3.", "set_counter", "r1",
                                                                [("set", "cups", 3)])
    again, changes = actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": 3})
    assert changes == [] and counters.runs == 1, "never applied twice"
    assert (again.ok, again.text, again.undone) == (True, "Set cups to 3.", False)
    assert again.ok is True and again.undone is False, "booleans, as the bus's schema takes them (not SQLite's 1 and 0)"
    encode_valid(ToolResult(session=S, id="m1", reply="r1", call="call_1", ok=again.ok, text=again.text), 1 << 20)


def test_two_sessions_may_use_the_same_call_id(world):
    actions, counters = world
    assert actions.act("session-b", "r1", "call_1", "set_counter", {"name": "cups", "value": 1})[0].ok
    assert actions.act("session-c", "r1", "call_1", "set_counter", {"name": "cups", "value": 2})[0].ok
    assert counters.values == {("session-b", "cups"): 1, ("session-c", "cups"): 2}
    assert actions.undo("session-b", "call_1")[0] is not None and counters.values == {("session-c", "cups"): 2}


def test_an_unknown_tool_is_refused_naming_the_real_ones_and_an_alias_is_taken_for_its_tool(world):
    actions, counters = world
    row, changes = actions.act(S, "r1", "call_1", "get_counters", {})
    assert (row.ok, changes) == (False, [])
    assert row.text == "Error: there is no tool named 'get_counters'; the tools are set_counter, bump."
    row, _ = actions.act(S, "r1", "call_2", "increment", {"name": "cups", "by": 2})
    assert row.ok and row.name == "bump" and counters.values == {(S, "cups"): 2}


def test_arguments_roughly_right_are_taken(world):
    actions, counters = world
    assert actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": "4", "unit": "cups"})[0].ok, \
        "a number as text, and a key the schema does not have"
    assert actions.act(S, "r1", "call_2", "bump", {"counter": "cups"})[0].ok, "reshaped by the action's prepare; by defaults"
    assert counters.values == {(S, "cups"): 5}


@pytest.mark.parametrize("arguments", [{"name": "cups"}, {"name": "cups", "value": "lots"}, {"value": 3},
                                       {"name": ["cups"], "value": 3}])
def test_bad_arguments_are_refused_naming_the_fields_and_nothing_is_applied(world, arguments):
    actions, counters = world
    row, changes = actions.act(S, "r1", "call_1", "set_counter", arguments)
    assert not row.ok and changes == [] and counters.runs == 0
    assert row.text.startswith("Error: set_counter takes name, value: "), row.text
    assert actions.undo(S, "call_1") == (None, []), "a refused call has nothing to undo"


def test_an_action_the_app_refuses_is_answered_with_its_reason_and_kept_as_refused(world):
    actions, counters = world
    row, _ = actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": -1})
    assert (row.ok, row.text) == (False, "Error: a counter cannot go below 0")
    assert actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": 1})[0].text == row.text, \
        "the same call again is answered as it was, not applied"
    assert counters.values == {}


def test_undo_reverts_exactly_once(world):
    actions, counters = world
    actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": 3})
    actions.act(S, "r1", "call_2", "bump", {"name": "cups", "by": 4})
    row, changes = actions.undo(S, "call_2")
    assert (row.call, row.undone, changes) == ("call_2", True, [("set", "cups", 3)]) and counters.values == {(S, "cups"): 3}
    assert actions.undo(S, "call_2") == (None, []), "undone once"
    assert actions.undo(S, "call_1")[1] == [("gone", "cups")] and counters.values == {}
    assert actions.undo(S, "no_such_call") == (None, []) and actions.undo("session-b", "call_1") == (None, [])
    kept, _ = actions.act(S, "r1", "call_2", "bump", {"name": "cups", "by": 4})
    assert (kept.ok, kept.undone) == (True, True), "an undone call that comes again is answered as kept, not redone"
    assert counters.values == {}


def test_an_undo_the_app_refuses_changes_nothing_and_can_be_tried_again(world):
    actions, counters = world
    actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": 3})
    counters.frozen.add("cups")
    with pytest.raises(Refused, match="cups is frozen"):
        actions.undo(S, "call_1")
    assert counters.values == {(S, "cups"): 3}
    assert actions.act(S, "r1", "call_1", "set_counter", {})[0].undone is False, "still undoable"
    counters.frozen.clear()
    assert actions.undo(S, "call_1")[0].undone and counters.values == {}


def test_an_action_that_crashes_is_answered_with_an_error_and_changes_nothing(world, caplog):
    "An app's own bug must not leave the model's call unanswered (the brain would wait out its timeout)."
    actions, counters = world
    counters.values = None  # the app's data is broken: its handler raises TypeError
    row, changes = actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": 1})
    assert (row.ok, changes) == (False, []) and row.text == "Error: the app could not do set_counter; its log says why."
    assert "action set_counter" in caplog.text and actions.undo(S, "call_1") == (None, [])


def test_an_undo_that_crashes_is_refused_with_why_and_the_log_names_the_apps_function(world, caplog):
    "An app's own bug in its undo: the tab is told (a Refused the web shows), nothing is marked undone."
    actions, counters = world
    actions.act(S, "r1", "call_1", "set_counter", {"name": "cups", "value": 3})
    counters.values = None  # the app's data is broken: its undo raises TypeError
    with pytest.raises(Refused, match=r"could not be undone: the app hit an error undoing set_counter"):
        actions.undo(S, "call_1")
    assert "in the app's tests.web.test_actions.Counters.undo" in caplog.text
    assert actions.act(S, "r1", "call_1", "set_counter", {})[0].undone is False, "not undone"
