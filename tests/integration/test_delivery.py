"""Process-level: at-least-once delivery to a brain with exactly-once effect. A proxy between the
web's bus and the brain drops frames on their way to a live worker: a message the brain never
received is sent again after the ack timeout, and a grant the brain never received is claimed
again; either way the message is answered once."""
import threading

import pytest
import zmq

from shared.messages import Chat, Grant, decode
from tests.page import Visitor
from tests.system import System, free_port


class DroppingProxy:
    "Forwards the web's XPUB to the brain, dropping the frames `drop` picks; subscriptions go upstream."

    def __init__(self, upstream: str):
        self.endpoint = f"tcp://127.0.0.1:{free_port()}"
        self.ctx = zmq.Context()
        self.ctx.setsockopt(zmq.LINGER, 0)
        self.front, self.back = self.ctx.socket(zmq.XPUB), self.ctx.socket(zmq.XSUB)
        self.front.bind(self.endpoint)
        self.back.connect(upstream)
        self.chats: set[str] = set()
        self.drop_next: set[str] = set()  # kinds to drop once each: "chat", "grant" (of a chat)
        self.dropped, self.grants = [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.front, zmq.POLLIN)
        poller.register(self.back, zmq.POLLIN)
        while not self.stopping.is_set():
            for sock, _ in poller.poll(50):
                if sock is self.front:
                    self.back.send(self.front.recv())
                    continue
                frames = self.back.recv_multipart()
                msg = decode(frames)
                if isinstance(msg, Grant) and msg.request in self.chats:
                    self.grants.append(msg.request)
                kind = "chat" if isinstance(msg, Chat) else "grant" if msg.request in self.chats else None
                if isinstance(msg, Chat):
                    self.chats.add(msg.request)
                if kind in self.drop_next:
                    self.drop_next.discard(kind)
                    self.dropped.append((kind, msg.request))
                    continue
                self.front.send_multipart(frames)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.ctx.destroy()


@pytest.fixture
def behind_proxy(tmp_path, fake):
    system = System(tmp_path, fake.url)
    system.start("web")
    proxy = DroppingProxy(system.env["BUS_SUB_ENDPOINT"])
    system.env = system.env | {"BUS_SUB_ENDPOINT": proxy.endpoint}
    system.start("brain")
    system.wait_ready()
    yield system, proxy
    system.stop_all()
    proxy.close()
    print(system.logs())


def test_a_dropped_message_is_sent_again_after_the_ack_timeout_and_a_dropped_grant_is_claimed_again(behind_proxy, fake):
    system, proxy = behind_proxy
    visitor = Visitor(system.url)
    tab = visitor.open_tab()

    proxy.drop_next.add("chat")
    tab.send("lost on the way")
    [first] = tab.wait(lambda t: t.finished(1), timeout=15)
    assert first.status == "done"
    assert [kind for kind, _ in proxy.dropped] == ["chat"]
    assert "was not acked by" in system.log("web")

    proxy.drop_next.add("grant")
    tab.send("its grant is lost")
    replies = tab.wait(lambda t: t.finished(2), timeout=15)
    assert [r.status for r in replies] == ["done", "done"]
    [(_, request)] = [d for d in proxy.dropped if d[0] == "grant"]
    assert proxy.grants.count(request) == 2, "the brain claimed again and was granted again"

    asked = [r["messages"][-1]["content"] for r in fake.chat_requests()]
    assert asked == ["lost on the way", "its grant is lost"], "each answered once"
    visitor.close()
