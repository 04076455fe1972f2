"""The broker's routing and liveness rules, with its collaborators swapped for fakes and a
hand-turned clock: fast, and exact about time. A message's own id (`m-r1`) is kept apart from the
reply it asks for (`r1`), so a broker that mixed the two up would fail here."""
import zlib
from collections import Counter

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from shared.config import Settings
from shared.messages import (Ack, AppEvent, Bye, Chat, Chunk, Done, Grant, Heartbeat, Hello, Prompt, Revoke, Stop, ToBrain,
                             decode, encode)
from tests.strategies import any_text
from web.broker import Broker
from web.dispatch import Owner
from web.ports import NotSent
from web.switchboard import Outlet, Switchboard


class Recorder:
    "Listener, outbox and XPUB socket in one: it remembers what the broker did."

    def __init__(self):
        self.sent, self.verdicts, self.heard, self.statuses, self.lost, self.kept, self.dropped = [], [], [], [], [], [], []
        self.grants = {}
        self.assigned, self.released, self.passed_on = {}, [], []

    def brain_message(self, msg): self.heard.append(msg)
    def brain_status(self, status): self.statuses.append(status)
    def brain_lost(self, worker): self.lost.append(worker)
    def reply_lost(self, session, reply): self.lost.append((session, reply))
    def keep(self, msg): self.kept.append(msg.id)
    def drop(self, message): self.dropped.append(message)
    def granted(self, message, owner):  # out of the outbox, and remembered
        self.dropped.append(message)
        self.grants[message] = owner
    def assign(self, session, owner): self.assigned[session] = owner
    def release(self, worker): self.released.append(worker)
    def send_multipart(self, frames, copy=True):
        if frames[0].startswith(b"brain."):
            msg = decode(frames)
            (self.sent if isinstance(msg, ToBrain) else self.verdicts).append(msg)
        else:
            self.passed_on.append(frames)  # brain traffic, forwarded to tails


PROMPT = Prompt("Be brief.", [])


def chat(session, reply, text="x", **kw):
    "A chat turn: its message id is not its reply id."
    return Chat(session=session, id=f"m-{reply}", reply=reply, text=text, prompt=PROMPT, **kw)


def event(session, message, **kw):
    "Something the user did in the app: no reply of its own."
    return AppEvent(session=session, id=message, lines=["used #lamp (WS /ws)"], prompt=PROMPT, **kw)


def ack(msg):
    "The worker's claim on a message it was sent."
    return encode(Ack(worker=msg.worker, session=msg.session, message=msg.id, reply=msg.makes, epoch=msg.epoch))


def beat(worker, **kw):
    return encode(Heartbeat(worker=worker, started=0, pid=1, model="m", **({"parallel": 1} | UP | kw)))


def make(now, **env):
    recorder, outlet = Recorder(), Outlet()
    settings = Settings.from_env({"BUS_HEARTBEAT_S": "1", **env})
    broker = Broker(settings, recorder, Switchboard(settings, recorder, outlet, clock=lambda: now[0]), outlet)
    outlet.socket = recorder
    return broker, recorder


UP = dict(ollama="up", ollama_url="http://127.0.0.1:11434", models=["m:latest"])


def hello(worker, **kw):
    return encode(Hello(worker=worker, started=0, pid=1, model="m", **({"parallel": 1} | UP | kw)))


def workers_with_slots(now, slots=2, names=("w1", "w2"), **env):
    broker, rec = make(now, **env)
    for w in names:
        broker.subscription(f"\x01brain.{w}.".encode())
        broker.from_publisher(hello(w, parallel=slots))
    return broker, rec


