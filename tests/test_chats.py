"""The web's conversation state (web/chats.py) in-process: real SQLite in a temporary directory,
fakes for the bus and the tabs. Also the whole app in-process through Starlette's TestClient."""
import asyncio
import json

import pytest
from hypothesis import given, strategies as st
from starlette.testclient import TestClient

from shared.config import Settings
from shared.messages import Ack, Chat, Chunk, Done, Failed, Interaction, Regenerate, Resume, Stats, encode_valid
from tests.strategies import frames
from web import chats as chats_module
from web.broker import Refused
from web.chats import Chats
from web.server import create_app
from web.status import ChainStatus
from web.store import Store
from web.transcript import Status


class FakeBus:
    "The broker's side the web uses: what was submitted, and a ready brain."

    def __init__(self, settings=None, listener=None, outbox=None):
        self.listener, self.sent, self.pending, self.workers, self.models = listener, [], {}, {}, ["llama3.2:latest"]

    def open(self): pass
    def resume(self, pending, owners): pass
    async def run(self): await asyncio.Event().wait()

    def submit(self, msg):
        self.sent.append(msg)
        return True

    def offer(self, msg):
        try:
            return self.submit(msg)
        except Refused:
            return False

    def asked(self):
        "What was sent, but the interaction events every frame makes."
        return [m for m in self.sent if not isinstance(m, Interaction)]

    def withdraw(self, request): return False
    def status_of(self, session, model=""): return ChainStatus.READY, "brain ready"


class FakeTabs:
    "Clients: the frames each session's tabs were sent."

    def __init__(self):
        self.by_session, self.frames = {}, {}

    def send(self, session, html): self.frames.setdefault(session, []).append(html)


class NowDB:
    "The store thread, but at once: every write lands before the next line of the test."

    def post(self, fn, *args): fn(*args)
    async def call(self, fn, *args): return fn(*args)


@pytest.fixture
def world(tmp_path, request):
    "`@pytest.mark.env(NAME=value)` adds settings for one test."
    marker = request.node.get_closest_marker("env")
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), **(marker.kwargs if marker else {})})
    store, bus, tabs = Store(tmp_path), FakeBus(), FakeTabs()
    return Chats(settings, store, NowDB(), tabs, bus), store, bus, tabs


class Client:
    def __init__(self): self.sent = []
    def send(self, html): self.sent.append(html)


def say(chats, sid, text):
    chats.frame(sid, Client(), json.dumps({"msg": text}))
    return chats.broker.asked()[-1].request


def chunk(seq, text, request, session="s"):
    return Chunk(worker="w1", session=session, request=request, seq=seq, text=text)


def test_a_reply_marked_interrupted_carries_on_when_its_worker_was_only_slow_and_keeps_its_place(world):
    chats, store, bus, tabs = world
    first = say(chats, "s", "hello")
    chats.brain_message(Ack(worker="w1", session="s", request=first))
    chats.brain_message(chunk(0, "Hel", first))
    chats.brain_lost("w1")
    assert 'class="msg reply interrupted"' in tabs.frames["s"][-1]
    second = say(chats, "s", "anyone?")
    chats.brain_message(chunk(1, "lo", first))
    chats.brain_message(Done(worker="w1", session="s", request=first, seq=2, text="Hello", stats=Stats()))
    assert 'class="msg reply done"' in tabs.frames["s"][-1]
    assert [(l.request, l.role, l.status) for l in store.transcript("s")] == [
        (first, "user", "done"), (first, "reply", "done"), (second, "user", "done"), (second, "reply", "thinking")]


def test_a_reply_whose_brain_went_away_is_carried_on_by_the_next_from_what_reached_the_page(world):
    chats, store, bus, tabs = world
    first = say(chats, "s", "tell me a story")
    chats.brain_message(Ack(worker="w1", session="s", request=first))
    chats.brain_message(chunk(0, "Once", first))
    chats.brain_message(chunk(1, " upon", first))
    chats.brain_lost("w1")
    [resume] = [m for m in bus.asked() if isinstance(m, Resume)]
    assert (resume.reply, resume.text, resume.seq, resume.question) == (first, "Once upon", 2, "tell me a story")
    assert "carrying on" in tabs.frames["s"][-1]
    chats.brain_message(Chunk(worker="w2", session="s", request=first, seq=2, text=" a time"))
    chats.brain_message(Done(worker="w2", session="s", request=first, seq=3, text="Once upon a time", stats=Stats()))
    [reply] = [l for l in store.transcript("s") if l.role == "reply"]
    assert (reply.status, reply.text) == (Status.DONE, "Once upon a time")


