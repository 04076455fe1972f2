"""The brain's bus node (brain/node.py): it claims every message by its id, hands on what the web
grants (and a chat or resume at once, on trust), in arrival order per session, drops what it
revokes, and claims again when no answer came."""
import asyncio

from brain.node import Node
from brain.outlet import Outlet, Window
from shared.config import Settings
from shared.messages import Ack, CancelPull, Chat, Grant, Note, Prompt, Pull, Reach, Reset, Revoke, Stop


class FakeEngine:
    "The engine (and the pulls): what it was handed (and the trust of those on trust), and told revoked."
    def __init__(self):
        self.handled, self.trusts, self.revoked = [], [], []
        self.busy, self.making, self.pulling = 0, [], []

    def handle(self, msg, trust=None):
        self.handled.append(msg.id)
        if trust is not None:
            self.trusts.append(trust)

    def grant(self, session, trust): trust.decide(True)

    def revoke(self, msg, trust=None):
        self.revoked.append(msg.message)
        if trust is not None:
            trust.decide(False)

    @property
    def trusted(self): return [t.message for t in self.trusts]

    @property
    def granted(self): return [t.message for t in self.trusts if t.granted.is_set()]


class FakeWatch:
    reach, version, loading, models = Reach.UP, "0.12.0", "", []


class Sent(list):
    "The outlet: what the node sent, in order."
    window = Window(100)
    send = list.append


def make():
    sent = Sent()
    return Node(Settings.from_env({"BUS_HEARTBEAT_S": "1"}), "w1", FakeEngine(), FakeWatch(), FakeEngine(), sent), sent


def chat(id, session="s", epoch=7, reply=None):
    return Chat(worker="w", session=session, id=id, reply=reply or f"reply-{id}", epoch=epoch, text="hi",
                prompt=Prompt("SYSTEM"))


def verdict(kind, message, session="s", epoch=7):
    return kind(worker="w", session=session, message=message, epoch=epoch)


def reset(id, session="s", epoch=7):
    return Reset(worker="w", session=session, id=id, epoch=epoch)


def test_granted_messages_are_handed_on_in_arrival_order_per_session():
    node, sent = make()
    for id, session in (("a1", "a"), ("a2", "a"), ("b1", "b")):
        node.handle(reset(id, session))
    assert [(m.message, m.epoch) for m in sent if isinstance(m, Ack)] == [("a1", 7), ("a2", 7), ("b1", 7)]
    node.handle(verdict(Grant, "a2", "a"))
    node.handle(verdict(Grant, "b1", "b"))
    assert node.engine.handled == ["b1"], "a2 waits for a1, b1 waits for nobody"
    node.handle(verdict(Grant, "a1", "a"))
    assert node.engine.handled == ["b1", "a1", "a2"]


def test_a_chat_is_handed_on_at_once_on_trust_in_its_turn_and_its_grant_passed_on():
    node, sent = make()
    node.handle(chat("c1"))
    assert node.engine.trusted == ["c1"], "no round trip before the first token"
    node.handle(reset("r1"))
    node.handle(chat("c2"))
    assert node.engine.handled == ["c1"], "c2 waits behind r1, which waits for its grant"
    node.handle(verdict(Grant, "r1"))
    assert node.engine.handled == ["c1", "r1", "c2"] and node.engine.trusted == ["c1", "c2"]
    node.handle(verdict(Grant, "c1"))
    node.handle(verdict(Grant, "c1"))  # a grant sent again
    assert node.engine.granted == ["c1"] and list(node.claims) == ["c2"], "c2 is claimed again until answered"
    node.claim_again(now=node.claims["c2"].claimed_at + 3.5)
    assert [m.message for m in sent if isinstance(m, Ack)][-1] == "c2"
    node.handle(chat("c1"))  # a copy of a granted one: only acked
    assert node.engine.handled == ["c1", "r1", "c2"] and sent[-1].message == "c1"


def test_a_revoked_chat_taken_on_trust_is_told_to_the_engine_and_a_later_copy_is_taken_anew():
    node, sent = make()
    node.handle(chat("c1"))
    node.handle(verdict(Revoke, "c1"))
    assert node.engine.revoked == ["c1"] and not node.claims and node.engine.trusts[0].revoked
    node.handle(verdict(Grant, "c1"))
    assert node.engine.granted == [], "a grant after the revoke finds no claim"
    node.handle(chat("c1", epoch=9))  # sent again, to this worker, under a new epoch
    assert node.engine.handled == ["c1", "c1"] and node.claims["c1"].msg.epoch == 9