def test_nothing_is_sent_before_the_worker_is_subscribed_and_present_then_all_of_it():
    now = [0.0]
    broker, rec = make(now)
    assert not broker.board.submit(chat("s", "r1", "hi"))
    broker.from_publisher(hello("w1"))
    assert rec.sent == [] and broker.board.status == "offline", "a hello without a subscription is not enough"
    broker.subscription(b"\x01brain.w1.")
    assert [(m.id, m.reply, m.worker) for m in rec.sent] == [("m-r1", "r1", "w1")] and broker.board.status == "ready"
    broker.from_publisher(ack(rec.sent[-1]))
    assert broker.board.pending == {} and rec.dropped == ["m-r1"]
    assert [(type(v), v.message, v.epoch) for v in rec.verdicts] == [(Grant, "m-r1", rec.sent[-1].epoch)]
    assert [(m.message, m.reply) for m in rec.heard if isinstance(m, Ack)] == [("m-r1", "r1")], "the chats learn which reply"


def test_a_silent_worker_is_lost_after_three_beats_and_back_with_any_message():
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=1, names=("w1",))
    now[0] = 2.9
    broker.check_liveness()
    assert rec.lost == [] and broker.board.status == "ready"
    now[0] = 3.1
    broker.check_liveness()
    assert rec.lost == ["w1"] and broker.board.status == "offline"
    broker.from_publisher(encode(Chunk(worker="w1", session="s", reply="r", seq=0, text="still here")))
    assert broker.board.status == "ready"
    broker.from_publisher(encode(Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=1, busy=1, **UP)))
    assert broker.board.status == "busy"


def test_goodbye_means_restarting_until_a_new_worker_or_the_grace_ends():
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=1, names=("w1",))
    broker.from_publisher(encode(Bye(worker="w1")))
    assert broker.board.status == "restarting" and rec.statuses[-2:] == ["ready", "restarting"]
    now[0] = 20.0
    broker.check_liveness()
    assert broker.board.status == "offline"
    broker.subscription(b"\x01brain.w2.")
    broker.from_publisher(hello("w2"))
    assert broker.board.status == "ready"


def test_a_disconnected_worker_hands_its_unacked_messages_to_the_next():
    now = [0.0]
    broker, rec = make(now)
    for w in ("w1", "w2"):
        broker.subscription(f"\x01brain.{w}.".encode())
        broker.from_publisher(hello(w))
    broker.board.submit(chat("s", "r1", "hi"))
    first = rec.sent[-1].worker
    broker.subscription(f"\x00brain.{first}.".encode())
    assert rec.lost == [first]
    assert [(m.id, m.worker) for m in rec.sent] == [("m-r1", first), ("m-r1", {"w1", "w2"}.difference({first}).pop())]


def test_sessions_stick_to_their_worker():
    now = [0.0]
    broker, rec = make(now)
    for w in ("w1", "w2", "w3"):
        broker.subscription(f"\x01brain.{w}.".encode())
        broker.from_publisher(hello(w))
    for i in range(20):
        broker.board.submit(chat(f"s{i % 4}", f"r{i}", "x"))
    by_session = {}
    for m in rec.sent:
        by_session.setdefault(m.session, set()).add(m.worker)
    assert all(len(workers) == 1 for workers in by_session.values())


def test_a_goodbye_overtaken_by_its_disconnect_still_means_restarting():
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=1, names=("w1",))
    broker.subscription(b"\x00brain.w1.")
    broker.from_publisher(encode(Bye(worker="w1")))
    assert broker.board.status == "restarting"


def test_the_status_tells_the_whole_chain_for_each_sessions_model():
    now = [0.0]
    broker, rec = make(now)
    broker.subscription(b"\x01brain.w1.")
    beat = dict(worker="w1", started=0, pid=1, model="m", parallel=1, ollama_url="http://127.0.0.1:11434")
    expected = [
        (dict(), "checking", "checking Ollama…"),
        (dict(ollama="down"), "ollama-down", "Ollama is not running at 127.0.0.1:11434 — start it with `ollama serve`"),
        (dict(ollama="up", loading="m"), "loading", "loading m…"),
        (dict(ollama="up", models=[]), "not-pulled", "m is not pulled — run `ollama pull m` (or pick another model)"),
        (dict(ollama="up", models=["m:latest"], loading="m"), "loading", "loading m…"),
        (dict(ollama="up", models=["m:latest"]), "ready", "brain ready"),
    ]
    for fields, status, text in expected:
        broker.from_publisher(encode(Heartbeat(**beat, **fields)))
        assert broker.board.status_of("s") == (status, text)
    assert rec.statuses[1:] == [status for _, status, _ in expected], "each change announced once"
    assert broker.board.status_of("s", "qwen3:4b")[1] == "qwen3:4b is not pulled — run `ollama pull qwen3:4b` (or pick another model)"
    assert broker.board.models == ["m:latest"]


