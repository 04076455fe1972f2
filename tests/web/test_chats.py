"""The web's chat layer as web/server.py wires it (tabs, commands, replies, sessions, views, app
events, tool calls) in-process: real SQLite in a temporary directory, fakes for the bus and the
tabs. Also the whole app in-process through Starlette's TestClient."""
import asyncio
import json

import msgspec
import pytest
from hypothesis import given, strategies as st
from starlette.testclient import TestClient

from shared.config import Settings
from shared.messages import (Ack, AppEvent, CallTool, Chat, Chunk, Done, Failed, FailCode, Regenerate, Resume, Stats, Stop,
                             encode,
                             ToolResult, encode_valid)
from tests.fake_bus import FakeBus
from tests.strategies import frames
from tests.web.test_broker import Recorder, beat, hello
from web import apps
from web.broker import Broker
from web.ports import NotSent
from web.server import ChatLayer, create_app, wire_chat
from web.store import Store
from web.switchboard import Outlet, Switchboard
from web.tabs import Tab
from web.transcript import Status


class FakeTabs:
    "Clients: the frames each session's tabs were sent."

    def __init__(self):
        self.by_session, self.frames = {}, {}

    def send(self, session, html, but=""): self.frames.setdefault(session, []).append(html)
    def watching(self, session): return bool(self.by_session.get(session))


class NowDB:
    "The store thread, but at once: every write lands before the next line of the test."

    def post(self, fn, *args): fn(*args)
    async def call(self, fn, *args): return fn(*args)


def make_chats(settings, store, bus, tabs, disk=None) -> ChatLayer:
    "The chat layer with the app APP names (the todo app by default), wired by web/server.py."
    disk = disk or NowDB()
    return wire_chat(settings, store, disk, tabs, bus, apps.load(settings.app, apps.Host(settings)))


@pytest.fixture
def world(tmp_path, request):
    "`@pytest.mark.env(NAME=value)` adds settings for one test."
    marker = request.node.get_closest_marker("env")
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), **(marker.kwargs if marker else {})})
    store, bus, tabs = Store(tmp_path), FakeBus(), FakeTabs()
    return make_chats(settings, store, bus, tabs), store, bus, tabs


class Client:
    def __init__(self): self.sent = []
    def send(self, html): self.sent.append(html)


def from_tab(chats, sid, client, text):
    "A frame from a tab of the session, taken as /ws takes it."
    Tab(chats.tabs, sid, client).receive(text)


def say(chats, sid, text):
    "Send a chat message; the reply it asks for."
    from_tab(chats, sid, Client(), json.dumps({"msg": text}))
    return chats.sessions.get(sid).newest_reply().reply


def ack(bus, session, reply, worker="w1"):
    "A worker's claim on the message that asks for `reply`."
    [msg] = [m for m in bus.sent if m.makes == reply][-1:]
    return Ack(worker=worker, session=session, message=msg.id, reply=reply)


def chunk(seq, text, reply, session="s"):
    return Chunk(worker="w1", session=session, reply=reply, seq=seq, text=text)


def done(reply, text, seq=0, session="s", worker="w1"):
    return Done(worker=worker, session=session, reply=reply, seq=seq, text=text, stats=Stats())


def test_a_reply_marked_interrupted_carries_on_when_its_worker_was_only_slow_and_keeps_its_place(world):
    chats, store, bus, tabs = world
    first = say(chats, "s", "hello")
    chats.brain_message(ack(bus, "s", first))
    chats.brain_message(chunk(0, "Hel", first))
    chats.brain_lost("w1")
    assert 'class="msg reply interrupted"' in tabs.frames["s"][-1]
    second = say(chats, "s", "anyone?")
    chats.brain_message(chunk(1, "lo", first))
    chats.brain_message(done(first, "Hello", seq=2))
    assert 'class="msg reply done"' in tabs.frames["s"][-1]
    assert [(l.reply, l.role, l.status) for l in store.transcript("s")] == [
        (first, "user", "done"), (first, "reply", "done"), (second, "user", "done"), (second, "reply", "thinking")]


