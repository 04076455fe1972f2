"""Where messages for brains go and the web's verdicts on claims, with no socket: what each call
returns to be sent is collected in order, as the switchboard sends it, the outbox is a recorder,
the workers are told what XPUB and the publishers would say, and the clock is turned by hand."""
import time
import zlib

import pytest

from shared.config import Settings
from shared.messages import (Ack, AppEvent, CallTool, Chat, Chunk, Done, Grant, Heartbeat, Hello, Prompt, Resume, Revoke, Stop,
                             ToBrain)
from web.dispatch import Dispatch, Owner, Pending, UnderWay
from web.ports import NotSent
from web.workers import Workers

PROMPT = Prompt("Be brief.", [])
UP = dict(ollama="up", ollama_url="http://127.0.0.1:11434", models=["m:latest"])


class Outbox:
    def __init__(self):
        self.kept, self.dropped, self.assigned, self.released, self.grants = [], [], {}, [], {}

    def keep(self, msg): self.kept.append(msg.id)
    def drop(self, message): self.dropped.append(message)
    def granted(self, message, owner):  # out of the outbox, and remembered
        self.dropped.append(message)
        self.grants[message] = owner
    def assign(self, session, owner): self.assigned[session] = owner
    def release(self, worker): self.released.append(worker)


def chat(session, reply, text="x"):
    return Chat(session=session, id=f"m-{reply}", reply=reply, text=text, prompt=PROMPT)


def event(session, message):
    return AppEvent(session=session, id=message, lines=["used #lamp (WS /ws)"], prompt=PROMPT)


def ack(msg):
    return Ack(worker=msg.worker, session=msg.session, message=msg.id, reply=msg.makes, epoch=msg.epoch)


def settings(**env):
    return Settings.from_env({"BUS_HEARTBEAT_S": "1", **env})


class World:
    """A Dispatch, its workers and what it gave to be sent (`out`), on a hand-turned clock. Each call
    that decides what is sent is made here, so nothing it returns goes unseen."""

    def __init__(self, **env):
        self.now, self.out, self.outbox = [0.0], [], Outbox()
        self.workers = Workers(settings(**env), lambda: self.now[0])
        self.dispatch = Dispatch(settings(**env), self.outbox, self.workers, lambda: self.now[0])

    def submit(self, msg) -> bool:
        sends = self.dispatch.submit(msg)
        self.out += sends
        went = msg.id in {m.id for m in sends if isinstance(m, ToBrain)}
        assert went == bool(sends), "the switchboard takes anything to send for `msg` to be `msg` sent"
        return went

    def claimed(self, ack) -> bool:
        new, verdict = self.dispatch.claimed(ack)
        self.out.append(verdict)
        return new

    def from_holder(self, msg) -> bool:
        heard, revoke = self.dispatch.from_holder(msg)
        self.out += [revoke] if revoke else []
        return heard

    def reroute(self):
        self.out += self.dispatch.reroute()

    def resend_unacked(self):
        self.out += self.dispatch.resend_unacked()

    def up(self, *names, parallel=1):
        for w in names:
            self.workers.subscribed(w)
            self.workers.present(Hello(worker=w, started=0, pid=1, model="m", parallel=parallel, **UP))

    def beat(self, worker, **kw):
        self.workers.present(Heartbeat(worker=worker, started=0, pid=1, model="m", **({"parallel": 1} | UP | kw)))

    def sent(self):
        return [m for m in self.out if isinstance(m, ToBrain)]

    def verdicts(self):
        return [(type(v).__name__, v.worker, v.message, v.epoch) for v in self.out if isinstance(v, (Grant, Revoke))]


# Pending: what waits for a grant.