def test_a_message_a_live_worker_did_not_ack_is_sent_again_after_the_ack_timeout():
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=1, names=("w1",))
    broker.board.submit(chat("s", "r1", "lost on the way"))
    for t in (1.0, 2.0, 2.9):  # heartbeats keep the worker alive; no ack yet, not due yet
        now[0] = t
        broker.from_publisher(encode(Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=1, **UP)))
        broker.check_liveness()
    assert [m.id for m in rec.sent] == ["m-r1"]
    now[0] = 3.1
    broker.from_publisher(encode(Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=1, **UP)))
    broker.check_liveness()
    assert [(m.id, m.worker) for m in rec.sent] == [("m-r1", "w1"), ("m-r1", "w1")], "sent again"
    broker.from_publisher(ack(rec.sent[-1]))
    now[0] = 10.0
    broker.from_publisher(encode(Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=1, **UP)))
    broker.check_liveness()
    assert len(rec.sent) == 2 and broker.board.pending == {}, "an acked message is never sent again"


def two_workers(now):
    broker, rec = make(now)
    for w in ("w1", "w2"):
        broker.subscription(f"\x01brain.{w}.".encode())
        broker.from_publisher(hello(w))
    return broker, rec


def test_a_stalled_workers_claim_is_void_once_its_message_went_elsewhere():
    now = [0.0]
    broker, rec = two_workers(now)
    broker.board.submit(chat("s", "r1", "hi"))
    first = rec.sent[-1]
    other = ({"w1", "w2"} - {first.worker}).pop()
    now[0] = 3.1  # the first worker froze before it could claim r1; the other one heartbeats
    broker.from_publisher(beat(other))
    broker.check_liveness()
    second = rec.sent[-1]
    assert (second.id, second.worker) == ("m-r1", other) and second.epoch > first.epoch
    assert (type(rec.verdicts[-1]), rec.verdicts[-1].worker) == (Revoke, first.worker), "told at once, for when it wakes"
    broker.from_publisher(ack(second))
    assert isinstance(rec.verdicts[-1], Grant) and rec.verdicts[-1].worker == other
    # The first worker wakes up and claims its copy: revoked, not granted, and not heard.
    heard = len(rec.heard)
    broker.from_publisher(ack(first))
    assert (type(rec.verdicts[-1]), rec.verdicts[-1].worker, rec.verdicts[-1].epoch) == (Revoke, first.worker, second.epoch)
    broker.from_publisher(encode(Chunk(worker=first.worker, session="s", reply="r1", epoch=first.epoch, seq=0, text="dup")))
    assert len(rec.heard) == heard, "nothing the old holder says about the session reaches the chats"
    broker.from_publisher(encode(Chunk(worker=other, session="s", reply="r1", epoch=second.epoch, seq=0, text="ok")))
    assert rec.heard[-1].text == "ok"


def test_a_session_stays_with_its_worker_while_it_is_ready():
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=1, names=("w1",))
    for i in range(8):
        broker.board.submit(chat(f"s{i}", f"a{i}", "x"))
    for w in ("w2", "w3"):  # would win the hash for some sessions
        broker.subscription(f"\x01brain.{w}.".encode())
        broker.from_publisher(hello(w))
    for i in range(8):
        broker.board.submit(chat(f"s{i}", f"b{i}", "x"))
    assert {m.worker for m in rec.sent} == {"w1"}
    assert len({m.epoch for m in rec.sent}) == 8, "one assignment per session, kept"