def test_a_reply_whose_brain_went_away_is_carried_on_by_the_next_from_what_reached_the_page(world):
    chats, store, bus, tabs = world
    first = say(chats, "s", "tell me a story")
    chats.brain_message(ack(bus, "s", first))
    chats.brain_message(chunk(0, "Once", first))
    chats.brain_message(chunk(1, " upon", first))
    chats.brain_lost("w1")
    [resume] = [m for m in bus.asked() if isinstance(m, Resume)]
    assert (resume.reply, resume.text, resume.seq, resume.question) == (first, "Once upon", 2, "tell me a story")
    assert resume.prompt == chats.prompt and resume.id != bus.asked()[0].id, "a message of its own, for the same reply"
    assert "carrying on" in tabs.frames["s"][-1]
    chats.brain_message(Chunk(worker="w2", session="s", reply=first, seq=2, text=" a time"))
    chats.brain_message(done(first, "Once upon a time", seq=3, worker="w2"))
    [reply] = [l for l in store.transcript("s") if l.role == "reply"]
    assert (reply.status, reply.text) == (Status.DONE, "Once upon a time")


def test_a_reply_whose_final_was_lost_on_the_bus_fails_with_what_arrived_and_a_retry(world):
    chats, store, bus, tabs = world
    reply = say(chats, "s", "hello")
    chats.brain_message(chunk(0, "Hel", reply))
    chats.reply_lost("s", reply)
    [line] = [l for l in store.transcript("s") if l.role == "reply"]
    assert (line.status, line.text) == (Status.FAILED, "Hel") and "lost on its way" in line.note
    from_tab(chats, "s", Client(), json.dumps({"retry": reply}))
    again = bus.asked()[-1]
    assert again == Chat(session="s", id=again.id, reply=again.reply, text="hello", retry=True, prompt=chats.prompt)
    assert again.reply != reply and again.id not in (reply, again.reply), "a new reply, asked by a new message"


def test_chunks_go_only_to_their_session_and_the_final_text_repairs_a_gap(world):
    chats, store, bus, tabs = world
    reply = say(chats, "a", "hi")
    chats.brain_message(chunk(0, "one", reply, session="a"))
    chats.brain_message(chunk(2, " three", reply, session="a"))
    chats.brain_message(done(reply, "one two three", seq=3, session="a"))
    assert set(tabs.frames) == {"a"} and "one two three" in tabs.frames["a"][-1]


def test_after_new_chat_late_words_of_old_replies_are_ignored(world):
    chats, store, bus, tabs = world
    reply = say(chats, "s", "hi")
    chats.brain_message(chunk(0, "old", reply))
    from_tab(chats, "s", Client(), json.dumps({"reset": "all"}))
    assert bus.asked()[-1].kind == "reset" and bus.asked()[-1].session == "s"
    before = len(tabs.frames["s"])
    chats.brain_message(chunk(1, " words", reply))
    chats.brain_message(done(reply, "old words", seq=2))
    assert len(tabs.frames["s"]) == before and store.transcript("s") == []


def test_retry_asks_the_first_question_again_however_many_times_it_failed(world):
    chats, store, bus, tabs = world
    reply = say(chats, "s", "the question")
    for _ in range(3):
        failed = bus.asked()[-1].reply
        chats.brain_message(Failed(worker="w1", session="s", reply=failed, seq=0, code=FailCode.INTERNAL, error="boom"))
        from_tab(chats, "s", Client(), json.dumps({"retry": failed}))
        again = bus.asked()[-1]
        assert again == Chat(session="s", id=again.id, reply=again.reply, text="the question", retry=True,
                             prompt=chats.prompt)
    statuses = [l.status for l in store.transcript("s") if l.role == "reply"]
    assert statuses == [Status.RETRIED] * 3 + [Status.THINKING] and bus.asked()[0].reply == reply


