"""The model's actions on the app (web/tool_calls.py), with stand-in actions and app events: a call
is shown as a card in its reply and in every tab, answered with its result, and undone on request; what cannot be undone is told to the tab that asked. A card keeps the call as the
brain sent it, which is what a resume carries (`answered`)."""
import asyncio
import json

from shared.messages import CallTool
from tests import page
from tests.web.test_chats import Client, NowDB
from tests.web.test_sessions import Tabs
from web.actions import ActionRow
from web.apps import Refused
from web.sessions import Sessions
from web.store import Store, Transcripts
from web.tool_calls import ToolCalls, answered
from web.transcript import Line, Status


class Relay:
    def __init__(self): self.shown, self.refreshed = [], []
    def show(self, session, line): self.shown.append((session, line.reply, line.cards))
    def refresh(self, session): self.refreshed.append(session)


class Actions:
    "Applied as web/actions.py applies them: a call once, an undo once; `refuse` makes the app refuse the undo."

    def __init__(self): self.rows, self.refuse, self.asked = {}, False, []

    def act(self, session, reply, call, name, arguments, asked=None):
        self.asked.append(asked)
        if call in self.rows:
            return self.rows[call], []
        ok = name == "add"
        row = self.rows[call] = ActionRow(call=call, session=session, reply=reply, name=name, ok=ok,
                                          text=f"Added {arguments.get('title')!r}." if ok else "Error: no such tool.")
        return row, [f"+{arguments.get('title')}"] if ok else []

    def undoable(self, name):
        return name == "add"

    def undo(self, session, call):
        if self.refuse:
            raise Refused("The list is full.")
        row = self.rows.get(call)
        if row is None or row.undone or not row.ok:
            return None, []
        row.undone = True
        return row, [f"-{call}"]


class Events:
    "The app events: each call's answer, and the user's changes."
    def __init__(self): self.sent, self.changed_ = [], []
    async def answer(self, call, ok, text): self.sent.append((call, ok, text))
    async def changed(self, sid, changes): self.changed_.append((sid, changes))


def make(tmp_path):
    sessions = Sessions(Transcripts(Store(tmp_path), NowDB()), Tabs(), None)
    sessions.add("s", Line(reply="r1", role="reply", status=Status.STREAMING))
    relay, actions, events = Relay(), Actions(), Events()
    return ToolCalls(sessions, relay, actions, NowDB(), events), sessions, relay, actions, events


def call(tools, *msgs):
    async def go():
        for msg in msgs:
            tools.call(msg)
            await asyncio.gather(*tools.tasks)
    asyncio.run(go())


def add(call_id, title="milk", name="add", at=0, index=0, decided=False):
    return CallTool(worker="w1", session="s", reply="r1", call=call_id, name=name, arguments={"title": title}, at=at,
                    index=index, decided=decided)


def test_a_call_is_shown_as_a_card_and_in_every_tab_and_answered_with_its_result(tmp_path):
    tools, sessions, relay, _, events = make(tmp_path)
    call(tools, add("c1", at=7))
    assert json.loads(sessions.get("s").reply("r1").cards) == [{"call": "c1", "text": "Added 'milk'.", "ok": True,
                                                                 "undone": False, "name": "add",
                                                                 "arguments": {"title": "milk"}, "at": 7, "index": 0, "undoable": True}]
    assert relay.refreshed == ["s"] and relay.shown[-1][:2] == ("s", "r1"), "every tab fetches the app again, once"
    [(answered_, ok, text)] = events.sent
    assert (answered_.call, ok, text) == ("c1", True, "Added 'milk'."), "answered with the action's result"
    assert tools.tasks == set(), "a task is let go of once done"


def test_an_action_is_given_the_users_message_its_reply_answers_and_none_for_a_comment(tmp_path):
    tools, sessions, _, actions, _ = make(tmp_path)
    sessions.add("s", Line(reply="q2", role="user", text="add milk, please"))
    sessions.add("s", Line(reply="r2", role="reply", status=Status.STREAMING, asks="q2"))
    call(tools, add("c1"), CallTool(worker="w1", session="s", reply="r2", call="c2", name="add", arguments={"title": "x"}),
         CallTool(worker="w1", session="s", reply="gone", call="c3", name="add", arguments={"title": "y"}))
    assert actions.asked == [None, "add milk, please", None], "r1 is a comment (it asks nothing); 'gone' is not held"