def test_a_lost_grant_is_granted_again_and_a_withdrawn_message_is_revoked():
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=1, names=("w1",))
    broker.board.submit(chat("s", "r1", "hi"))
    broker.from_publisher(ack(rec.sent[-1]))
    broker.from_publisher(ack(rec.sent[-1]))  # the worker heard no answer and claims again
    assert [type(v) for v in rec.verdicts] == [Grant, Grant]
    assert [type(m) for m in rec.heard if isinstance(m, Ack)] == [Ack], "the chats hear of a claim once"
    broker.board.submit(chat("s", "r2", "queued"))
    assert broker.board.asking("r2") == "m-r2", "the message that asks for reply r2"
    assert broker.board.withdraw("m-r2"), "a claim not granted yet can be taken back"
    assert broker.board.asking("r2") is None and rec.dropped[-1] == "m-r2"
    broker.from_publisher(ack(rec.sent[-1]))
    assert isinstance(rec.verdicts[-1], Revoke) and rec.verdicts[-1].message == "m-r2"
    broker.board.submit(Stop(session="s", id="m-stop", reply="r1"))
    assert broker.board.asking("r1") is None, "a Stop about r1 does not ask for it, and r1's own claim was granted"
    assert not broker.board.withdraw("m-r1"), "a granted message cannot be withdrawn"


def test_assignments_survive_a_restart_and_epochs_only_grow():
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=1, names=("w1",))
    broker.board.submit(chat("s", "r1", "hi"))
    kept = dict(rec.assigned)
    again, rec2 = make(now)
    again.board.resume([], kept)
    again.subscription(b"\x01brain.w2.")
    again.from_publisher(hello("w2"))
    again.subscription(b"\x01brain.w1.")
    again.from_publisher(hello("w1"))
    again.board.submit(chat("s", "r2", "again"))
    assert (rec2.sent[-1].worker, rec2.sent[-1].epoch) == ("w1", kept["s"].epoch), "same worker, same epoch"
    again.subscription(b"\x00brain.w1.")
    assert rec2.released == ["w1"] and rec2.sent[-1].worker == "w2" and rec2.sent[-1].epoch > kept["s"].epoch
    assert again.board.dispatch.owners["s"] == Owner("w2", rec2.sent[-1].epoch)


def test_a_claim_whose_grant_was_lost_is_granted_again_after_the_web_restarts():
    "Not revoked as unknown: the grant is remembered on disk (the newest GRANTS_REMEMBERED)."
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=1, names=("w1",))
    broker.board.submit(chat("s", "r1", "hi"))
    sent = rec.sent[-1]
    broker.from_publisher(ack(sent))  # granted, and the grant is lost on its way; the web restarts
    assert rec.grants == {"m-r1": Owner("w1", sent.epoch)}
    again, rec2 = make(now)
    again.board.resume([], dict(rec.assigned), dict(rec.grants))
    again.subscription(b"\x01brain.w1.")
    again.from_publisher(hello("w1"))
    again.from_publisher(ack(sent))  # the worker claims it again
    assert [(type(v), v.message, v.epoch) for v in rec2.verdicts] == [(Grant, "m-r1", sent.epoch)]


def finish(broker, msg):
    broker.from_publisher(ack(msg))
    broker.from_publisher(encode(Done(worker=msg.worker, session=msg.session, reply=msg.reply, epoch=msg.epoch,
                                      seq=0, text="ok")))


def test_new_sessions_go_to_the_least_loaded_and_stay_while_their_worker_has_room():
    now = [0.0]
    broker, rec = workers_with_slots(now)
    for i in range(4):
        broker.board.submit(chat(f"s{i}", f"a{i}", "x"))
    first = {m.session: m for m in rec.sent}
    assert sorted(broker.board.dispatch.load(w) for w in ("w1", "w2")) == [2, 2], "spread at once, before any heartbeat"
    for m in first.values():
        finish(broker, m)
    for i in range(4):
        broker.board.submit(chat(f"s{i}", f"b{i}", "x"))
    assert all((m.worker, m.epoch) == (first[m.session].worker, first[m.session].epoch) for m in rec.sent[4:])


