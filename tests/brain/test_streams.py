"""Ollama's streams as the brain reads them (brain/streams.py) and what it says of a reply
(brain/outlet.py), with a scripted Ollama and the bus as a list: a reply's text reaches the bus in
chunks numbered on from the turn's count, thinking kept apart, a call written as text taken out and
returned as a call, a Stop ends the read without a fault, a broken stream is an interruption with
what was said, a warm-up asks for one token with the options every request has, and while the web is
a window behind, a reply's words wait and go together."""
import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from brain.jobs import Outgoing, Turn
from brain.ollama_client import Delta, Hangup, HungUp, OllamaFailed, ToolCall
from brain.outlet import ReplyBus, Window
from brain.streams import Interrupted, Streams
from shared.config import Settings
from shared.messages import Chunk, Done, Failed, FailCode, Stats
from tests.brain.test_engine import drained, until
from tests.fake_app import TOOLS


class Ollama:
    """Streams each script item in turn: a Delta, a list of calls, Stats, or an exception raised there.
    With `gate`, it waits after the first item until the gate opens or the request is hung up."""
    def __init__(self, *script, gate: threading.Event | None = None):
        self.script, self.gate, self.asked = list(script), gate, []

    def chat(self, model, messages, *, options=None, tools=None, keep_alive=None, hangup=None):
        self.asked.append({"model": model, "options": options, "tools": tools, "keep_alive": keep_alive})
        for i, item in enumerate(self.script):
            if isinstance(item, Exception):
                raise item
            yield item
            while i == 0 and self.gate is not None and not self.gate.wait(0.01):
                if hangup.fired:
                    raise HungUp("hung up")


@pytest.fixture
def streams():
    "run(scenario, ollama): scenario(streams, sent) on a loop, a turn's model being 'm'; `window` counts what is sent."
    def go(scenario, ollama, window=None):
        async def main():
            sent = []
            settings = Settings.from_env({"OLLAMA_NUM_CTX": "4096", "OLLAMA_KEEP_ALIVE": "5m"})
            flow = window or Window(100)
            bus = ReplyBus(SimpleNamespace(send=lambda msg: (sent.append(msg), flow.counted()), window=flow,
                                           max_bytes=1 << 20), "w1")
            pool = ThreadPoolExecutor(2)
            try:
                await scenario(Streams(ollama, settings, pool, asyncio.get_running_loop(), bus), sent)
            finally:
                pool.shutdown()
        asyncio.run(main())
    return go


def a_turn(sent=0, epoch=4):
    return Turn("s", "r1", "hi", model="m", out=Outgoing(sent), epoch=epoch)


def test_a_reply_reaches_the_bus_in_numbered_chunks_and_comes_back_whole(streams):
    async def scenario(streams, sent):
        turn = a_turn(sent=3)
        answer = await streams.reply(turn, [], None)
        streams.flush(turn)
        assert (answer.text, answer.thinking, answer.stats.eval_count) == ("Hello there", "hmm", 2)
        chunks = [m for m in sent if isinstance(m, Chunk)]
        assert "".join(c.text for c in chunks) == "Hello there" and "".join(c.thinking for c in chunks) == "hmm"
        assert [c.seq for c in chunks] == list(range(3, 3 + len(chunks))) and turn.out.sent == 3 + len(chunks)
        assert {(c.worker, c.session, c.reply, c.epoch) for c in chunks} == {("w1", "s", "r1", 4)}
    streams(scenario, Ollama(Delta("", "hmm"), Delta("Hello"), Delta(" there"), Stats(eval_count=2)))


def test_every_request_has_the_same_options_and_the_offered_tools(streams):
    ollama = Ollama(Delta("ok"))

    async def scenario(streams, sent):
        await streams.reply(a_turn(), [], TOOLS)
        await streams.warm("m", [{"role": "user", "content": "x"}], TOOLS, Hangup())
        reply, warm = ollama.asked
        assert reply["options"] == {"num_ctx": 4096, "num_predict": 2048} and reply["tools"] == TOOLS
        assert reply["keep_alive"] == "5m"
        assert warm["options"] == {"num_ctx": 4096, "num_predict": 1}, "one token, and no reload"
        assert warm["tools"] == TOOLS and warm["keep_alive"] == "5m"
        assert not [m for m in sent if not isinstance(m, Chunk)]
    streams(scenario, ollama)