def test_a_call_that_comes_again_keeps_one_card_and_a_refused_one_says_so(tmp_path):
    tools, sessions, relay, _, events = make(tmp_path)
    call(tools, add("c1"), add("c1"), add("c2", name="fly"))
    cards = json.loads(sessions.get("s").reply("r1").cards)
    assert [(c["call"], c["ok"]) for c in cards] == [("c1", True), ("c2", False)]
    assert [ok for _, ok, _ in events.sent] == [True, True, False], "each call is answered"


def test_a_decided_call_the_app_refuses_gets_no_card_but_is_answered_and_one_it_applies_is_shown(tmp_path):
    tools, sessions, relay, _, events = make(tmp_path)
    call(tools, add("c1", name="fly", decided=True), add("c2", decided=True, index=1))
    assert [c["call"] for c in json.loads(sessions.get("s").reply("r1").cards)] == ["c2"]
    assert [(m.call, ok) for m, ok, _ in events.sent] == [("c1", False), ("c2", True)], "each call is answered"
    assert [c.call for c in answered(sessions.get("s").reply("r1").cards)] == ["c2"], "a resume carries no refused guess"


def test_a_call_for_a_reply_no_longer_held_is_still_applied_and_answered(tmp_path):
    tools, sessions, relay, _, events = make(tmp_path)
    call(tools, CallTool(worker="w1", session="s", reply="gone", call="c1", name="add", arguments={"title": "x"}))
    assert relay.shown == [] and relay.refreshed == ["s"] and len(events.sent) == 1


def test_undo_marks_the_card_shows_the_change_and_tells_the_model_as_of_a_users_change(tmp_path):
    tools, sessions, relay, _, events = make(tmp_path)
    call(tools, add("c1"))
    client = Client()

    async def undo():
        tools.undo("s", client, "c1")
        await asyncio.gather(*tools.tasks)
    asyncio.run(undo())
    assert json.loads(sessions.get("s").reply("r1").cards)[0]["undone"] is True
    assert relay.refreshed[-1] == "s" and events.changed_ == [("s", ["-c1"])]
    asyncio.run(undo())
    assert page.notices(client.sent) == ["There is nothing to undo there."] and len(events.changed_) == 1


def test_an_undo_the_app_refuses_changes_nothing_and_the_tab_is_told_why(tmp_path):
    tools, sessions, relay, actions, events = make(tmp_path)
    call(tools, add("c1"))
    actions.refuse = True

    client = Client()

    async def undo():
        tools.undo("s", client, "c1")
        await asyncio.gather(*tools.tasks)
    asyncio.run(undo())
    assert page.notices(client.sent) == ["The list is full."] and events.changed_ == []
    assert json.loads(sessions.get("s").reply("r1").cards)[0]["undone"] is False


def test_the_calls_a_reply_had_answered_are_what_its_resume_carries(tmp_path):
    tools, sessions, relay, _, events = make(tmp_path)
    call(tools, add("c1", at=7), add("c2", "eggs", at=7, index=1), add("c3", name="fly", at=20))
    carried = answered(sessions.get("s").reply("r1").cards)
    assert [(a.call, a.name, a.arguments, a.ok, a.text, a.at, a.index) for a in carried] == [
        ("c1", "add", {"title": "milk"}, True, "Added 'milk'.", 7, 0),
        ("c2", "add", {"title": "eggs"}, True, "Added 'eggs'.", 7, 1),
        ("c3", "fly", {"title": "milk"}, False, "Error: no such tool.", 20, 0)], "refused calls too: the model was told"
    old = json.dumps([{"call": "c0", "text": "Added 'tea'.", "ok": True, "undone": False}])
    assert answered(old) == [] and answered("[]") == [], "a card kept before cards held their call is left out"


def test_what_waits_for_a_replys_calls_runs_once_none_is_half_way(tmp_path):
    "A resume made while its call is being applied would carry it neither as applied nor as not."
    tools, sessions, relay, _, events = make(tmp_path)
    seen = []

    def resume():
        seen.append([a.call for a in answered(sessions.get("s").reply("r1").cards)])

    async def go():
        tools.call(add("c1"))
        tools.once_applied("s", "r1", resume)
        tools.once_applied("s", "r2", lambda: seen.append("no call of r2: at once"))
        assert seen == ["no call of r2: at once"]
        await asyncio.gather(*tools.tasks)
    asyncio.run(go())
    assert seen == ["no call of r2: at once", ["c1"]] and tools.applying == {}