def test_a_turn_of_an_idle_session_whose_worker_is_full_goes_where_there_is_room():
    now = [0.0]
    broker, rec = workers_with_slots(now)
    broker.board.submit(chat("c", "c1", "x"))
    home = rec.sent[-1]
    finish(broker, home)
    other = ({"w1", "w2"} - {home.worker}).pop()
    # Two more sessions that land on c's worker (it is the least loaded once we load the other).
    broker.board.dispatch.replies.start("x1", other, "x", now[0])  # the other worker is busy with two replies of other sessions
    broker.board.dispatch.replies.start("y1", other, "y", now[0])
    for s in ("a", "b"):
        broker.board.submit(chat(s, f"{s}1", "x"))
    assert {m.worker for m in rec.sent[-2:]} == {home.worker} and broker.board.dispatch.load(home.worker) == 2
    broker.board.dispatch.replies.end("x1")  # the other worker has a free slot again
    broker.board.submit(chat("c", "c2", "x"))
    moved = rec.sent[-1]
    assert moved.worker == other and moved.epoch > home.epoch
    assert (type(rec.verdicts[-1]), rec.verdicts[-1].worker) == (Revoke, home.worker), "the old worker lets go of it"
    # A session whose reply is still under way stays, even on a full worker.
    broker.board.submit(chat("a", "a2", "queued behind a1"))
    assert rec.sent[-1].worker == home.worker


def test_no_worker_is_sent_more_than_its_slots_while_another_has_room():
    import random
    now, rng = [0.0], random.Random(3)
    broker, rec = workers_with_slots(now, slots=4)
    open_turns = []
    for step in range(500):
        if open_turns and rng.random() < 0.45:
            finish(broker, open_turns.pop(rng.randrange(len(open_turns))))
            continue
        busy = {m.session for m in open_turns}
        session = rng.choice([f"s{i}" for i in range(12) if f"s{i}" not in busy] or ["s0"])
        broker.board.submit(chat(session, f"r{step}", "x"))
        sent = rec.sent[-1]
        open_turns.append(sent)
        if broker.board.dispatch.load(sent.worker) > 4:
            assert all(broker.board.dispatch.load(w) >= 4 for w in ("w1", "w2") if w != sent.worker), (step, broker.board.dispatch.replies.under_way)


def test_with_hash_routing_a_full_worker_keeps_its_sessions_and_new_ones_ignore_load():
    now = [0.0]
    broker, rec = make(now, BUS_ROUTING="hash")
    for w in ("w1", "w2"):
        broker.subscription(f"\x01brain.{w}.".encode())
        broker.from_publisher(hello(w, parallel=1))
    for i in range(12):
        broker.board.submit(chat(f"s{i}", f"r{i}", "x"))
    by_hash = [max(("w1", "w2"), key=lambda w: zlib.crc32(f"s{i}:{w}".encode())) for i in range(12)]
    assert [m.worker for m in rec.sent] == by_hash


def test_a_silent_workers_session_with_a_reply_under_way_waits_for_it_unless_the_user_asks_again():
    now = [0.0]
    broker, rec = two_workers(now)
    broker.board.submit(chat("s", "r1", "long reply"))
    first = rec.sent[-1]
    broker.from_publisher(ack(first))
    other = ({"w1", "w2"} - {first.worker}).pop()
    now[0] = 3.1  # the first worker is too busy to heartbeat; its reply to r1 is still under way
    broker.from_publisher(beat(other))
    broker.check_liveness()
    broker.board.submit(event("s", "i1"))
    assert rec.sent[-1].id == "m-r1" and broker.board.dispatch.owners["s"].worker == first.worker, "the event waits for it"
    broker.board.submit(chat("s", "r2", "retry", retry=True))
    assert [(m.id, m.worker) for m in rec.sent[-2:]] == [("i1", other), ("m-r2", other)], "moved, in order"
    assert broker.board.dispatch.load(first.worker) == 0, "the cut-off reply no longer counts"


