"""The brain's way out onto the bus (brain/outlet.py): a flow window closes at its size and what
waits goes out in order as credit comes; what the brain says about a reply names the reply and its
epoch, chunks are numbered, and none is bigger than a bus frame."""
import asyncio
from types import SimpleNamespace

from brain.jobs import Outgoing, Turn
from brain.ollama_client import ToolCall
from brain.outlet import ReplyBus, Window
from brain.tool_calls import ToolCalls
from shared.messages import CallTool, Chunk, Done, FailCode, Note, decode, encode


def test_a_window_closes_at_its_size_and_what_waits_goes_in_order_as_credit_comes():
    window, sent = Window(4), []
    for _ in range(4):
        window.counted()
    assert not window.open
    for key in ("a", "b", "a", "c"):
        window.when_open(hash(key), lambda key=key: (sent.append(key), window.counted()))
    window.credit(1)
    assert sent == ["a"], "one message's room: one sends, and the window closes again"
    window.credit(4)
    assert sent == ["a", "b", "c"], "one wait per key; the rest in order"
    window.credit(99)
    assert window.seen == window.sent == 7, "credit past what was sent counts for no more"


def outlet(sent: list, max_bytes: int = 1 << 20, window: Window | None = None) -> SimpleNamespace:
    "An outlet whose socket is the list `sent`."
    return SimpleNamespace(send=sent.append, max_bytes=max_bytes, window=window or Window(10**9))


def test_chunks_are_numbered_on_and_the_end_says_how_many_came_before_it():
    sent = []
    bus = ReplyBus(outlet(sent), "w1")
    turn = Turn("s1", "r1", "hi", epoch=4, out=Outgoing(2))  # a resumed reply: the web had chunks 0 and 1
    bus.chunk(turn, "Hel", "")
    bus.chunk(turn, "lo", "hm")
    bus.done(turn, "Hello")
    assert [(type(m), m.seq) for m in sent] == [(Chunk, 2), (Chunk, 3), (Done, 4)]
    assert all((m.worker, m.session, m.reply, m.epoch) == ("w1", "s1", "r1", 4) for m in sent)
    assert [decode(encode(m)) for m in sent] == sent, "each is a valid bus message"


# Nothing it says is bigger than a bus frame (BUS_MAX_FRAME_BYTES): the web would drop it, or the connection.

FRAME = 4096


def sizes(sent) -> list[int]:
    return [len(encode(m)[1]) for m in sent]


def test_a_reply_longer_than_a_frame_ends_with_the_start_that_fits_and_says_so():
    sent = []
    bus = ReplyBus(outlet(sent, FRAME), "w1")
    text = "Ünïcode \x01 and words. " * 1000  # some characters take 6 bytes in JSON
    bus.done(Turn("s1", "r1", "hi", epoch=4, out=Outgoing(3)), text, thinking="hm " * 100)
    [note, done] = sent
    assert isinstance(note, Note) and "BUS_MAX_FRAME_BYTES = 4,096 bytes" in note.text
    assert f"of {len(text):,} characters" in note.text and "conversation holds all of it" in note.text
    assert isinstance(done, Done) and done.seq == 3 and text.startswith(done.text) and len(done.text) > 1000
    assert f"first {len(done.text):,} of" in note.text
    assert max(sizes(sent)) <= FRAME and decode(encode(done), FRAME) == done


def test_a_reply_whose_thinking_is_too_long_ends_whole_without_it():
    "The web keeps the thinking its chunks brought when the end brings none; the text must arrive whole."
    sent = []
    ReplyBus(outlet(sent, FRAME), "w1").done(Turn("s1", "r1", "hi", epoch=4), "Short.", thinking="hm " * 2000)
    assert [(type(m), m.text, m.thinking) for m in sent] == [(Done, "Short.", "")]


def test_a_failure_with_more_text_than_a_frame_keeps_its_reason_and_says_it_was_cut():
    sent = []
    text = "x" * 10_000
    ReplyBus(outlet(sent, FRAME), "w1").failed(Turn("s1", "r1", "hi", epoch=4), FailCode.OLLAMA_FAILED,
                                                        "Ollama broke off.", text=text)
    [failed] = sent
    assert failed.code is FailCode.OLLAMA_FAILED and failed.error.startswith("Ollama broke off. This reply is longer")
    assert text.startswith(failed.text) and f"first {len(failed.text):,} of 10,000" in failed.error
    assert max(sizes(sent)) <= FRAME


def test_words_held_back_past_a_frame_go_as_several_chunks_numbered_on():
    sent = []
    bus = ReplyBus(outlet(sent, FRAME), "w1")
    turn = Turn("s1", "r1", "hi", epoch=4, out=Outgoing(5))
    text, thinking = "".join(f"word{i} " for i in range(2000)), "\x02" * 3000
    bus.chunk(turn, text, thinking)
    assert len(sent) > 2 and all(isinstance(m, Chunk) for m in sent) and max(sizes(sent)) <= FRAME
    assert "".join(m.text for m in sent) == text and "".join(m.thinking for m in sent) == thinking
    assert [m.seq for m in sent] == list(range(5, 5 + len(sent))) and turn.out.sent == 5 + len(sent)


def test_a_tool_call_too_big_for_a_frame_is_not_sent_and_the_model_is_told_why():
    sent = []
    bus = ReplyBus(outlet(sent, FRAME), "w1")
    turn = Turn("s1", "r1", "hi", epoch=4)
    refused = bus.call_tool(turn, "call_1", "add_todo", {"title": "milk " * 2000})
    assert refused.startswith("Error: the call's arguments are too large to send to the app (")
    assert "BUS_MAX_FRAME_BYTES" in refused and sent == []
    assert bus.call_tool(turn, "call_2", "add_todo", {"title": "milk"}) == ""
    assert [(type(m), m.call) for m in sent] == [(CallTool, "call_2")]


def test_a_reply_gets_the_answer_to_a_call_too_big_at_once_instead_of_waiting_for_the_web():
    sent = []

    async def round_():
        calls = ToolCalls(ReplyBus(outlet(sent, FRAME), "w1"), asyncio.get_running_loop(), timeout_s=30)
        turn, call = Turn("s1", "r1", "hi", epoch=4), ToolCall("add_todo", {"title": "milk " * 2000})
        return await asyncio.wait_for(calls.round(turn, [call], {}, None), 1)

    _, [(name, text)], _ = asyncio.run(round_())
    assert name == "add_todo" and text.startswith("Error: the call's arguments are too large") and sent == []