def test_pending_refuses_what_a_brain_would_not_take_or_past_the_sessions_bound_and_keeps_nothing_of_it():
    pending = Pending(settings(SESSION_MAX_PENDING="2", BUS_MAX_FRAME_BYTES="4096"))
    with pytest.raises(NotSent, match="cannot be encoded"):
        pending.hold(chat("s", "r0", "\ud800"))
    with pytest.raises(NotSent, match="exceeds 4096"):
        pending.hold(chat("s", "r0", "x" * 5000))
    pending.hold(chat("s", "r1"))
    pending.hold(chat("s", "r1"))  # the same message again (resent from the outbox): counted once
    pending.hold(chat("s", "r2"))
    with pytest.raises(NotSent, match="2 messages"):
        pending.hold(chat("s", "r3"))
    pending.hold(chat("t", "r4"))
    assert list(pending.messages) == ["m-r1", "m-r2", "m-r4"] and pending.waiting == {"s": 2, "t": 1}
    assert pending.unhold("m-r4").reply == "r4" and pending.unhold("m-r4") is None
    assert pending.waiting == {"s": 2}, "no session is left counted at zero"


def test_pending_asks_for_a_reply_only_with_a_message_that_makes_it():
    pending = Pending(settings())
    pending.hold(Stop(session="s", id="m-stop", reply="r1"))
    assert pending.asking("r1") is None
    pending.hold(chat("s", "r1"))
    assert pending.asking("r1") == "m-r1"


# UnderWay: the load each worker carries.

def test_a_reply_sent_again_elsewhere_counts_once_and_only_where_it_is_now():
    replies = UnderWay()
    replies.start("r1", "w1", "s", 0.0)
    replies.start("r2", "w1", "t", 0.0)
    replies.start("r1", "w2", "s", 1.0)
    assert replies.loads == {"w1": 1, "w2": 1} and replies.by_session == {"s": 1, "t": 1}
    assert replies.of("w1") == ["r2"] and replies.of("w2", "s") == ["r1"] and replies.of("w2", "t") == []
    replies.end("r1")
    replies.end("r1")
    replies.end("never-sent")
    assert replies.loads["w2"] == 0 and replies.by_session["s"] == 0 and replies.loads["w1"] == 1


# Dispatch: routing, claims, liveness's consequences.

def test_a_message_waits_in_the_outbox_for_a_ready_worker_and_goes_once_one_is():
    world = World()
    assert not world.submit(chat("s", "r1"))
    assert world.outbox.kept == ["m-r1"] and world.sent() == []
    world.up("w1")
    world.reroute()
    [sent] = world.sent()
    assert (sent.id, sent.worker, sent.epoch) == ("m-r1", "w1", world.dispatch.owners["s"].epoch)
    assert world.outbox.assigned == {"s": Owner("w1", sent.epoch)} and world.dispatch.load("w1") == 1


def test_a_claim_is_granted_once_granted_again_if_its_grant_was_lost_and_revoked_otherwise():
    world = World()
    world.up("w1")
    world.submit(chat("s", "r1"))
    [sent] = world.sent()
    assert not world.claimed(Ack(worker="w1", session="s", message="m-r1", epoch=sent.epoch + 1))
    assert world.verdicts()[-1] == ("Revoke", "w1", "m-r1", sent.epoch), "another epoch: told the current one"
    assert world.claimed(ack(sent))
    assert world.dispatch.pending.messages == {} and world.outbox.dropped == ["m-r1"]
    assert not world.claimed(ack(sent)), "the listener hears of a claim once"
    assert world.verdicts()[-2:] == [("Grant", "w1", "m-r1", sent.epoch)] * 2
    assert not world.claimed(Ack(worker="w1", session="s", message="never-sent", epoch=sent.epoch))
    assert world.verdicts()[-1] == ("Revoke", "w1", "never-sent", sent.epoch)


def test_only_the_last_grants_are_remembered():
    world = World()
    world.dispatch.granted.limit = 2
    world.up("w1", parallel=3)
    for r in ("r1", "r2", "r3"):
        world.submit(chat("s", r))
        world.claimed(ack(world.sent()[-1]))
    first = world.sent()[0]
    world.claimed(ack(first))
    assert world.verdicts()[-1] == ("Revoke", "w1", "m-r1", first.epoch), "forgotten: no longer granted again"
    world.claimed(ack(world.sent()[-1]))
    assert world.verdicts()[-1][0] == "Grant"


