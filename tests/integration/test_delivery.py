"""Process-level: at-least-once delivery to a brain with exactly-once effect, and no endless
spinner. Proxies between the web's bus and the brain drop frames: a message the brain never
received is sent again after the ack timeout, a grant it never received is claimed again (either
way the message is answered once), and a reply whose final message never reached the web is
marked failed, with what arrived and a Retry, once the brain's heartbeat shows it is done."""
import threading
from dataclasses import dataclass

import pytest
import zmq

from shared.messages import Chat, Grant, decode
from tests.page import Visitor
from tests.system import System, free_port


class DroppingProxy:
    """A man in the middle of one direction of the bus, dropping the frames `drop` picks.

    Data goes from its XSUB side to its XPUB side and subscriptions the other way, as in the web's
    own proxy. Towards the brain (`to_brain=True`) it binds an XPUB the brain subscribes to and
    connects an XSUB to the web's XPUB; from the brain it binds an XSUB the brain publishes to and
    connects an XPUB to the web's XSUB."""

    def __init__(self, upstream: str, to_brain: bool, drop):
        self.endpoint, self.drop = f"tcp://127.0.0.1:{free_port()}", drop
        self.ctx = zmq.Context()
        self.ctx.setsockopt(zmq.LINGER, 0)
        self.xpub, self.xsub = self.ctx.socket(zmq.XPUB), self.ctx.socket(zmq.XSUB)
        (self.xpub if to_brain else self.xsub).bind(self.endpoint)
        (self.xsub if to_brain else self.xpub).connect(upstream)
        self.dropped, self.seen = [], []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self) -> None:
        poller = zmq.Poller()
        poller.register(self.xpub, zmq.POLLIN)
        poller.register(self.xsub, zmq.POLLIN)
        while not self.stopping.is_set():
            for sock, _ in poller.poll(50):
                if sock is self.xpub:
                    self.xsub.send(self.xpub.recv())
                    continue
                frames = self.xsub.recv_multipart()
                msg = decode(frames)
                self.seen.append(msg)
                if self.drop(msg):
                    self.dropped.append(msg)
                    continue
                self.xpub.send_multipart(frames)

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(2)
        self.ctx.destroy()


class Once:
    "Drop the first message of a kind, after `arm()`: the chat's own grant for 'grant'."
    def __init__(self):
        self.armed, self.chats = set(), set()

    def __call__(self, msg) -> bool:
        if isinstance(msg, Chat):
            self.chats.add(msg.id)
        kind = "grant" if isinstance(msg, Grant) and msg.message in self.chats else msg.kind
        if kind in self.armed:
            self.armed.discard(kind)
            return True
        return False


@dataclass
class Bus:
    "Both proxies and what they are told to drop."
    down: DroppingProxy
    to_brain: Once
    up: DroppingProxy
    from_brain: Once


@pytest.fixture
def behind_proxies(tmp_path, fake):
    """A tab on the web, whose brain talks to it through a dropping proxy in each direction of the
    bus: (system, tab, bus, visitor)."""
    system = System(tmp_path, fake.url)
    system.start("web")
    to_brain, from_brain = Once(), Once()
    down = DroppingProxy(system.env["BUS_SUB_ENDPOINT"], True, to_brain)
    up = DroppingProxy(system.env["BUS_PUB_ENDPOINT"], False, from_brain)
    system.env = system.env | {"BUS_SUB_ENDPOINT": down.endpoint, "BUS_PUB_ENDPOINT": up.endpoint}
    system.start("brain")
    system.wait_ready()
    visitor = Visitor(system.url)
    yield system, visitor.open_tab(), Bus(down, to_brain, up, from_brain), visitor
    visitor.close()
    system.stop_all()
    down.close()
    up.close()
    print(system.logs())


def test_a_dropped_message_is_sent_again_after_the_ack_timeout_and_a_dropped_grant_is_claimed_again(behind_proxies, fake):
    system, tab, bus, _ = behind_proxies
    bus.to_brain.armed.add("chat")
    tab.send("lost on the way")
    [first] = tab.wait(lambda t: t.finished(1), timeout=15)
    assert first.status == "done"
    assert [m.kind for m in bus.down.dropped] == ["chat"]
    assert "was not acked by" in system.log("web")

    bus.to_brain.armed.add("grant")
    tab.send("its grant is lost")
    replies = tab.wait(lambda t: t.finished(2), timeout=15)
    assert [r.status for r in replies] == ["done", "done"]
    [lost] = [m for m in bus.down.dropped if m.kind == "grant"]
    assert sum(1 for m in bus.down.seen if m.kind == "grant" and m.message == lost.message) == 2, "claimed and granted again"

    asked = [r["messages"][-1]["content"] for r in fake.chat_requests()]
    assert asked == ["lost on the way", "its grant is lost"], "each answered once"


def test_a_reply_whose_final_message_is_lost_fails_with_what_arrived_instead_of_spinning(behind_proxies, fake):
    system, tab, bus, _ = behind_proxies
    bus.from_brain.armed.add("done")
    tab.send("the end of this goes missing")
    [reply] = tab.wait(lambda t: t.finished(1), timeout=10)
    assert reply.status == "failed" and "lost on its way" in reply.note
    assert "you said \"the end of this goes missing\"" in reply.text, "what arrived is kept"
    assert [m.kind for m in bus.up.dropped] == ["done"]
    tab.click("retry", tab.reply_ids()[0])
    tab.wait(lambda t: [b.status for b in t.replies()] == ["retried", "done"], timeout=10, what="the retry answered")
    said = [(m["role"], m["content"][:28]) for m in fake.chat_requests()[-1]["messages"] if m["role"] != "system"]
    assert said == [("user", "the end of this goes missing")], "asked once: the reply it never saw end is replaced"


def test_a_comment_whose_final_message_is_lost_fails_with_what_arrived_instead_of_spinning(behind_proxies, fake):
    "A reply the brain begins by itself (a comment on a change in the app) ends too, though no message asked for it."
    system, tab, bus, visitor = behind_proxies
    bus.from_brain.armed.add("done")
    visitor.add_todo("oat milk")  # the app asks for a comment
    [comment] = tab.wait(lambda t: t.finished(1), timeout=10, what="the comment ended")
    assert comment.status == "failed" and "lost on its way" in comment.note
    assert "Fascinating. Truly." in comment.text, "what arrived is kept"
    assert [m.kind for m in bus.up.dropped] == ["done"]
    tab.send("and now?")
    [_, reply] = tab.wait(lambda t: t.finished(2), timeout=10, what="the next message answered")
    assert reply.status == "done"