def test_a_reply_the_user_stopped_ends_stopped_and_any_other_failure_failed(world):
    chats, store, bus, tabs = world
    stopped, failed = say(chats, "s", "one"), say(chats, "s", "two")
    chats.brain_message(Failed(worker="w1", session="s", reply=stopped, seq=0, code=FailCode.STOPPED, error="Stopped.",
                               text="On"))
    chats.brain_message(Failed(worker="w1", session="s", reply=failed, seq=0, code=FailCode.OLLAMA_DOWN, error="down"))
    assert [(l.status, l.text) for l in store.transcript("s") if l.role == "reply"] == [
        (Status.STOPPED, "On"), (Status.FAILED, "")]


def test_a_failed_comment_is_shown_and_its_retry_makes_it_again(world):
    chats, store, bus, tabs = world
    chats.brain_message(Failed(worker="w1", session="s", reply="c1", seq=0, code=FailCode.OLLAMA_FAILED, error="boom"))
    assert tabs.frames["s"][-1].startswith('<div hx-swap-oob="beforeend" id="msg-list">') and "boom" in tabs.frames["s"][-1]
    from_tab(chats, "s", Client(), json.dumps({"retry": "c1"}))
    assert isinstance(bus.asked()[-1], Regenerate) and bus.asked()[-1].prompt == chats.prompt
    [old, new] = store.transcript("s")
    assert (old.status, new.status, new.reply) == (Status.RETRIED, Status.THINKING, bus.asked()[-1].reply)


def test_stop_withdraws_a_message_no_brain_has_claimed_or_asks_the_brain_to_stop(world):
    chats, store, bus, tabs = world
    bus.hold = True  # no brain has claimed it yet
    waiting = say(chats, "s", "one")
    from_tab(chats, "s", Client(), json.dumps({"stop": waiting}))
    assert bus.pending == {} and not [m for m in bus.sent if isinstance(m, Stop)], "taken back: nothing to stop"
    line = chats.sessions.get("s").reply(waiting)
    assert (line.status, line.note) == (Status.STOPPED, "Stopped before it was sent.")
    bus.hold = False
    going = say(chats, "s", "two")
    chats.brain_message(ack(bus, "s", going))
    from_tab(chats, "s", Client(), json.dumps({"stop": going}))
    assert [(m.session, m.reply) for m in bus.sent if isinstance(m, Stop)] == [("s", going)]
    assert chats.sessions.get("s").reply(going).status == Status.THINKING, "until the brain says it stopped"


def test_a_claim_shows_its_reply_taken_and_a_claim_that_names_no_reply_changes_nothing(world):
    chats, store, bus, tabs = world
    def no_brain_yet(msg):
        bus.sent.append(msg)
        return False  # kept for when one comes: the reply shows queued
    bus.submit = no_brain_yet
    reply = say(chats, "s", "hello")
    assert chats.sessions.get("s").reply(reply).status == Status.QUEUED
    shown = len(tabs.frames["s"])
    chats.brain_message(Ack(worker="w1", session="s", message="m-other"))  # a claim on an app event, say
    assert len(tabs.frames["s"]) == shown
    chats.brain_message(ack(bus, "s", reply))
    line = chats.sessions.get("s").reply(reply)
    assert (line.status, line.worker) == (Status.THINKING, "w1") and 'class="msg reply thinking"' in tabs.frames["s"][-1]