def test_a_call_written_as_text_is_taken_out_and_returned_with_the_native_ones(streams):
    written = '{"name": "add_todo", "arguments": {"title": "milk"}}'
    native = ToolCall("delete_todo", {"id": 1})

    async def scenario(streams, sent):
        turn = a_turn()
        answer = await streams.reply(turn, [], TOOLS)
        streams.flush(turn)
        assert answer.text == "Sure.\n" and "".join(m.text for m in sent) == "Sure.\n"
        assert answer.calls == [native, ToolCall("add_todo", {"title": "milk"})]
    streams(scenario, Ollama(Delta(written[:10]), Delta(written[10:]), [native], Delta("\nSure.\n")))


def test_a_stopped_reply_ends_with_what_it_had_and_no_fault(streams):
    gate = threading.Event()

    async def scenario(streams, sent):
        turn = a_turn()
        reading = asyncio.ensure_future(streams.reply(turn, [], None))
        await until(lambda: any(isinstance(m, Chunk) for m in sent))  # "Once" was read; the stream waits
        turn.control.cancel()
        answer = await reading
        assert answer.text == "Once"
    streams(scenario, Ollama(Delta("Once"), Delta(" upon"), gate=gate))


def test_a_broken_stream_is_an_interruption_with_what_was_said(streams):
    async def scenario(streams, sent):
        turn = a_turn()
        with pytest.raises(Interrupted) as broke:
            await streams.reply(turn, [], None)
        assert broke.value.partial == "Once" and isinstance(broke.value.error, OllamaFailed)
    streams(scenario, Ollama(Delta("Once"), OllamaFailed("gone")))


def test_an_end_speaks_for_the_turns_epoch_and_says_how_many_chunks_came_before_it(streams):
    async def scenario(streams, sent):
        bus = streams.bus
        bus.failed(Turn("s", "r3", "hi", epoch=2, out=Outgoing(5)), FailCode.STOPPED, "Stopped.", text="so far")
        bus.done(Turn("s", "r4", "hi", epoch=2, out=Outgoing(1)), "all", "thought")
        assert [(m.reply, m.epoch) for m in sent] == [("r3", 2), ("r4", 2)]
        assert isinstance(sent[0], Failed) and (sent[0].seq, sent[0].text) == (5, "so far")
        assert isinstance(sent[1], Done) and (sent[1].seq, sent[1].thinking, sent[1].stats) == (1, "thought", Stats())
    streams(scenario, Ollama())


def test_while_the_web_is_a_window_behind_a_replys_words_wait_and_go_together(streams):
    window, gate = Window(2), threading.Event()

    async def scenario(streams, sent):
        window.counted()
        window.counted()  # two messages the web has not taken: the window is shut
        turn = a_turn()
        reading = asyncio.ensure_future(streams.reply(turn, [], None))
        await until(lambda: window.waiting)  # the first word was read and handed to the loop, which holds it
        await drained()
        assert sent == [], "the first word waits"
        gate.set()
        await reading  # the stream has ended: every word is on the loop
        await drained()
        assert sent == [], "and so do the others, with it"
        window.credit(2)
        assert [m.text for m in sent] == ["Hello there, you"], "one message once the web caught up"
        streams.flush(turn, force=True)
        assert len(sent) == 1, "nothing more was read"
    streams(scenario, Ollama(Delta("Hello"), Delta(" there"), Delta(", you"), gate=gate), window=window)


def test_a_replys_end_takes_its_waiting_words_first(streams):
    window = Window(1)

    async def scenario(streams, sent):
        window.counted()
        turn = a_turn()
        await streams.reply(turn, [], None)
        await drained()  # the loop has held back what the stream read
        streams.flush(turn, force=True)  # before its Done, whatever the window
        assert [m.text for m in sent] == ["Hello there"]
        window.credit(1)
        assert len(sent) == 1, "what waited went with the forced flush"
    streams(scenario, Ollama(Delta("Hello"), Delta(" there")), window=window)