def test_only_the_sessions_holder_is_heard_and_a_stale_one_is_told_it_lost_the_session():
    world = World()
    assert world.from_holder(Done(worker="w9", session="nobody's", reply="r", seq=0, text="")), "no owner"
    world.up("w1")
    world.submit(chat("s", "r1"))
    sent = world.sent()[-1]
    stale = Done(worker="w1", session="s", reply="r1", epoch=sent.epoch - 1, seq=0, text="")
    assert not world.from_holder(stale)
    assert world.verdicts() == [("Revoke", "w1", "", sent.epoch)] and world.dispatch.load("w1") == 1
    assert world.from_holder(Done(worker="w1", session="s", reply="r1", epoch=sent.epoch, seq=0, text=""))
    assert world.dispatch.load("w1") == 0, "its final ends the reply's count"


def test_a_forgotten_workers_sessions_move_with_every_message_still_pending_in_order():
    world = World()
    world.up("w1")
    world.submit(event("s", "e1"))
    world.submit(chat("s", "r1"))
    before = world.dispatch.owners["s"]
    world.workers.forget("w1")
    world.dispatch.release("w1")
    assert world.outbox.released == ["w1"] and "s" not in world.dispatch.owners and world.dispatch.load("w1") == 0
    world.up("w2")
    world.reroute()
    assert [(m.id, m.worker) for m in world.sent()[2:]] == [("e1", "w2"), ("m-r1", "w2")]
    assert world.dispatch.owners["s"].epoch > before.epoch and world.dispatch.load("w2") == 1
    assert not any(v[0] == "Revoke" for v in world.verdicts()), "a forgotten worker is not told"


def test_a_tool_call_read_after_its_brain_was_forgotten_is_not_applied():
    "The resume of its reply may be made already without it: applied now, the next brain could apply it again."
    world = World()
    world.up("w1")
    world.submit(chat("s", "r1"))
    epoch = world.dispatch.owners["s"].epoch
    world.workers.forget("w1")
    world.dispatch.release("w1")
    late = CallTool(worker="w1", session="s", epoch=epoch, reply="r1", call="call_1", name="add", arguments={})
    assert not world.from_holder(late)
    assert world.from_holder(Chunk(worker="w1", session="s", epoch=epoch, reply="r1", seq=0, text="hi")), \
        "its words are shown: the resume carries on from what reached the page"


def test_a_silent_holder_is_told_at_once_when_its_session_moves_and_its_replies_stop_counting():
    world = World()
    world.up("w1", "w2")
    world.submit(chat("s", "r1"))
    first = world.sent()[-1]
    world.claimed(ack(first))
    other = ({"w1", "w2"} - {first.worker}).pop()
    world.now[0] = 3.0
    world.beat(other)
    assert not world.submit(event("s", "e1")), "an event waits for the reply under way"
    assert world.submit(chat("s", "r2"))
    assert [(m.id, m.worker) for m in world.sent()[-2:]] == [("e1", other), ("m-r2", other)]
    epoch = world.dispatch.owners["s"].epoch
    assert world.verdicts()[-1] == ("Revoke", first.worker, "m-r2", epoch)
    assert [type(m).__name__ for m in world.out[-3:]] == ["Revoke", "AppEvent", "Chat"], "the old holder is told first"
    assert world.dispatch.load(first.worker) == 0 and world.dispatch.load(other) == 1, "r1 is cut off"