def test_a_reply_left_under_way_by_a_web_that_stopped_is_queued_if_its_message_waits_else_interrupted(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    bus = FakeBus()
    bus.hold = True
    chats = make_chats(settings, Store(tmp_path), bus, FakeTabs())
    waiting, cut = say(chats, "s", "one"), say(chats, "s", "two")
    chats.brain_message(ack(bus, "s", cut))
    bus.pending.pop(bus.asking(cut))  # its claim was granted: no longer pending
    # The web restarts: the transcript comes back from disk, the outbox into the broker.
    again = make_chats(settings, Store(tmp_path), bus, FakeTabs())
    session = asyncio.run(again.sessions.open("s"))
    assert (session.reply(waiting).status, session.reply(cut).status) == (Status.QUEUED, Status.INTERRUPTED)


def test_idle_sessions_leave_memory_and_come_back_from_disk(world):
    chats, store, bus, tabs = world
    chats.sessions.held.limit = 3
    for i in range(10):
        reply = say(chats, f"s{i}", f"hello {i}")
        chats.brain_message(done(reply, f"hi {i}", session=f"s{i}"))
    assert len(chats.sessions.held) == 3
    session = asyncio.run(chats.sessions.open("s0"))
    assert [l.text for l in session.lines.values()] == ["hello 0", "hi 0"]


def test_every_message_carries_the_apps_prompt_the_same_each_time(world):
    chats, store, bus, tabs = world
    from apps.todo import PERSONA
    assert chats.prompt.system.startswith(PERSONA) and [t["function"]["name"] for t in chats.prompt.tools] == [
        "add_todo", "set_todo_done", "rename_todo", "delete_todo", "clear_done"]
    say(chats, "s", "hi")
    from_tab(chats, "s", Client(), json.dumps({"lamp": "on"}))
    from_tab(chats, "s", Client(), json.dumps({"regenerate": bus.asked()[-1].reply}))  # not finished: refused
    assert len(bus.sent) == 2 and {msgspec.json.encode(m.prompt) for m in bus.sent} == {msgspec.json.encode(chats.prompt)}


@pytest.mark.env(SYSTEM_PROMPT="Be terse.", MODEL_TOOLS="0")
def test_system_prompt_replaces_the_persona_and_tools_can_be_turned_off(world):
    chats, store, bus, tabs = world
    say(chats, "s", "hi")
    assert bus.asked()[-1].prompt.system == "Be terse." and bus.asked()[-1].prompt.tools == []


def test_a_control_that_is_not_the_chats_is_told_as_used_and_a_chat_control_is_not(world):
    chats, store, bus, tabs = world
    from_tab(chats, "s", Client(), json.dumps({"lamp": "on", "secret_key": "k",
                                           "HEADERS": {"HX-Request": "true", "HX-Trigger": "lamp-form"}}))
    [event] = bus.events()
    assert (event.session, event.lines, event.state, event.comment) == (
        "s", ["used #lamp-form (WS /ws lamp='on')"], "", False), "heard with the next turn, no comment of its own"
    say(chats, "s", "hello")
    from_tab(chats, "s", Client(), json.dumps({"model": "qwen3:4b", "HEADERS": {"HX-Trigger": "model-picker"}}))
    assert len(bus.events()) == 1, "one user action, one bus message: the chat's controls are not told again"


def test_a_change_the_user_makes_is_told_with_the_state_after_it_for_a_comment(world):
    chats, store, bus, tabs = world
    add = chats.events.app.actions[0]
    asyncio.run(chats.events.disk.call(add.run, "s", add.arguments("milk")))
    asyncio.run(chats.events.changed("s", ["added #1 'milk'"]))  # as a route tells it (Loop.tell)
    asyncio.run(chats.events.changed("s", []))  # nothing changed: nothing told
    [event] = bus.events()
    assert (event.lines, event.state, event.comment, event.prompt) == (
        ["added #1 'milk'"], "The todo list now:\n- [ ] #1 milk", True, chats.prompt)


def tool_call(reply, call, name, session="s", **arguments):
    return CallTool(worker="w1", session=session, reply=reply, call=call, name=name, arguments=arguments)


def test_the_models_action_is_applied_once_shown_in_every_tab_and_answered_with_the_state(world):
    chats, store, bus, tabs = world
    reply = say(chats, "s", "add milk")

    async def act_twice():
        chats.brain_message(tool_call(reply, "call_1", "add_todo", title="milk"))
        await asyncio.gather(*chats.tools.tasks)
        chats.brain_message(tool_call(reply, "call_1", "add_todo", title="milk"))  # sent again after a restart
        await asyncio.gather(*chats.tools.tasks)
    asyncio.run(act_twice())
    results = [m for m in bus.sent if isinstance(m, ToolResult)]
    assert [(r.reply, r.call, r.ok, r.text, r.brief, r.state) for r in results] == [
        (reply, "call_1", True, "Added #1 'milk'.", "The todo list is now: #1 milk.", "The todo list now:\n- [ ] #1 milk")] * 2
    assert results[0].id != results[1].id, "each answer is a message of its own"
    assert sum('id="loop-refresh"' in f for f in tabs.frames["s"]) == 1, "applied, and every tab fetches the list again, once"
    assert chats.events.app.state("s") == "The todo list now:\n- [ ] #1 milk", "one todo, not two"
    cards = json.loads(chats.sessions.get("s").reply(reply).cards)
    assert cards == [{"call": "call_1", "text": "Added #1 'milk'.", "ok": True, "undone": False, "name": "add_todo",
                      "arguments": {"title": "milk"}, "at": 0, "index": 0, "undoable": True}], "with what a resume needs of the call"
    assert not bus.events(), "the model's own change is not told back to it as the user's"


def test_a_refused_action_is_answered_with_why_and_changes_nothing(world):
    chats, store, bus, tabs = world
    reply = say(chats, "s", "tick off milk")

    async def act():
        chats.brain_message(tool_call(reply, "call_1", "set_todo_done", id=7))
        await asyncio.gather(*chats.tools.tasks)
    asyncio.run(act())
    [result] = [m for m in bus.sent if isinstance(m, ToolResult)]
    assert not result.ok and result.text.startswith("Error: there is no todo #7.")
    assert result.brief == "The todo list is now empty." and result.state == "The todo list is now empty."
    assert json.loads(chats.sessions.get("s").reply(reply).cards)[0]["ok"] is False


def test_undo_reverts_the_action_in_every_tab_and_tells_the_model_once(world):
    chats, store, bus, tabs = world
    reply = say(chats, "s", "add milk")
    client = Client()

    async def act_then_undo():
        chats.brain_message(tool_call(reply, "call_1", "add_todo", title="milk"))
        await asyncio.gather(*chats.tools.tasks)
        from_tab(chats, "s", client, json.dumps({"undo": "call_1"}))
        await asyncio.gather(*chats.tools.tasks)
        from_tab(chats, "s", client, json.dumps({"undo": "call_1"}))
        await asyncio.gather(*chats.tools.tasks)
    asyncio.run(act_then_undo())
    assert sum('id="loop-refresh"' in f for f in tabs.frames["s"]) == 2, "every tab fetches the list again, after each"
    assert chats.events.app.state("s") == "The todo list is now empty."
    assert json.loads(chats.sessions.get("s").reply(reply).cards)[0]["undone"] is True
    [event] = bus.events()
    assert (event.lines, event.state, event.comment) == (
        ["undid the model's add_todo (Added #1 'milk'.)"], "The todo list is now empty.", True)
    assert "There is nothing to undo there." in client.sent[-1], "undone once"


def test_an_undo_the_app_refuses_is_told_to_the_tab_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("MAX_TODOS", "1")  # the todo app reads it itself
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    store, bus, tabs = Store(tmp_path), FakeBus(), FakeTabs()
    chats = make_chats(settings, store, bus, tabs)
    reply = say(chats, "s", "delete milk")
    client = Client()
    add, delete = chats.events.app.action("add_todo"), chats.events.app.action("delete_todo")
    add.run("s", add.arguments("milk"))

    async def go():
        chats.brain_message(tool_call(reply, "call_1", "delete_todo", id=1))
        await asyncio.gather(*chats.tools.tasks)
        add.run("s", add.arguments("eggs"))  # the list is full again
        from_tab(chats, "s", client, json.dumps({"undo": "call_1"}))
        await asyncio.gather(*chats.tools.tasks)
    asyncio.run(go())
    assert "more than the list has room for" in client.sent[-1]
    assert json.loads(chats.sessions.get("s").reply(reply).cards)[0]["undone"] is False and not bus.events()
    assert [t["function"]["name"] for t in chats.prompt.tools if t["function"]["name"] == delete.name] == ["delete_todo"]
    assert chats.events.app.state("s") == "The todo list now:\n- [ ] #2 eggs", "nothing changed"


def test_the_app_runs_in_process_with_a_fake_bus(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    app = create_app(settings, fake_bus=FakeBus)
    with TestClient(app, base_url="http://localhost") as http:
        page = http.get("/")
        assert page.status_code == 200 and "Todo with attitude" in page.text
        assert http.post("/todos", data={"title": "water plants"}, headers={"origin": "http://evil.example"}).status_code == 403
        assert http.post("/todos", data={"title": "water plants"}).status_code == 200
        with http.websocket_connect("ws://localhost/ws", headers={"origin": "http://localhost"}) as ws:
            assert "brain ready" in ws.receive_text()
            ws.send_text(json.dumps({"msg": "hi there", "HEADERS": {"HX-Request": "true", "HX-Trigger": "chat-form"}}))
            assert "hi there" in ws.receive_text()
        sent = app.state.broker.sent
        assert [m.kind for m in sent] == ["app_event", "chat"], "one user action, one bus message"
        assert (sent[0].lines, sent[0].state, sent[0].comment) == (
            ["added #1 'water plants'"], "The todo list now:\n- [ ] #1 water plants", True)
        assert sent[-1].text == "hi there" and sent[0].prompt == sent[-1].prompt


def test_an_htmx_request_to_any_route_is_told_to_the_model_without_route_code(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    app = create_app(settings, fake_bus=FakeBus)
    def lamp(brightness: str):  # a control added to the page later
        return f"lamp at {brightness}"

    app.route("/lamp", methods=["post"])(lamp)
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        answer = http.post("/lamp", data={"brightness": "7", "api_token": "s3cret"},
                           headers={"HX-Request": "true", "HX-Trigger": "lamp-dial", "HX-Trigger-Name": "brightness"})
        assert answer.status_code == 200
        http.post("/lamp", data={"brightness": "9"})  # not htmx: not tapped
        http.post("/todos", data={"title": "milk"}, headers={"HX-Request": "true", "HX-Trigger": "todo-form"})
    [tapped, added] = [m for m in app.state.broker.sent if isinstance(m, AppEvent)]
    assert (tapped.lines, tapped.state, tapped.comment) == (
        ["used #lamp-dial (POST /lamp brightness='7' → 200), showing 'lamp at 7'"], "The todo list is now empty.", True), \
        "the secret stays out; what it swapped in is told, a change with the state and a comment"
    assert (added.lines, added.comment) == (["added #1 'milk'"], True), "the app's route tells its change, once"


@pytest.mark.parametrize("frame", ['{"msg": "hi \\ud800"}', '{"lamp": "\\udfff on"}', "[" * 100_000 + "]" * 100_000,
                                   '{"msg": "x"' + " " * 70_000 + "}", "[1, 2]", "not json", None])
def test_a_frame_that_cannot_be_handled_is_refused_at_the_door_and_nothing_reaches_the_bus(world, frame):
    chats, store, bus, tabs = world
    client = Client()
    from_tab(chats, "s", client, frame)
    assert bus.sent == [] and ("could not be read" in client.sent[-1] or "WS_MAX_FRAME_CHARS" in client.sent[-1])
    say(chats, "s", "still here")
    assert bus.asked()[-1].text == "still here"


@pytest.mark.env(SESSION_RATE="1", SESSION_BURST="5")
def test_a_flood_of_frames_is_refused_past_the_sessions_rate_and_told_once(world):
    chats, store, bus, tabs = world
    client = Client()
    for i in range(100):
        from_tab(chats, "s", client, json.dumps({"lamp": str(i)}))
    assert len(bus.sent) == 5
    assert sum("slow down" in html for html in client.sent) == 1
    from_tab(chats, "other", client, json.dumps({"msg": "hello"}))
    assert bus.asked()[-1].text == "hello", "other sessions are not held back"


@pytest.mark.env(SESSION_MAX_REPLIES="2")
def test_a_session_may_have_only_so_many_replies_queued_or_under_way(world):
    chats, store, bus, tabs = world
    client = Client()
    first, _ = say(chats, "s", "one"), say(chats, "s", "two")
    from_tab(chats, "s", client, json.dumps({"msg": "three"}))
    assert [m.text for m in bus.asked()] == ["one", "two"] and "SESSION_MAX_REPLIES" in client.sent[-1]
    chats.brain_message(done(first, "1"))
    assert say(chats, "s", "three") and bus.asked()[-1].text == "three"


def test_a_message_the_broker_refuses_is_told_to_the_tab_and_nothing_changes(world):
    chats, store, bus, tabs = world
    client = Client()

    def refuse(msg):
        if not isinstance(msg, AppEvent):
            raise NotSent("100 messages of this session are waiting for a brain already")
        return True
    bus.submit = refuse
    from_tab(chats, "s", client, json.dumps({"msg": "hello"}))
    assert "waiting for a brain already" in client.sent[-1] and store.transcript("s") == []


class CheckingBus(FakeBus):
    "A bus that takes only what the real one would carry."

    def submit(self, msg):
        encode_valid(msg, 1 << 20)
        return super().submit(msg)


@pytest.mark.fuzz
@given(st.lists(frames, min_size=1, max_size=8))
def test_any_frames_from_a_tab_are_handled_or_refused_and_only_valid_messages_reach_the_bus(tmp_path_factory, sent):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path_factory.mktemp("chats"))})
    bus, tabs, store = CheckingBus(), FakeTabs(), Store(settings.data_dir)
    chats = make_chats(settings, store, bus, tabs)
    client = Client()

    async def main():
        for frame in sent:
            from_tab(chats, "s", client, frame)  # raises nothing: a frame is handled or refused with a notice
        await asyncio.gather(*chats.tools.tasks)
    try:
        asyncio.run(main())
    finally:
        store.db.close()  # 10,000 examples under `make fuzz`: no file may be left open
    # (A frame may rightly do nothing at all: an empty message, a Stop of a reply that has ended.)
    assert all(isinstance(m, (AppEvent, Chat, Regenerate, Stop)) or m.kind in ("reset", "pull", "cancel_pull")
               for m in bus.sent), "only what a tab may ask for"


