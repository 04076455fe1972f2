"""The bus seen from outside: the tail, bad frames, bad WebSocket payloads, origins."""
import json
import subprocess
import sys
import time

import pytest
import zmq
from websockets.exceptions import InvalidStatus

from shared.messages import Chat, encode
from tests.fake_ollama import words
from tests.page import Visitor
from tests.system import ROOT


def start_tail(system, *args) -> subprocess.Popen:
    tail = subprocess.Popen([sys.executable, "-m", "shared.tail", *args], cwd=ROOT, env=system.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    system.wait_status(lambda s: True)  # web is up
    time.sleep(0.5)  # the tail's subscription reaches the web's XPUB
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
    topics = [line.split()[1] for line in lines]
    kinds = [t.rsplit(".", 1)[-1] for t in topics]
    assert [k for k in kinds if k != "grant"] == ["interaction", "chat", "done"]
    assert kinds.count("grant") == 2, "the web grants the brain's claim on each of the two"
    assert topics[-1] == "web.done" and all(t.startswith("brain.") for t in topics[:-1])
    assert "method=WS path=/ws" in lines[0] and "text='filtered'" in next(l for l in lines if ".chat " in l)


def test_tail_shows_the_pages_interactions_by_kind(system, visitor):
    tail = start_tail(system, "--kind", "interaction")
    visitor.add_todo("feed the cat")
    tab = visitor.open_tab()
    tab.send("hello")
    tab.wait(lambda t: t.finished(1))
    time.sleep(0.3)
    lines = stop_tail(tail).splitlines()
    assert len(lines) == 2 and all(".interaction " in line for line in lines)
    assert "method=POST path=/todos" in lines[0] and "status=200" in lines[0] and "method=WS" in lines[1]


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
        [b"web.zap", b'{"v": 1, "kind": "zap", "worker": "x"}'],
        [b"web.chunk", b"\xff\xfe\x00"],
        [b"web.chunk", json.dumps({"v": 1, "kind": "chunk", "worker": "w", "session": "<script>",
                                   "request": "r", "seq": 0, "text": "x"}).encode()],
        encode(Chat(worker="w", session="s", request="r", text="a brain message sent by a publisher")),
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
    for payload in ["not json", "[1, 2]", '{"msg": 5}', '{"other": "x"}', b"\x00\xff binary"]:
        tab.notice = ""
        tab.send_raw(payload)
        tab.wait(lambda t: "could not be read" in t.notice, what=f"a notice for {payload!r}")
    tab.send("x" * 1001)
    tab.wait(lambda t: "limit is 1,000" in t.notice, what="a notice for a message past MAX_CHAT_CHARS")
    tab.send("x" * (1 << 20))
    tab.wait(lambda t: "WS_MAX_FRAME_CHARS" in t.notice, what="a notice for a 1 MB message, refused at the door")
    tab.send("   ")
    tab.send("a real message")
    assert tab.wait(lambda t: t.finished(1))[0].status == "done"
    assert len(tab.replies()) == 1
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