def test_a_reply_whose_worker_no_longer_makes_it_and_whose_final_never_came_is_settled():
    now = [0.0]
    broker, rec = workers_with_slots(now, slots=4, names=("w1",))
    for r in ("r1", "r2", "r3"):
        broker.board.submit(chat(r, r, "x"))
        if r != "r3":  # r3 was lost on its way to the worker: the ack timeout sends it again
            broker.from_publisher(ack(rec.sent[-1]))
    now[0] = 1.0
    broker.from_publisher(beat("w1", parallel=4, making=[]))
    assert rec.lost == [], "not two beats old yet: its claim may still be on the way"
    now[0] = 2.5
    broker.from_publisher(beat("w1", parallel=4, making=["r2"]))  # r1's Done was dropped on the way
    assert rec.lost == [("r1", "r1")] and broker.board.dispatch.load("w1") == 2


def test_a_message_that_cannot_be_encoded_is_refused_at_submit_and_nothing_of_it_is_kept():
    now = [0.0]
    broker, rec = workers_with_slots(now, names=("w1",))
    with pytest.raises(NotSent, match="cannot be encoded"):
        broker.board.submit(chat("s", "r1", "hi \ud800"))
    assert rec.kept == [] and rec.sent == [] and broker.board.pending == {}
    assert broker.board.submit(chat("s2", "r2", "fine")), "the bus goes on for everyone"


def test_a_poison_message_read_back_from_the_outbox_is_dropped_and_the_others_are_sent():
    now = [0.0]
    broker, rec = make(now)
    broker.board.resume([chat("s", "r1", "hi \ud800"), chat("s2", "r2", "ok")])
    broker.subscription(b"\x01brain.w1.")
    broker.from_publisher(hello("w1"))
    broker.check_liveness()
    assert [m.id for m in rec.sent] == ["m-r2"] and "m-r1" in rec.dropped and "m-r1" not in broker.board.pending


def test_a_message_bigger_than_a_frame_is_refused_at_submit_never_kept_and_never_sent():
    now = [0.0]
    broker, rec = workers_with_slots(now, names=("w1",), BUS_MAX_FRAME_BYTES="4096")
    with pytest.raises(NotSent, match="exceeds 4096"):
        broker.board.submit(event("s", "e1", state="The todo list now:\n" + "- [ ] #1 " + "x" * 5000, comment=True))
    assert rec.kept == [] and rec.sent == [] and broker.board.pending == {}


def test_the_messages_a_session_has_waiting_are_bounded_and_the_next_one_is_refused():
    now = [0.0]
    broker, rec = make(now, SESSION_MAX_PENDING="5")
    for i in range(5):
        assert not broker.board.submit(event("s", f"i{i}"))
    with pytest.raises(NotSent, match="5 messages .* waiting"):
        broker.board.submit(event("s", "i5"))
    assert not broker.board.submit(chat("other", "r1", "hi")), "other sessions are not held back"
    assert len(rec.kept) == 6