def test_a_refused_resume_leaves_the_reply_to_retry_and_the_other_replies_are_still_carried_on(world):
    chats, store, bus, tabs = world
    first, second = say(chats, "a", "one"), say(chats, "b", "two")
    for session, reply in (("a", first), ("b", second)):
        chats.brain_message(ack(bus, session, reply))
    submit = bus.submit

    def refuse_a(msg):
        if isinstance(msg, Resume) and msg.session == "a":
            raise NotSent("100 messages of this session are waiting for a brain already")
        return submit(msg)
    bus.submit = refuse_a
    chats.brain_lost("w1")
    assert [m.reply for m in bus.asked() if isinstance(m, Resume)] == [second]
    assert chats.sessions.get("a").reply(first).status == Status.INTERRUPTED


def with_broker(tmp_path, **env):
    """The chat layer on the real broker (routing, claims, the lost-final check) with one ready
    brain, w1; its socket, the outbox and the clock are fakes. Returns (chats, broker, recorder, now)."""
    now = [0.0]
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "BUS_HEARTBEAT_S": "1", **env})
    recorder, outlet = Recorder(), Outlet()
    board = Switchboard(settings, recorder, outlet, clock=lambda: now[0])
    chats = make_chats(settings, Store(tmp_path), board, FakeTabs())
    broker = Broker(settings, chats, board, outlet)
    outlet.socket = recorder
    broker.subscription(b"\x01brain.w1.")
    broker.from_publisher(hello("w1", parallel=4))
    return chats, broker, recorder, now


