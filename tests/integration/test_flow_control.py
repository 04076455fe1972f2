"""Process-level: flow control between a brain and a web that falls behind (brain/outlet.py,
web/workers.py). The web is frozen (SIGSTOP) while replies stream; the brain stops at its window,
holds each reply's new words, and once the web takes what waited, sends them in fewer, larger
chunks: every word arrives in the chunks, in order, and each reply's end matches them."""
import os
import signal
import threading
import time
from collections import defaultdict

import pytest
import zmq

from shared.messages import decode
from tests.fake_ollama import Plan, words
from tests.page import Visitor

TEXT = " ".join(f"w{i}" for i in range(300))
SESSIONS = 4


class Listener(threading.Thread):
    "A subscriber to the web's XPUB, as `make tail` is, keeping the chunks and ends the web passed on."
    def __init__(self, endpoint: str):
        super().__init__(daemon=True)
        self.sub = zmq.Context.instance().socket(zmq.SUB)
        self.sub.connect(endpoint)
        for topic in (b"web.chunk", b"web.done"):
            self.sub.subscribe(topic)
        self.messages, self.stop = [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            if self.sub.poll(50):
                self.messages.append(decode(self.sub.recv_multipart()))
        self.sub.close()


@pytest.mark.env(BUS_WINDOW=16, BUS_HEARTBEAT_S=2)  # the freeze is shorter than three heartbeats
def test_a_web_that_falls_behind_gets_every_word_in_fewer_larger_chunks(system, fake):
    fake.default = Plan(chunks=words(TEXT), delay=0.003)  # about a second a reply
    listener = Listener(system.env["BUS_SUB_ENDPOINT"])
    listener.start()
    time.sleep(0.5)  # subscribed before anything is said
    visitors = [Visitor(system.url) for _ in range(SESSIONS)]
    try:
        tabs = [v.open_tab() for v in visitors]
        for n, tab in enumerate(tabs):
            tab.send(f"session {n}: a long one please")
        fake.wait(lambda f: len(f.chat_requests()) == SESSIONS)
        web = system.procs["web"].pid
        os.kill(web, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(web, signal.SIGCONT)
        for tab in tabs:
            [reply] = tab.wait(lambda t: t.finished(1), timeout=30)
            assert reply.status == "done" and reply.text == TEXT
        time.sleep(0.3)
    finally:
        listener.stop.set()
        listener.join(5)
        for v in visitors:
            v.close()
    chunks, done = defaultdict(list), {}
    for msg in listener.messages:
        (chunks[msg.reply].append(msg) if msg.kind == "chunk" else done.__setitem__(msg.reply, msg))
    assert len(done) == SESSIONS
    for reply, final in done.items():
        assert [c.seq for c in chunks[reply]] == list(range(len(chunks[reply]))), "none lost, none reordered"
        assert "".join(c.text for c in chunks[reply]) == final.text == TEXT, "every word came in the chunks"
    sent = sum(len(c) for c in chunks.values())
    assert sent < SESSIONS * len(words(TEXT)) / 2, f"{sent} chunk messages: held words went out together"