def test_a_session_whose_worker_is_full_moves_to_one_with_room_unless_hash_routing():
    for routing, moves in (("load", True), ("hash", False)):
        world = World(BUS_ROUTING=routing)
        world.up("w1", "w2")
        world.submit(chat("s", "r1"))
        home = world.sent()[-1].worker
        world.submit(chat("s", "r2"))
        assert world.sent()[-1].worker == home, "a session with a reply under way stays, full or not"
        for r in ("r1", "r2"):
            world.from_holder(Done(worker=home, session="s", reply=r, epoch=world.sent()[-1].epoch, seq=0, text=""))
        world.dispatch.replies.start("x", home, "other", 0.0)  # its one slot taken by another session
        world.submit(chat("s", "r3"))
        assert (world.sent()[-1].worker != home) is moves, routing


def test_with_hash_routing_new_sessions_go_by_the_hash_whatever_the_load():
    world = World(BUS_ROUTING="hash")
    world.up("w1", "w2")
    for i in range(5):
        world.dispatch.replies.start(f"x{i}", "w1", "x", 0.0)
    for i in range(12):
        world.submit(event(f"s{i}", f"e{i}"))
    by_hash = [max(("w1", "w2"), key=lambda w: zlib.crc32(f"s{i}:{w}".encode())) for i in range(12)]
    assert [m.worker for m in world.sent()] == by_hash and "w1" in by_hash


def test_a_reply_whose_final_was_lost_is_settled_after_two_beats_unless_its_worker_still_makes_it():
    world = World()
    world.up("w1", parallel=4)
    for r in ("r1", "r2"):
        world.submit(chat(r, r))
        world.claimed(ack(world.sent()[-1]))
    world.submit(chat("r3", "r3"))  # not claimed yet: the ack timeout sees to it
    presence = Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=4, making=["r2"], **UP)
    world.now[0] = 2.0
    assert world.dispatch.lost_finals(presence) == []
    world.now[0] = 2.01
    assert world.dispatch.lost_finals(presence) == [("r1", "r1")]
    assert world.dispatch.load("w1") == 2 and world.dispatch.lost_finals(presence) == [], "settled once"


def test_an_unacked_message_is_sent_again_after_three_beats_to_a_ready_worker_only():
    world = World()
    world.up("w1")
    world.submit(chat("s", "r1"))
    world.now[0] = 3.0
    world.beat("w1")
    world.resend_unacked()
    assert len(world.sent()) == 1
    world.now[0] = 3.01
    world.beat("w1")
    world.resend_unacked()
    assert [(m.id, m.worker, m.epoch) for m in world.sent()] == [("m-r1", "w1", world.sent()[0].epoch)] * 2
    world.now[0] = 9.0  # the worker is silent now: the reroute, not the ack timeout, sees to its messages
    world.up("w2")
    world.resend_unacked()
    assert len(world.sent()) == 2


def test_a_withdrawn_message_leaves_memory_outbox_and_load_and_a_granted_one_cannot_be():
    world = World()
    world.up("w1", parallel=2)
    world.submit(chat("s", "r1"))
    world.claimed(ack(world.sent()[-1]))
    world.submit(chat("t", "r2"))
    assert not world.dispatch.withdraw("m-r1")
    assert world.dispatch.withdraw("m-r2") and world.outbox.dropped == ["m-r1", "m-r2"]
    assert world.dispatch.load("w1") == 1 and world.dispatch.pending.waiting == {}


def test_resumed_epochs_are_past_every_kept_one_and_past_the_wall_clock():
    world = World(SESSION_MAX_PENDING="1")
    kept = {"s": Owner("w1", 2**62)}
    world.dispatch.resume([chat("t", "r1"), chat("t", "r2")], kept)
    assert world.outbox.dropped == ["m-r2"], "past the session's bound: dropped from the outbox"
    world.up("w2")
    world.submit(chat("s", "r3"))
    assert world.sent()[-1].epoch == 2**62 + 1, "moved from w1, which is gone"
    assert world.verdicts() == [], "a worker the web does not know is not told"
    fresh = World()
    before = time.time_ns() // 1000
    fresh.dispatch.resume([], {})
    fresh.up("w1")
    fresh.submit(chat("s", "r1"))
    assert fresh.sent()[-1].epoch > before