class BrokerMachine(RuleBasedStateMachine):
    """The broker driven by any mix of what tabs submit (poison included), what workers and
    strangers publish, subscriptions and time: no loop ever raises, what it sends is valid, and
    what waits stays within its bounds."""

    def __init__(self):
        super().__init__()
        self.now = [0.0]
        self.broker, self.rec = make(self.now, SESSION_MAX_PENDING="4", BUS_MAX_FRAME_BYTES="4096")
        self.n = 0

    def _id(self) -> str:
        self.n += 1
        return f"r{self.n}"

    @rule(session=st.sampled_from(["s1", "s2", "s3"]), text=any_text, kind=st.sampled_from(["chat", "interaction", "change"]))
    def submit(self, session, text, kind):
        msg = {"chat": lambda: chat(session, self._id(), text),
               "interaction": lambda: AppEvent(session=session, id=self._id(), lines=[f"used #lamp (WS /ws lamp={text!r})"],
                                               prompt=PROMPT),
               "change": lambda: AppEvent(session=session, id=self._id(), lines=[f"added #1 {text!r}"], prompt=PROMPT,
                                          state="\n".join(f"- [ ] #{i} {text * 20}" for i in range(len(text))),
                                          comment=True)}[kind]()
        try:
            self.broker.board.submit(msg)
        except NotSent as e:
            assert str(e) and msg.id not in self.broker.board.pending

    @rule(worker=st.sampled_from(["w1", "w2"]), up=st.booleans())
    def subscription(self, worker, up):
        self.broker.subscription((b"\x01" if up else b"\x00") + f"brain.{worker}.".encode())

    @rule(worker=st.sampled_from(["w1", "w2"]), parallel=st.integers(1, 3))
    def heartbeat(self, worker, parallel):
        self.broker.from_publisher(beat(worker, parallel=parallel))

    @rule(data=st.data())
    def ack_something_sent(self, data):
        if self.rec.sent:
            self.broker.from_publisher(ack(data.draw(st.sampled_from(self.rec.sent))))

    @rule(frames=st.lists(st.binary(max_size=80) | st.sampled_from([b"web.ack", b"web.bye", b"web.done"]), max_size=3))
    def garbage(self, frames):
        if frames:
            self.broker.from_publisher(frames)

    @rule(worker=st.sampled_from(["w1", "w2"]))
    def bye(self, worker):
        self.broker.from_publisher(encode(Bye(worker=worker)))

    @rule(seconds=st.floats(0, 5))
    def time_passes(self, seconds):
        self.now[0] += seconds
        self.broker.check_liveness()

    @rule(data=st.data())
    def withdraw(self, data):
        if self.broker.board.pending:
            self.broker.board.withdraw(data.draw(st.sampled_from(sorted(self.broker.board.pending))))

    @invariant()
    def bounded_and_counted(self):
        by_session = Counter(m.session for m in self.broker.board.pending.values())
        assert by_session == self.broker.board.dispatch.pending.waiting and all(n <= 4 for n in by_session.values())
        assert set(self.rec.kept) >= set(self.broker.board.pending)
        replies = self.broker.board.dispatch.replies
        assert replies.loads == Counter(t.worker for t in replies.under_way.values())
        assert replies.by_session == Counter(t.session for t in replies.under_way.values())


TestBrokerMachine = pytest.mark.fuzz(BrokerMachine.TestCase)


def test_a_message_that_cannot_be_sent_is_dropped_and_the_others_go():
    now = [0.0]
    broker, rec = make(now)
    broker.board.submit(chat("s", "poison"))
    broker.board.submit(chat("t", "fine"))
    sent = rec.send_multipart

    def send_multipart(frames, copy=True):
        if getattr(decode(frames), "id", "") == "m-poison":
            raise OSError("the socket refused it")
        sent(frames, copy)
    rec.send_multipart = send_multipart
    broker.subscription(b"\x01brain.w1.")
    broker.from_publisher(hello("w1", parallel=2))
    assert [m.id for m in rec.sent] == ["m-fine"] and list(broker.board.pending) == ["m-fine"]
    assert rec.dropped == ["m-poison"] and broker.board.dispatch.load("w1") == 1
    now[0] = 3.5
    broker.from_publisher(beat("w1", parallel=2))
    broker.check_liveness()
    assert [m.id for m in rec.sent] == ["m-fine", "m-fine"], "not acked: sent again; the dropped one never"


def test_a_tail_subscribed_to_every_brain_topic_is_no_worker():
    "`make tail ARGS='--topic brain.'` joins and leaves as 'brain.': no worker of no name comes or goes."
    now = [0.0]
    broker, rec = make(now)
    broker.subscription(b"\x01brain.")
    assert "" not in broker.board.workers
    broker.subscription(b"\x00brain.")
    assert rec.lost == [], "replies not yet acked (whose worker is not known yet) must not be taken for a lost brain's"


def test_brain_traffic_is_passed_on_only_while_a_tail_listens_and_credits_go_back_to_the_brain():
    now = [0.0]
    broker, rec = make(now)
    broker.from_publisher(beat("w1"))
    assert rec.passed_on == [], "no tail: nothing is copied"
    broker.subscription(b"\x01web.")
    broker.from_publisher(beat("w1"))
    broker.subscription(b"\x00web.")
    broker.from_publisher(beat("w1"))
    assert len(rec.passed_on) == 1
    assert broker.board.credits.due()[0].seen == 1, "each heartbeat is answered with a credit, counted as the brain counts"