def test_a_reply_whose_final_was_lost_on_the_bus_fails_with_what_arrived_and_a_retry(world):
    chats, store, bus, tabs = world
    request = say(chats, "s", "hello")
    chats.brain_message(chunk(0, "Hel", request))
    chats.reply_lost("s", request)
    [reply] = [l for l in store.transcript("s") if l.role == "reply"]
    assert (reply.status, reply.text) == (Status.FAILED, "Hel") and "lost on its way" in reply.note
    chats.frame("s", Client(), json.dumps({"retry": request}))
    assert bus.asked()[-1] == Chat(session="s", request=bus.asked()[-1].request, text="hello", retry=True)


def test_chunks_go_only_to_their_session_and_the_final_text_repairs_a_gap(world):
    chats, store, bus, tabs = world
    request = say(chats, "a", "hi")
    chats.brain_message(chunk(0, "one", request, session="a"))
    chats.brain_message(chunk(2, " three", request, session="a"))
    chats.brain_message(Done(worker="w1", session="a", request=request, seq=3, text="one two three", stats=Stats()))
    assert set(tabs.frames) == {"a"} and "one two three" in tabs.frames["a"][-1]


def test_after_new_chat_late_words_of_old_replies_are_ignored(world):
    chats, store, bus, tabs = world
    request = say(chats, "s", "hi")
    chats.brain_message(chunk(0, "old", request))
    chats.frame("s", Client(), json.dumps({"reset": "all"}))
    before = len(tabs.frames["s"])
    chats.brain_message(chunk(1, " words", request))
    chats.brain_message(Done(worker="w1", session="s", request=request, seq=2, text="old words", stats=Stats()))
    assert len(tabs.frames["s"]) == before and store.transcript("s") == []


def test_retry_asks_the_first_question_again_however_many_times_it_failed(world):
    chats, store, bus, tabs = world
    request = say(chats, "s", "the question")
    for _ in range(3):
        failed = bus.asked()[-1].request
        chats.brain_message(Failed(worker="w1", session="s", request=failed, seq=0, code="x", error="boom"))
        chats.frame("s", Client(), json.dumps({"retry": failed}))
        assert bus.asked()[-1] == Chat(session="s", request=bus.asked()[-1].request, text="the question", retry=True)
    statuses = [l.status for l in store.transcript("s") if l.role == "reply"]
    assert statuses == [Status.RETRIED] * 3 + [Status.THINKING] and bus.asked()[0].request == request


def test_a_failed_comment_is_shown_and_its_retry_makes_it_again(world):
    chats, store, bus, tabs = world
    chats.brain_message(Failed(worker="w1", session="s", request="c1", seq=0, code="ollama_failed", error="boom"))
    assert tabs.frames["s"][-1].startswith('<div hx-swap-oob="beforeend" id="msg-list">') and "boom" in tabs.frames["s"][-1]
    chats.frame("s", Client(), json.dumps({"retry": "c1"}))
    assert isinstance(bus.asked()[-1], Regenerate)
    [old, new] = store.transcript("s")
    assert (old.status, new.status, new.request) == (Status.RETRIED, Status.THINKING, bus.asked()[-1].reply)


def test_idle_sessions_leave_memory_and_come_back_from_disk(world, monkeypatch):
    chats, store, bus, tabs = world
    monkeypatch.setattr(chats_module, "MAX_SESSIONS", 3)
    for i in range(10):
        request = say(chats, f"s{i}", f"hello {i}")
        chats.brain_message(Done(worker="w1", session=f"s{i}", request=request, seq=0, text=f"hi {i}", stats=Stats()))
    assert len(chats.sessions) == 3
    session = asyncio.run(chats.open("s0"))
    assert [l.text for l in session.lines.values()] == ["hello 0", "hi 0"]


