"""Faults from every side: Ollama misbehaving mid-conversation, garbage on the bus and the socket,
code changes and Ctrl-C. Each ends with a clear message and a system that still works."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import zmq

from shared.messages import BadFrame, decode
from tests.fake_ollama import Plan
from tests.page import Visitor
from tests.system import ROOT, free_port


@pytest.mark.parametrize("plan, note", [
    (Plan(status=500, error="CUDA out of memory"), "Ollama answered 500: CUDA out of memory"),
    (Plan(garbage_after=2), "Ollama sent a line that is not a chat chunk"),
    (Plan(drop_after=2), "The connection to Ollama broke mid-reply"),
    (Plan(first_byte_delay=2.5), "did not start answering within 1.5s"),
    (Plan(stall_after=2, stall=5), "stalled mid-reply: nothing for 1.5s"),
])
def test_each_ollama_fault_ends_the_reply_clearly_and_the_next_turn_works(start_system, fake, plan, note):
    system = start_system(OLLAMA_READ_TIMEOUT_S=1.5)
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    fake.plan(plan)

    tab.send("go")
    [failed] = tab.wait(lambda t: t.finished(1), timeout=15)
    assert failed.status == "failed" and note in failed.note
    tab.send("again")
    assert tab.wait(lambda t: t.finished(2))[-1].status == "done"
    visitor.close()


def random_frames(rng: random.Random) -> list[bytes]:
    "Junk shaped like bus traffic: random parts, real topics with broken or hostile payloads."
    topics = [b"web.chunk", b"web.done", b"web.hello", b"web.ack", b"brain.x.chat", b"", rng.randbytes(8)]
    payloads = [
        rng.randbytes(rng.randint(0, 300)),
        json.dumps({"v": 1, "kind": rng.choice(["chunk", "done", "hello", "ack", "failed", "chat"]),
                    "worker": rng.choice(["w", "", "<x>", 5]), "session": rng.choice(["s", None, "a" * 100]),
                    "request": "r", "seq": rng.choice([0, -1, "1", 2**70]), "text": rng.choice(["t", 7])}).encode(),
        b'{"v": 1, "kind": "chunk"' + rng.randbytes(5),
        "\u202e<script>".encode() * rng.randint(1, 50),
    ]
    return [rng.choice(topics), rng.choice(payloads)][: rng.randint(1, 2)] + [b"extra"] * rng.randint(0, 1)


def test_decode_refuses_random_frames_with_badframe_only():
    rng = random.Random(1)
    for _ in range(20_000):
        try:
            decode(random_frames(rng))
        except BadFrame:
            pass


def test_fuzzed_bus_and_websocket_leave_both_processes_serving(system, visitor, fake):
    rng = random.Random(7)
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 2000)
    pub.setsockopt(zmq.SNDHWM, 0)
    pub.connect(system.env["BUS_PUB_ENDPOINT"])
    time.sleep(0.5)
    for _ in range(5000):
        pub.send_multipart(random_frames(rng))
    pub.close()
    ctx.term()

    tab = visitor.open_tab()
    for _ in range(2000):
        kind = rng.randrange(4)
        if kind == 0:
            tab.send_raw(rng.randbytes(rng.randint(0, 200)))
        elif kind == 1:
            tab.send_raw(rng.randbytes(rng.randint(0, 200)).decode("latin-1"))
        elif kind == 2:
            tab.send_raw(json.dumps({rng.choice(["msg", "stop", "retry", "x"]): rng.choice([None, 1, [], {}, "zz"])}))
        else:
            tab.send_raw(json.dumps({"stop": rng.randbytes(6).hex(), "retry": "<img src=x>"}))
    while tab.pump(0.5):
        pass

    tab.send("still alive?")
    assert tab.wait(lambda t: t.finished(1), timeout=20)[0].status == "done"
    assert system.procs["web"].poll() is None and system.procs["brain"].poll() is None
    assert "Traceback" not in system.log("web") and "Traceback" not in system.log("brain")
    assert "dropped a bad frame" in system.log("web")


def test_a_code_change_restarts_the_worker_when_reload_is_on(start_system, fake):
    system = start_system(BRAIN_RELOAD=1)
    old = system.worker_pid()

    deadline = time.monotonic() + 20
    while "code changed" not in system.log("brain"):  # the watcher may not be watching yet
        assert time.monotonic() < deadline, "the code change was never noticed"
        os.utime(ROOT / "brain" / "conversation.py")
        time.sleep(0.5)
    system.wait_status(lambda s: s["status"] == "ready" and old not in [w["pid"] for w in s["workers"].values()])
    assert "code changed (conversation.py); restarting the worker" in system.log("brain")


def test_ctrl_c_on_honcho_stops_both_quickly_and_quietly(tmp_path, fake):
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                        "PYTHONUNBUFFERED": "1", "DATA_DIR": str(tmp_path), "OLLAMA_HOST": fake.url,
                        "BUS_PUB_ENDPOINT": f"tcp://127.0.0.1:{free_port()}",
                        "BUS_SUB_ENDPOINT": f"tcp://127.0.0.1:{free_port()}"}
    port = free_port()
    honcho = subprocess.Popen([sys.executable, "-m", "honcho", "start", "-p", str(port)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    visitor = None
    for _ in range(100):
        try:
            visitor = Visitor(f"http://127.0.0.1:{port}")
            visitor.open_tab()
            break
        except Exception:  # noqa: BLE001 - not up yet
            time.sleep(0.1)
    assert visitor is not None
    pressed = time.monotonic()
    honcho.send_signal(signal.SIGINT)
    out, _ = honcho.communicate(timeout=10)
    took = time.monotonic() - pressed
    print(f"Ctrl-C -> honcho exited in {took:.2f}s")
    assert "SIGKILL" not in out, "a process ignored SIGTERM"
    assert "Traceback" not in out
    assert "web.1 stopped" in out and "brain.1 stopped" in out
    visitor.close()
