"""The broker's routing and liveness rules, with its collaborators swapped for fakes and a
hand-turned clock: fast, and exact about time."""
from shared.config import Settings
from shared.messages import Ack, Bye, Chat, Chunk, Heartbeat, Hello, decode, encode
from web.broker import Broker


class Recorder:
    "Listener, outbox and XPUB socket in one: it remembers what the broker did."

    def __init__(self):
        self.sent, self.statuses, self.lost, self.kept, self.dropped = [], [], [], [], []

    def brain_message(self, msg): pass
    def brain_status(self, status): self.statuses.append(status)
    def brain_lost(self, worker): self.lost.append(worker)
    def keep(self, msg): self.kept.append(msg.request)
    def drop(self, request): self.dropped.append(request)
    def send_multipart(self, frames, copy=True):
        if frames[0].startswith(b"brain."):  # not the brain traffic it forwards to tails
            self.sent.append(decode(frames))


def make(now):
    recorder = Recorder()
    broker = Broker(Settings.from_env({"BUS_HEARTBEAT_S": "1"}), recorder, recorder, clock=lambda: now[0])
    broker.xpub = recorder
    return broker, recorder


UP = dict(ollama="up", ollama_url="http://127.0.0.1:11434", models=["m:latest"])


def hello(worker, **kw):
    return encode(Hello(worker=worker, started=0, pid=1, model="m", parallel=1, **(UP | kw)))


def test_nothing_is_sent_before_the_worker_is_subscribed_and_present_then_all_of_it():
    now = [0.0]
    broker, rec = make(now)
    assert not broker.submit(Chat(session="s", request="r1", text="hi"))
    broker.from_publisher(hello("w1"))
    assert rec.sent == [] and broker.status == "offline", "a hello without a subscription is not enough"
    broker.subscription(b"\x01brain.w1.")
    assert [(m.request, m.worker) for m in rec.sent] == [("r1", "w1")] and broker.status == "ready"
    broker.from_publisher(encode(Ack(worker="w1", session="s", request="r1")))
    assert broker.pending == {} and rec.dropped == ["r1"]


def test_a_silent_worker_is_lost_after_three_beats_and_back_with_any_message():
    now = [0.0]
    broker, rec = make(now)
    broker.subscription(b"\x01brain.w1.")
    broker.from_publisher(hello("w1"))
    now[0] = 2.9
    broker.check_liveness()
    assert rec.lost == [] and broker.status == "ready"
    now[0] = 3.1
    broker.check_liveness()
    assert rec.lost == ["w1"] and broker.status == "offline"
    broker.from_publisher(encode(Chunk(worker="w1", session="s", request="r", seq=0, text="still here")))
    assert broker.status == "ready"
    broker.from_publisher(encode(Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=1, busy=1, **UP)))
    assert broker.status == "busy"


def test_goodbye_means_restarting_until_a_new_worker_or_the_grace_ends():
    now = [0.0]
    broker, rec = make(now)
    broker.subscription(b"\x01brain.w1.")
    broker.from_publisher(hello("w1"))
    broker.from_publisher(encode(Bye(worker="w1")))
    assert broker.status == "restarting" and rec.statuses[-2:] == ["ready", "restarting"]
    now[0] = 20.0
    broker.check_liveness()
    assert broker.status == "offline"
    broker.subscription(b"\x01brain.w2.")
    broker.from_publisher(hello("w2"))
    assert broker.status == "ready"


def test_a_disconnected_worker_hands_its_unacked_messages_to_the_next():
    now = [0.0]
    broker, rec = make(now)
    for w in ("w1", "w2"):
        broker.subscription(f"\x01brain.{w}.".encode())
        broker.from_publisher(hello(w))
    broker.submit(Chat(session="s", request="r1", text="hi"))
    first = rec.sent[-1].worker
    broker.subscription(f"\x00brain.{first}.".encode())
    assert rec.lost == [first]
    assert [(m.request, m.worker) for m in rec.sent] == [("r1", first), ("r1", {"w1", "w2"}.difference({first}).pop())]


def test_sessions_stick_to_their_worker():
    now = [0.0]
    broker, rec = make(now)
    for w in ("w1", "w2", "w3"):
        broker.subscription(f"\x01brain.{w}.".encode())
        broker.from_publisher(hello(w))
    for i in range(20):
        broker.submit(Chat(session=f"s{i % 4}", request=f"r{i}", text="x"))
    by_session = {}
    for m in rec.sent:
        by_session.setdefault(m.session, set()).add(m.worker)
    assert all(len(workers) == 1 for workers in by_session.values())


def test_a_goodbye_overtaken_by_its_disconnect_still_means_restarting():
    now = [0.0]
    broker, rec = make(now)
    broker.subscription(b"\x01brain.w1.")
    broker.from_publisher(hello("w1"))
    broker.subscription(b"\x00brain.w1.")
    broker.from_publisher(encode(Bye(worker="w1")))
    assert broker.status == "restarting"


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
        assert broker.status_of("s") == (status, text)
    assert rec.statuses[1:] == [status for _, status, _ in expected], "each change announced once"
    assert broker.status_of("s", "qwen3:4b")[1] == "qwen3:4b is not pulled — run `ollama pull qwen3:4b` (or pick another model)"
    assert broker.models == ["m:latest"]


def test_a_message_a_live_worker_did_not_ack_is_sent_again_after_the_ack_timeout():
    now = [0.0]
    broker, rec = make(now)
    broker.subscription(b"\x01brain.w1.")
    broker.from_publisher(hello("w1"))
    broker.submit(Chat(session="s", request="r1", text="lost on the way"))
    for t in (1.0, 2.0, 2.9):  # heartbeats keep the worker alive; no ack yet, not due yet
        now[0] = t
        broker.from_publisher(encode(Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=1, **UP)))
        broker.check_liveness()
    assert [m.request for m in rec.sent] == ["r1"]
    now[0] = 3.1
    broker.from_publisher(encode(Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=1, **UP)))
    broker.check_liveness()
    assert [(m.request, m.worker) for m in rec.sent] == [("r1", "w1"), ("r1", "w1")], "sent again"
    broker.from_publisher(encode(Ack(worker="w1", session="s", request="r1")))
    now[0] = 10.0
    broker.from_publisher(encode(Heartbeat(worker="w1", started=0, pid=1, model="m", parallel=1, **UP)))
    broker.check_liveness()
    assert len(rec.sent) == 2 and broker.pending == {}, "an acked message is never sent again"