def test_a_copy_under_another_epoch_of_a_chat_still_on_trust_revokes_the_old_run_first():
    node, sent = make()
    node.handle(chat("c1"))
    node.handle(chat("c1", epoch=9))
    assert node.engine.revoked == ["c1"] and node.engine.trusted == ["c1", "c1"]
    node.handle(verdict(Grant, "c1", epoch=9))
    old, new = node.engine.trusts
    assert old.revoked and new.granted.is_set() and not node.claims, "the old run revoked, the new one granted"


def test_a_claim_names_the_message_and_the_reply_it_makes_and_the_heartbeat_lists_what_is_claimed():
    node, sent = make()
    node.handle(reset("m0"))
    node.handle(chat("m1", reply="r1"))
    node.handle(Stop(worker="w", session="s", id="m2", epoch=7, reply="r1"))
    node.handle(Pull(worker="w", session="s", id="p1", epoch=7, model="qwen2.5:0.5b"))
    assert [(m.message, m.reply) for m in sent] == [("m0", ""), ("m1", "r1"), ("m2", ""), ("p1", "")], \
        "only a Chat makes a reply"
    presence = node.presence()
    assert (presence["making"], presence["pulling"]) == (["r1"], ["p1"]), "claimed, not yet granted: still in hand"


def test_a_revoked_claim_is_dropped_and_unblocks_the_next():
    node, sent = make()
    node.handle(reset("r1"))
    node.handle(reset("r2"))
    node.handle(verdict(Grant, "r2"))
    node.handle(verdict(Revoke, "r1", epoch=9))
    assert node.engine.handled == ["r2"] and node.engine.revoked == ["r1"]
    node.handle(verdict(Grant, "r1"))
    assert node.engine.handled == ["r2"], "a grant after the revoke finds no claim"


def test_a_claim_with_no_answer_is_made_again_and_a_copy_already_handed_on_is_only_acked():
    node, sent = make()
    node.handle(reset("r1"))
    node.claim_again(now=node.claims["r1"].claimed_at + 2.0)
    assert len(sent) == 1, "not due yet"
    node.claim_again(now=node.claims["r1"].claimed_at + 3.5)
    assert [m.message for m in sent] == ["r1", "r1"]
    node.handle(verdict(Grant, "r1"))
    node.handle(reset("r1"))  # the web's copy, sent again before our claim reached it
    node.handle(verdict(Grant, "r1"))
    assert node.engine.handled == ["r1"] and len(sent) == 3


def test_pulls_go_to_the_pulls_once_granted_and_everything_else_to_the_engine():
    node, sent = make()
    node.handle(Pull(worker="w", session="s", id="p1", epoch=7, model="qwen2.5:0.5b"))
    node.handle(reset("c1"))
    node.handle(CancelPull(worker="w", session="s", id="p2", epoch=7, pull="p1"))
    assert node.pulls.handled == [], "nothing before its grant"
    for id in ("p1", "c1", "p2"):
        node.handle(verdict(Grant, id))
    assert node.pulls.handled == ["p1", "p2"] and node.engine.handled == ["c1"]


class FakePub:
    def __init__(self):
        self.frames = []

    def send_multipart(self, frames, copy=True):
        self.frames.append(frames)


def test_a_message_bigger_than_a_frame_is_refused_here_with_a_log_line_and_not_counted(caplog):
    "The web would drop it, or the brain's connection with it: it never leaves, and the log says why."
    outlet = Outlet(Settings.from_env({"BUS_MAX_FRAME_BYTES": "4096"}), Window(100))
    outlet.socket = FakePub()
    outlet.send(Note(worker="w1", session="s", reply="r", epoch=1, text="x" * 5000))
    assert outlet.socket.frames == [] and outlet.window.sent == 0
    assert "did not send a note message of 50" in caplog.text and "BUS_MAX_FRAME_BYTES" in caplog.text
    outlet.send(Note(worker="w1", session="s", reply="r", epoch=1, text="fits"))
    assert len(outlet.socket.frames) == 1 and outlet.window.sent == 1


def test_the_watchs_news_goes_out_at_once_in_a_heartbeat():
    async def main():
        node, sent = make()
        node.watch.news = asyncio.Event()
        announcing = asyncio.create_task(node.announcing())
        node.watch.news.set()
        for _ in range(3):
            await asyncio.sleep(0)
        assert [m.kind for m in sent] == ["heartbeat"] and not node.watch.news.is_set()
        announcing.cancel()
    asyncio.run(main())
