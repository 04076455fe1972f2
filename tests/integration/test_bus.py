"""The bus seen from outside: the tail, bad frames, bad WebSocket payloads, origins."""
import json
import subprocess
import sys
import time

import pytest
import zmq
from websockets.exceptions import InvalidStatus

from shared.messages import SCHEMA_VERSION, Chat, Prompt, encode
from tests.fake_ollama import words
from tests.page import Visitor
from tests.system import ROOT


def start_tail(system, *args) -> subprocess.Popen:
    """Start `python -m shared.tail` and wait until the web's XPUB has its subscriptions (the web
    logs those to topics other than a worker's own, so the tail must take one: "" or web.*)."""
    system.wait_status(lambda s: True)  # web is up
    joined = system.log("web").count("a subscriber joined")
    tail = subprocess.Popen([sys.executable, "-m", "shared.tail", *args], cwd=ROOT, env=system.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while system.log("web").count("a subscriber joined") == joined:
        assert time.monotonic() < deadline and tail.poll() is None, "the tail never subscribed"
        time.sleep(0.05)
    time.sleep(0.2)  # its other topics, sent right after on the same connection
    return tail


def stop_tail(tail: subprocess.Popen) -> str:
    tail.terminate()
    out, err = tail.communicate(timeout=5)
    assert tail.returncode in (0, -15), err
    assert "Traceback" not in err
    return out


def test_tail_sees_a_chat_round_trip_both_ways(system, visitor, fake):
    tail = start_tail(system, "--json")
    tab = visitor.open_tab()
    tab.send("tail me")
    [reply] = tab.wait(lambda t: t.finished(1))
    time.sleep(0.3)
    records = [json.loads(line) for line in stop_tail(tail).splitlines()]

    kinds = [(r["topic"].split(".")[0], r["msg"]["kind"]) for r in records if r["msg"]]
    assert ("brain", "chat") in kinds and ("web", "ack") in kinds and ("web", "done") in kinds
    chat = next(r["msg"] for r in records if r["msg"] and r["msg"]["kind"] == "chat")
    assert chat["text"] == "tail me"
    chunks = [r["msg"] for r in records if r["msg"] and r["msg"]["kind"] == "chunk"]
    assert [c["seq"] for c in chunks] == list(range(len(chunks))) and len(chunks) > 1
    assert "".join(c["text"] for c in chunks) == reply.text
    done = next(r["msg"] for r in records if r["msg"] and r["msg"]["kind"] == "done")
    # A chunk message may carry several tokens when they arrive together; Ollama counts tokens.
    assert done["text"] == reply.text and done["stats"]["eval_count"] == len(words(reply.text))
    assert any(r["msg"]["kind"] == "heartbeat" for r in records if r["msg"])


def test_tail_filters_topics_and_prints_one_line_each(system, visitor):
    tail = start_tail(system, "--topic", "web.done", "--topic", "brain.")
    tab = visitor.open_tab()
    tab.send("filtered")
    tab.wait(lambda t: t.finished(1))
    time.sleep(0.3)
    lines = stop_tail(tail).splitlines()
    assert any(".credit " in line for line in lines), "the web credits the brain with what it took (flow control)"
    lines = [line for line in lines if ".credit " not in line]
    topics = [line.split()[1] for line in lines]
    kinds = [t.rsplit(".", 1)[-1] for t in topics]
    assert [k for k in kinds if k != "grant"] == ["chat", "done"], "one user action, one message to the brain"
    assert kinds.count("grant") == 1, "the web grants the brain's claim on the chat"
    assert topics[-1] == "web.done" and all(t.startswith("brain.") for t in topics[:-1])
    assert "text='filtered'" in next(l for l in lines if ".chat " in l)


def test_tail_shows_what_the_user_did_in_the_app_by_kind_one_message_per_action(system, visitor):
    tail = start_tail(system, "--kind", "app_event")
    tab = visitor.open_tab()
    visitor.add_todo("feed the cat")  # the app's own route: what it changed, for a comment
    tab.wait(lambda t: t.finished(1), what="the comment on the todo")
    visitor.http.get(system.url + "/export/json", timeout=5, headers={"HX-Request": "true", "HX-Trigger": "export-json"})
    tab.send_raw(json.dumps({"theme": "dark", "HEADERS": {"HX-Request": "true", "HX-Trigger": "theme-toggle"}}))
    tab.send("hello")  # a chat message is no app event
    tab.wait(lambda t: t.finished(2))
    time.sleep(0.3)
    lines = stop_tail(tail).splitlines()
    assert len(lines) == 3 and all(".app_event " in line for line in lines), lines
    assert "lines=[\"added #1 'feed the cat'\"]" in lines[0] and "comment=True" in lines[0]
    assert "lines=['used #export-json (GET /export/json → 200)']" in lines[1] and "comment=True" not in lines[1]
    assert "lines=[\"used #theme-toggle (WS /ws theme='dark')\"]" in lines[2] and "comment=True" not in lines[2]


def test_bad_frames_on_the_bus_are_logged_and_nothing_breaks(system, visitor):
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 1000)
    pub.connect(system.env["BUS_PUB_ENDPOINT"])
    time.sleep(0.5)
    junk = [
        [b"web.chunk", b"not json"],
        [b"web.chunk"],
        [b"web.done", b'{"v": 99, "kind": "done"}'],
        [b"web.zap", json.dumps({"v": SCHEMA_VERSION, "kind": "zap", "worker": "x"}).encode()],
        [b"web.chunk", b"\xff\xfe\x00"],
        [b"web.chunk", json.dumps({"v": SCHEMA_VERSION, "kind": "chunk", "worker": "w", "session": "<script>",
                                   "reply": "r", "seq": 0, "text": "x"}).encode()],
        encode(Chat(worker="w", session="s", id="m", reply="r", text="a brain message sent by a publisher",
                    prompt=Prompt("You are a publisher's plant."))),
        [b"web.chunk", b"x" * (2 << 20)],  # over MAXMSGSIZE: the web drops this peer
    ]
    for frames in junk:
        pub.send_multipart(frames)
    time.sleep(0.5)
    pub.close()
    ctx.term()

    log = system.log("web")
    for reason in ("not a message", "unsupported schema version 99", "unknown message kind 'zap'",
                   "invalid chunk message", "ignored a chat message"):
        assert reason in log
    tab = visitor.open_tab()
    tab.send("still there?")
    assert tab.wait(lambda t: t.finished(1))[0].status == "done"