def test_a_comment_whose_end_was_lost_ends_failed_with_what_arrived_and_frees_the_session(tmp_path):
    """Comments (replies the brain begins by itself) whose final messages were lost used to stream
    for ever: three of them and every message of the session was refused (SESSION_MAX_REPLIES)."""
    chats, broker, recorder, now = with_broker(tmp_path)
    for c in ("c1", "c2", "c3"):
        broker.from_publisher(encode(Chunk(worker="w1", session="s", reply=c, seq=0, text=f"About {c}")))
    broker.from_publisher(beat("w1", parallel=4, making=["c1", "c2", "c3"]))
    client = Client()
    from_tab(chats, "s", client, json.dumps({"msg": "hello?"}))
    assert "SESSION_MAX_REPLIES" in client.sent[-1], "three comments under way"
    now[0] = 2.5
    broker.from_publisher(beat("w1", parallel=4, making=["c2"]))  # c1 and c3 are over; their finals never came
    lines = {c: chats.sessions.get("s").reply(c) for c in ("c1", "c2", "c3")}
    assert [(l.status, l.text) for l in lines.values()] == [
        (Status.FAILED, "About c1"), (Status.STREAMING, "About c2"), (Status.FAILED, "About c3")]
    assert "lost on its way" in lines["c1"].note
    from_tab(chats, "s", client, json.dumps({"msg": "hello?"}))
    assert [m.text for m in recorder.sent if isinstance(m, Chat)] == ["hello?"]
    from_tab(chats, "s", client, json.dumps({"stop": "c2"}))
    assert [m.reply for m in recorder.sent if isinstance(m, Stop)] == ["c2"], "its brain still makes it: asked to stop"