def test_the_app_runs_in_process_with_a_fake_bus(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    app = create_app(settings, bus=FakeBus)
    with TestClient(app, base_url="http://localhost") as http:
        page = http.get("/")
        assert page.status_code == 200 and "Todo with attitude" in page.text
        assert http.post("/todos", data={"title": "water plants"}, headers={"origin": "http://evil.example"}).status_code == 403
        assert http.post("/todos", data={"title": "water plants"}).status_code == 200
        with http.websocket_connect("ws://localhost/ws", headers={"origin": "http://localhost"}) as ws:
            assert "brain ready" in ws.receive_text()
            ws.send_text(json.dumps({"msg": "hi there"}))
            assert "hi there" in ws.receive_text()
        sent = app.state.broker.sent
        assert [m.kind for m in sent] == ["todo", "interaction", "chat"] and sent[-1].text == "hi there"
        assert sent[1].values == {"msg": "hi there"} and sent[1].method == "WS"


def test_an_htmx_request_to_any_route_is_an_interaction_on_the_bus_without_route_code(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path)})
    app = create_app(settings, bus=FakeBus)
    def lamp(brightness: str):  # a control added to the page later
        return f"lamp at {brightness}"

    app.route("/lamp", methods=["post"])(lamp)
    with TestClient(app, base_url="http://localhost") as http:
        http.get("/")
        answer = http.post("/lamp", data={"brightness": "7", "api_token": "s3cret"},
                           headers={"HX-Request": "true", "HX-Trigger": "lamp-dial", "HX-Trigger-Name": "brightness"})
        assert answer.status_code == 200
        http.post("/lamp", data={"brightness": "9"})  # not htmx: not tapped
    [tapped] = [m for m in app.state.broker.sent if isinstance(m, Interaction)]
    assert (tapped.method, tapped.path, tapped.trigger, tapped.name, tapped.values, tapped.status) == (
        "POST", "/lamp", "lamp-dial", "brightness", {"brightness": "7"}, 200), "the secret stays out"


@pytest.mark.parametrize("frame", ['{"msg": "hi \\ud800"}', '{"lamp": "\\udfff on"}', "[" * 100_000 + "]" * 100_000,
                                   '{"msg": "x"' + " " * 70_000 + "}", "[1, 2]", "not json", None])
def test_a_frame_that_cannot_be_handled_is_refused_at_the_door_and_nothing_reaches_the_bus(world, frame):
    chats, store, bus, tabs = world
    client = Client()
    chats.frame("s", client, frame)
    assert bus.sent == [] and ("could not be read" in client.sent[-1] or "WS_MAX_FRAME_CHARS" in client.sent[-1])
    say(chats, "s", "still here")
    assert bus.asked()[-1].text == "still here"


@pytest.mark.env(SESSION_RATE="1", SESSION_BURST="5")
def test_a_flood_of_frames_is_refused_past_the_sessions_rate_and_told_once(world):
    chats, store, bus, tabs = world
    client = Client()
    for i in range(100):
        chats.frame("s", client, json.dumps({"lamp": str(i)}))
    assert len(bus.sent) == 5
    assert sum("slow down" in html for html in client.sent) == 1
    chats.frame("other", client, json.dumps({"msg": "hello"}))
    assert bus.asked()[-1].text == "hello", "other sessions are not held back"


@pytest.mark.env(SESSION_MAX_REPLIES="2")
def test_a_session_may_have_only_so_many_replies_queued_or_under_way(world):
    chats, store, bus, tabs = world
    client = Client()
    first, _ = say(chats, "s", "one"), say(chats, "s", "two")
    chats.frame("s", client, json.dumps({"msg": "three"}))
    assert [m.text for m in bus.asked()] == ["one", "two"] and "SESSION_MAX_REPLIES" in client.sent[-1]
    chats.brain_message(Done(worker="w1", session="s", request=first, seq=0, text="1", stats=Stats()))
    assert say(chats, "s", "three") and bus.asked()[-1].text == "three"


def test_a_message_the_broker_refuses_is_told_to_the_tab_and_nothing_changes(world):
    chats, store, bus, tabs = world
    client = Client()

    def refuse(msg):
        if not isinstance(msg, Interaction):
            raise Refused("100 messages of this session are waiting for a brain already")
        return True
    bus.submit = refuse
    chats.frame("s", client, json.dumps({"msg": "hello"}))
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
    chats = Chats(settings, store, NowDB(), tabs, bus)
    client = Client()

    async def main():
        for frame in sent:
            chats.frame("s", client, frame)  # raises nothing: a frame is handled or refused with a notice
        await asyncio.gather(*chats.tasks)
    try:
        asyncio.run(main())
    finally:
        store.db.close()  # 10,000 examples under `make fuzz`: no file may be left open
    assert client.sent or bus.sent or tabs.frames


def test_a_refused_resume_leaves_the_reply_to_retry_and_the_other_replies_are_still_carried_on(world):
    chats, store, bus, tabs = world
    first, second = say(chats, "a", "one"), say(chats, "b", "two")
    for session, request in (("a", first), ("b", second)):
        chats.brain_message(Ack(worker="w1", session=session, request=request))
    submit = bus.submit

    def refuse_a(msg):
        if isinstance(msg, Resume) and msg.session == "a":
            raise Refused("100 messages of this session are waiting for a brain already")
        return submit(msg)
    bus.submit = refuse_a
    chats.brain_lost("w1")
    assert [m.reply for m in bus.asked() if isinstance(m, Resume)] == [second]
    assert chats.sessions["a"].reply(first).status == Status.INTERRUPTED
