"""The brain's model pulls (brain/pulls.py) with fakes at its boundaries: Ollama's client, the
OllamaWatch and the bus. Progress is summed over layers and sent at each step (and a few times a
second within one); the model list is refreshed before "pulled" is said; failures and cancels end
the pull with one line; a second Pull of the same model joins the first."""
import asyncio
import threading

from brain import pulls as pulls_module
from brain.ollama_client import HungUp, NoSuchModel, PullStatus
from brain.pulls import Pulls
from shared.messages import CancelPull, Pull, PullOutcome, PullProgress
from tests.brain.test_engine import drained, until

LAYERS = [PullStatus("pulling manifest"),
          PullStatus("pulling aaaaaaaaaaaa", "sha256:aaaa", 0, 1000), PullStatus("pulling aaaaaaaaaaaa", "sha256:aaaa", 600, 1000),
          PullStatus("pulling aaaaaaaaaaaa", "sha256:aaaa", 1000, 1000),
          PullStatus("pulling bbbbbbbbbbbb", "sha256:bbbb", 0, 10), PullStatus("pulling bbbbbbbbbbbb", "sha256:bbbb", 10, 10),
          PullStatus("verifying sha256 digest"), PullStatus("writing manifest")]


class FakeClient:
    "Ollama's client: pull() yields the script's lines, then raises `error` if set; a hangup ends it."

    def __init__(self, lines=LAYERS, error=None, gate: threading.Event | None = None):
        self.lines, self.error, self.gate, self.pulled = lines, error, gate, []

    def pull(self, model, *, hangup=None):
        self.pulled.append(model)
        for i, line in enumerate(self.lines):
            if i == 1 and self.gate is not None:
                while not self.gate.wait(0.01):
                    if hangup.fired:
                        raise HungUp(f"The pull of '{model}' was cancelled.")
            yield line
        if self.error:
            raise self.error


class FakeWatch:
    def __init__(self, sent):
        self.sent, self.refreshed = sent, []

    async def refresh(self):
        self.refreshed.append(len(self.sent))  # how much had been sent when the list was refreshed


def pull(id="p1", model="qwen2.5:0.5b", session="s"):
    return Pull(worker="w", session=session, id=id, epoch=3, model=model)


def run(client, script):
    "Run `script(pulls)` on a loop with a Pulls over the fakes; returns what was sent and the watch."
    sent = []
    watch = FakeWatch(sent)

    async def main():
        pulls = Pulls(client, watch, sent.append, "w1")
        await script(pulls)
        await until(lambda: not pulls.running)
        pulls.shutdown()

    asyncio.run(main())
    return sent, watch


async def handle(pulls, *msgs):
    for msg in msgs:
        pulls.handle(msg)
        await asyncio.sleep(0)


def test_a_pull_reports_each_step_with_bytes_summed_over_layers_then_pulled_after_the_list_is_refreshed():
    client = FakeClient()
    sent, watch = run(client, lambda pulls: handle(pulls, pull()))
    assert client.pulled == ["qwen2.5:0.5b"]
    assert all(isinstance(m, PullProgress) and (m.session, m.pull, m.epoch, m.worker) == ("s", "p1", 3, "w1")
               for m in sent)
    steps = [(m.status, m.digest, m.completed, m.total) for m in sent[:-1]]
    assert steps == [("pulling manifest", "", 0, 0), ("pulling aaaaaaaaaaaa", "sha256:aaaa", 0, 1000),
                     ("pulling bbbbbbbbbbbb", "sha256:bbbb", 1000, 1010),
                     ("verifying sha256 digest", "", 1010, 1010), ("writing manifest", "", 1010, 1010)]
    assert sent[-1].outcome is PullOutcome.PULLED and sent[-1].error == "" and sent[-1].completed == 1010
    assert watch.refreshed == [len(sent) - 1], "the picker's list is fresh before the pull is said to be done"


def test_within_one_step_progress_is_sent_at_most_every_interval(monkeypatch):
    monkeypatch.setattr(pulls_module, "PROGRESS_EVERY_S", 0.0)
    sent, _ = run(FakeClient(), lambda pulls: handle(pulls, pull()))
    assert [m.completed for m in sent if m.digest == "sha256:aaaa"] == [0, 600, 1000], "every line when due"


def test_a_failed_pull_ends_with_the_clients_line_and_the_list_is_not_refreshed():
    error = NoSuchModel("There is no model 'nope' to pull: check the name at ollama.com/library.")
    sent, watch = run(FakeClient(LAYERS[:1], error), lambda pulls: handle(pulls, pull(model="nope")))
    assert (sent[-1].outcome, sent[-1].error, sent[-1].model) == (PullOutcome.FAILED, str(error), "nope")
    assert watch.refreshed == []


def test_a_cancel_hangs_up_and_ends_the_pull_as_cancelled():
    gate = threading.Event()
    client = FakeClient(gate=gate)

    async def script(pulls):
        await handle(pulls, pull())
        assert pulls.pulling == ["p1"]
        await until(lambda: client.pulled)  # Ollama is pulling
        await handle(pulls, CancelPull(worker="w", session="s", id="c1", epoch=3, pull="p1"))

    sent, watch = run(client, script)
    assert sent[-1].outcome is PullOutcome.CANCELLED and sent[-1].error == "" and watch.refreshed == []


def test_a_second_pull_of_the_same_model_joins_the_first_and_both_are_told():
    gate = threading.Event()
    client = FakeClient(gate=gate)

    async def script(pulls):
        await handle(pulls, pull("p1", "llama3.2"), pull("p2", "llama3.2:latest", session="t"))
        await drained()
        assert sorted(pulls.pulling) == ["p1", "p2"]
        gate.set()

    sent, _ = run(client, script)
    assert client.pulled == ["llama3.2"], "one pull"
    assert {(m.session, m.pull) for m in sent if m.outcome is PullOutcome.PULLED} == {("s", "p1"), ("t", "p2")}
    joined = next(m for m in sent if m.pull == "p2")
    assert joined.outcome is PullOutcome.RUNNING and joined.status == "pulling manifest", "the joiner sees where it stands at once"
