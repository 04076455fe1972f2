"""A turn's requests to Ollama, made patiently (brain/asking.py), with fakes at its edges: Ollama's
streams answering from a script, the watch and the clock turned by the test, the bus as a list."""
import asyncio

from brain.asking import RETRY_DELAYS_S, Asker, Deadline
from brain.conversation import Conversation
from brain.jobs import Turn, Warm
from brain.ollama_client import NoAnswer, OllamaFailed, OllamaUnavailable, ToolsUnsupported
from brain.streams import Interrupted
from shared.config import Settings
from shared.messages import Prompt, Reach
from tests.brain.test_engine import Clock, Watch, drained
from tests.brain.test_replies import Bus, Streams, said
from tests.fake_app import TOOLS


def asked(streams, watch=None, clock=None, meanwhile=None, turn=None, **env):
    """Ask once, as a reply's round does: (the answer or the Interrupted it raised, what was said on
    the bus, the conversation, the deadline)."""
    turn = turn or Turn("s", "r1", "add milk", Prompt("sys", TOOLS), model="tiny", epoch=1)
    conversation, bus, deadline = Conversation(prompt=Prompt("sys", TOOLS)), Bus(), Deadline()
    asker = Asker(Settings.from_env(env), watch or Watch(), streams, bus, (clock or Clock()).call_later)

    async def main():
        beside = asyncio.ensure_future(meanwhile() if meanwhile else asyncio.sleep(0))
        try:
            return await asker.ask(turn, conversation, deadline, [{"role": "user", "content": "add milk"}])
        except Interrupted as e:
            return e
        finally:
            await beside
    return asyncio.run(main()), bus.said, conversation, deadline


def test_a_model_that_cannot_call_tools_is_asked_again_without_them_and_the_conversation_remembers():
    streams = Streams(ToolsUnsupported("no tools"), said("Hello."))
    answer, bus, conversation, _ = asked(streams)
    assert answer.text == "Hello." and streams.offered == [TOOLS, None] and conversation.tools_off
    assert bus == [("note", ("tiny cannot act on the app (it does not support tools); it can still talk about it.",), {})]


def test_ollama_refusing_before_a_byte_and_found_down_is_waited_for_and_asked_again_once_up():
    watch = Watch()
    watch.finds = Reach.DOWN

    async def back_soon():
        await drained()  # the turn waits for Ollama: it goes on only once the watch finds it up
        assert watch.reach is Reach.DOWN and watch.checks == 1, "the refusal had the watch check"
        watch.back()

    answer, bus, _, _ = asked(Streams(OllamaUnavailable("refused"), said("Here.")), watch=watch, meanwhile=back_soon)
    assert answer.text == "Here." and [kind for kind, _, _ in bus] == ["waiting"]
    assert bus[0][1][0].startswith("Waiting for Ollama: it is not running at ")


def test_a_request_dropped_while_ollama_is_up_is_asked_again_after_a_pause_without_a_word_to_the_page():
    watch, clock = Watch(), Clock()
    streams = Streams(NoAnswer("closed"), said("Here."))

    async def pause_over():
        await drained()  # the turn pauses on the clock, which only the test turns
        assert watch.reach is Reach.UP and watch.checks == 1
        assert len(streams.asked) == 1, "not asked again before the pause is over"
        clock.turn(RETRY_DELAYS_S[0])

    answer, bus, _, _ = asked(streams, watch=watch, clock=clock, meanwhile=pause_over)
    assert answer.text == "Here." and bus == []


def test_requests_dropped_after_every_pause_fail_the_turn_saying_ollama_answers_its_check_but_not_this():
    clock = Clock()
    streams = Streams(*[NoAnswer("closed")] * (len(RETRY_DELAYS_S) + 1))

    async def pauses_over():
        for pause in RETRY_DELAYS_S:
            await drained()
            clock.turn(pause)

    failed, bus, _, _ = asked(streams, clock=clock, meanwhile=pauses_over)
    assert isinstance(failed, Interrupted) and isinstance(failed.error, OllamaFailed) and bus == []
    assert str(failed.error).startswith("Ollama answers its health check but not this reply: 3 requests in a row")


def test_a_stop_while_ollama_is_down_ends_the_wait_with_nothing_asked():
    watch = Watch()
    watch.reach, watch.finds = Reach.DOWN, Reach.DOWN
    watch.up.clear()
    turn = Turn("s", "r1", "add milk", Prompt("sys", TOOLS), epoch=1)
    streams = Streams()

    async def stop():
        await drained()
        turn.control.cancel()

    answer, bus, _, deadline = asked(streams, watch=watch, turn=turn, meanwhile=stop)
    assert answer.text == "" and streams.asked == [] and [kind for kind, _, _ in bus] == ["waiting"]
    assert deadline.timer is None, "waiting for Ollama to start does not count against REPLY_MAX_S"


def test_from_the_first_request_a_reply_may_take_reply_max_s_then_it_is_hung_up_as_by_stop():
    clock = Clock()
    turn = Turn("s", "r1", "add milk", Prompt("sys", TOOLS), epoch=1)

    def slow(turn):
        clock.turn(59)
        assert not turn.control.cancelled
        clock.turn(1)
        return said("cut")

    answer, _, _, deadline = asked(Streams(slow), clock=clock, turn=turn, REPLY_MAX_S="60")
    assert answer.text == "cut" and deadline.passed and turn.control.cancelled


def test_a_warm_up_waits_for_nothing_and_is_not_made_while_ollama_is_not_up():
    watch = Watch()
    watch.reach = Reach.CHECKING
    conversation = Conversation(prompt=Prompt("sys", TOOLS))
    conversation.record(["added milk"], "milk")
    streams = Streams()
    streams.warmed = []

    async def warm(model, messages, offered, hangup):
        streams.warmed.append(messages)
    streams.warm = warm
    asker = Asker(Settings.from_env({}), watch, streams, Bus(), Clock().call_later)
    asyncio.run(asker.warm(Warm(session="s", epoch=1), conversation))
    assert streams.warmed == []
    watch.back()
    asyncio.run(asker.warm(Warm(session="s", epoch=1), conversation))
    assert len(streams.warmed) == 1