def test_a_session_is_served_by_its_ready_holder_or_else_by_the_least_loaded():
    world = World()
    assert world.dispatch.serving("s") is None
    world.up("w1", "w2", parallel=2)
    world.submit(chat("s", "r1"))
    holder = world.sent()[-1].worker
    other = ({"w1", "w2"} - {holder}).pop()
    assert world.dispatch.serving("s") == holder and world.dispatch.serving("new") == other
    world.now[0] = 3.0
    world.beat(other)
    assert world.dispatch.serving("s") == other, "its holder is silent"


def resume(session, reply, question="x"):
    "The web carries on a reply cut off with its brain."
    return Resume(session=session, id=f"m-{reply}-again", reply=reply, text="half", question=question, prompt=PROMPT)


def test_a_cut_off_reply_is_carried_on_before_any_later_message_of_its_session_wherever_it_goes():
    """The user asked M7 as soon as M6's text had appeared; M6's brain died before its end. M7 went
    to the dead brain and waits; the resume of M6 must reach the next brain first, or M7 is
    answered first and M6 asked after it (the context read `M6, M7, M6`)."""
    world = World()
    world.up("w1", parallel=4)
    world.submit(chat("s", "r6", "M6"))
    world.claimed(ack(world.sent()[-1]))  # granted: r6 streams on w1
    world.submit(chat("s", "r7", "M7"))  # sent to w1, which dies before it claims it
    world.submit(event("s", "e8"))
    world.submit(chat("other", "o1"))  # another session's waiting message keeps its place
    world.workers.forget("w1")
    world.dispatch.release("w1")
    assert not world.submit(resume("s", "r6", "M6")), "no brain yet: it waits"
    world.submit(resume("s", "r5", "M5"))  # a second resume keeps its order among resumes
    world.submit(chat("s", "r9", "M9"))  # sent after the resumes: after them
    assert [m.id for m in world.dispatch.pending.messages.values() if m.session == "s"] == [
        "m-r6-again", "m-r5-again", "m-r7", "e8", "m-r9"]
    world.up("w2", parallel=4)
    world.reroute()
    assert [m.id for m in world.sent() if m.worker == "w2" and m.session == "s"] == [
        "m-r6-again", "m-r5-again", "m-r7", "e8", "m-r9"]


def test_a_resume_read_back_from_the_outbox_still_goes_ahead_of_its_sessions_later_messages():
    world = World()
    world.dispatch.resume([chat("s", "r7"), event("s", "e8"), resume("s", "r6"), chat("t", "t1")], {})
    world.up("w1", parallel=4)
    world.reroute()
    assert [m.id for m in world.sent()] == ["m-r6-again", "m-r7", "e8", "m-t1"]


def test_a_comment_the_brain_began_by_itself_is_counted_and_settled_when_its_final_is_lost():
    world = World()
    world.up("w1", parallel=4)
    world.dispatch.made_by("w1", "s", "c1")
    world.dispatch.made_by("w1", "s", "c2")
    assert world.dispatch.load("w1") == 2 and world.dispatch.in_hand("c1")
    world.dispatch.made_by("w1", "s", "c1")  # its next words: counted once
    assert world.dispatch.load("w1") == 2
    world.now[0] = 2.5
    world.beat("w1", making=["c2"])
    assert world.dispatch.lost_finals(world.workers.presence("w1")) == [("s", "c1")]
    assert not world.dispatch.in_hand("c1") and world.dispatch.in_hand("c2")
    world.from_holder(Done(worker="w1", session="s", reply="c2", seq=0, text=""))
    assert world.dispatch.load("w1") == 0 and not world.dispatch.in_hand("c2")
    world.dispatch.made_by("gone", "s", "c3")  # words of a worker already forgotten: no heartbeat will settle it
    assert world.dispatch.strays() == [], "not yet: a worker not heard of yet may still say hello"
    world.now[0] = 2.5 + 3.5
    assert world.dispatch.strays() == [("s", "c3")] and world.dispatch.load("gone") == 0