def test_odd_websocket_payloads_get_a_notice_and_the_tab_keeps_working(start_system, fake):
    system = start_system(MAX_CHAT_CHARS=1000)
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    for payload in ["not json", "[1, 2]", '{"msg": 5}', b"\x00\xff binary"]:
        tab.notice = ""
        tab.send_raw(payload)
        tab.wait(lambda t: "could not be read" in t.notice, what=f"a notice for {payload!r}")
    tab.notice = ""
    tab.send_raw('{"other": "x"}')  # a control the chat does not know is the app's: the model hears it was used
    tab.send("x" * 1001)
    tab.wait(lambda t: "limit is 1,000" in t.notice, what="a notice for a message past MAX_CHAT_CHARS")
    tab.send("x" * (1 << 20))
    tab.wait(lambda t: "WS_MAX_FRAME_CHARS" in t.notice, what="a notice for a 1 MB message, refused at the door")
    tab.send("   ")
    tab.send("a real message")
    assert tab.wait(lambda t: t.finished(1))[0].status == "done"
    assert len(tab.replies()) == 1
    assert fake.chat_requests()[-1]["messages"][1:] == [
        {"role": "user", "content": "App note: The user used the page (WS /ws other='x')."},
        {"role": "user", "content": "a real message"}], "only the control that could be read reached the model"
    visitor.close()


def test_a_websocket_from_another_origin_or_without_a_session_is_refused(system, visitor):
    with pytest.raises(InvalidStatus, match="403"):
        visitor.open_tab(origin="http://evil.example")
    stranger = Visitor(system.url)
    stranger.http.cookies.clear()
    with pytest.raises(InvalidStatus, match="403"):
        stranger.open_tab()
    assert visitor.htmx("POST", "/todos", title="ok").status_code == 200
    forged = visitor.http.post(system.url + "/todos", data={"title": "forged"},
                               headers={"Origin": "http://evil.example"}, timeout=5)
    assert forged.status_code == 403