def test_words_of_a_comment_whose_brain_is_gone_already_end_it_failed_once_it_stays_unknown(tmp_path):
    chats, broker, recorder, now = with_broker(tmp_path)
    broker.subscription(b"\x00brain.w1.")  # killed: its last words are read after its disconnect
    broker.from_publisher(encode(Chunk(worker="w1", session="s", reply="c1", seq=0, text="Nice list")))
    line = chats.sessions.get("s").reply("c1")
    broker.check_liveness()
    assert line.status == Status.THINKING or line.live, "a brain not heard of yet may still say hello"
    now[0] = 3.5  # past MISSED_BEATS heartbeats, and w1 never came back
    broker.check_liveness()
    assert (line.status, line.text) == (Status.FAILED, "Nice list") and "lost" in line.note
    broker.from_publisher(encode(Chunk(worker="w1", session="s", reply="c1", seq=1, text=", and")))
    assert (line.status, line.text) == (Status.FAILED, "Nice list"), "ended: later words change nothing"


def test_stop_ends_a_reply_no_ready_brain_has_in_hand_here(world):
    "No brain could end it (its brain is gone, or its end was lost): a Stop would reach no one."
    chats, store, bus, tabs = world
    chats.brain_message(chunk(0, "About your list", "c1"))
    bus.in_hand = lambda reply: False
    from_tab(chats, "s", Client(), json.dumps({"stop": "c1"}))
    line = chats.sessions.get("s").reply("c1")
    assert (line.status, line.text) == (Status.STOPPED, "About your list") and not [m for m in bus.sent if isinstance(m, Stop)]


def test_the_chat_layer_is_the_brokers_listener_a_brain_gone_reaches_every_open_tab(tmp_path):
    chats, broker, recorder, now = with_broker(tmp_path)
    tabs = chats.relay.clients
    tabs.by_session["s"] = {Client()}
    reply = say(chats, "s", "hello")
    chats.brain_message(ack(recorder, "s", reply))
    broker.subscription(b"\x00brain.w1.")  # its only brain disconnects
    assert "brain offline" in tabs.frames["s"][-1], "the status line, told by the board"
    assert chats.sessions.get("s").reply(reply).status == Status.INTERRUPTED, "the reply, told by the replies"
