"""Every bus message: round trips, topics, and refusals with a reason (shared/messages.py)."""
import pytest
from hypothesis import given, strategies as st

from shared.messages import (KINDS, Ack, BadFrame, Bye, CallTool, CancelPull, Chat, Chunk, Done, Failed, Grant, Heartbeat, Hello,
                             Interaction, Note, Pull, PullProgress, Regenerate, Reset, Resume, Revoke, Stats, Stop, Todo, TodoEvent,
                             ToolResult, Waiting, decode, encode, encode_valid)
from tests.strategies import any_text, as_json, json_values

SAMPLES = [
    Chat(worker="w1", session="s1", request="r1", text="hi <b>there</b> ✓"),
    Stop(worker="w1", session="s1", request="r9", reply="r1"),
    Reset(worker="w1", session="s1", request="r8"),
    Regenerate(worker="w1", session="s1", request="r7", reply="r1"),
    Resume(worker="w1", session="s1", request="r9", reply="r1", text="Once upon", seq=2, question="a story?"),
    TodoEvent(worker="w1", session="s1", request="r2", action="toggled", todo=Todo(1, "a", True),
              todos=[Todo(1, "a", True), Todo(2, "b", False)]),
    Hello(worker="w1", started=1.5, pid=42, model="llama3.2", parallel=4),
    Heartbeat(worker="w1", started=1.5, pid=42, model="llama3.2", parallel=4, busy=2, ollama="up",
              ollama_url="http://127.0.0.1:11434", version="0.12.0", models=["llama3.2:latest"]),
    Bye(worker="w1"),
    Ack(worker="w1", session="s1", request="r1", epoch=1733050000000001),
    Grant(worker="w1", session="s1", request="r1", epoch=1733050000000001),
    Revoke(worker="w1", session="s1", request="r1", epoch=0),
    Note(worker="w1", session="s1", request="r1", text="old turns set aside"),
    Waiting(worker="w1", session="s1", request="r1", reason="Ollama is not running"),
    Interaction(worker="w1", session="s1", request="r5", method="POST", path="/todos", trigger="todo-form",
                values={"title": "milk"}, status=200),
    CallTool(worker="w1", session="s1", request="r1", call="call_1", name="add_todo", arguments={"title": "milk"}),
    ToolResult(worker="w1", session="s1", request="r6", reply="r1", call="call_1", ok=True, text="Added #1 'milk'.",
               todos=[Todo(1, "milk", False)]),
    Chunk(worker="w1", session="s1", request="r1", seq=3, text="word"),
    Done(worker="w1", session="s1", request="r1", seq=4, text="all of it", stats=Stats(eval_count=4)),
    Failed(worker="w1", session="s1", request="r1", seq=2, code="ollama_down", error="down", text="par"),
    Pull(worker="w1", session="s1", request="p1", model="hf.co/bartowski/Qwen2.5-0.5B-GGUF:Q4_K_M"),
    CancelPull(worker="w1", session="s1", request="p2", pull="p1"),
    PullProgress(worker="w1", session="s1", request="p1", model="qwen2.5:0.5b", status="pulling 8d32a80bb199",
                 digest="sha256:8d32a80bb199", completed=420_557_117, total=841_114_235),
    PullProgress(worker="w1", session="s1", request="p1", model="nope", status="pulling manifest", outcome="failed",
                 error="There is no model 'nope' to pull"),
]


def test_every_kind_round_trips_with_a_topic_that_names_its_direction():
    assert {type(m) for m in SAMPLES} == set(KINDS)
    for msg in SAMPLES:
        frames = encode(msg)
        assert decode(frames) == msg
        to_brain = ("chat", "stop", "regenerate", "resume", "reset", "todo", "interaction", "tool_result", "grant", "revoke",
                    "pull", "cancel_pull")
        expected = f"brain.w1.{msg.kind}" if msg.kind in to_brain else f"web.{msg.kind}"
        assert frames[0].decode() == expected


@pytest.mark.parametrize("frames, reason", [
    ([b"web.ack"], "expected 2 frames"),
    ([b"web.ack", b"{"], "not a message"),
    ([b"web.ack", b"[]"], "not a message"),
    ([b"web.ack", b'{"v": 2, "kind": "ack"}'], "unsupported schema version 2"),
    ([b"web.x", b'{"v": 1, "kind": "x"}'], "unknown message kind 'x'"),
    ([b"web.ack", b'{"v": 1, "kind": "ack", "worker": "w", "session": "a b", "request": "r"}'], "invalid ack"),
    ([b"web.chunk", b'{"v": 1, "kind": "chunk", "worker": "w", "session": "s", "request": "r", "seq": -1, "text": ""}'],
     "invalid chunk"),
    ([b"web.done", encode(SAMPLES[5])[1]], "does not match"),
    ([b"web.ack", b"x" * 2000], "exceeds 1000"),
    ([b"brain.w.pull", b'{"v": 1, "kind": "pull", "worker": "w", "session": "s", "request": "r", "model": "a b<i>"}'],
     "invalid pull message: Expected `str` matching regex"),
    ([b"web.pull_progress", b'{"v": 1, "kind": "pull_progress", "worker": "w", "session": "s", "request": "r", '
                            b'"model": "m", "outcome": "maybe"}'], "invalid pull_progress"),
])
def test_bad_frames_are_refused_with_a_reason(frames, reason):
    with pytest.raises(BadFrame, match=reason):
        decode(frames, max_bytes=1000)


def test_the_tail_shows_an_interaction_on_one_line_with_its_path_and_trigger():
    from shared.tail import line
    payload = {"kind": "interaction", "worker": "w1", "session": "s" * 32, "request": "r1", "method": "POST",
               "path": "/lamp", "trigger": "lamp-dial", "values": {"brightness": "7"}, "status": 200}
    shown = line(0.0, "brain.w1.interaction", payload)
    assert "brain.w1.interaction" in shown and "method=POST path=/lamp trigger=lamp-dial" in shown and "\n" not in shown


def test_a_message_that_cannot_be_encoded_is_refused_with_a_reason():
    with pytest.raises(BadFrame, match="cannot be encoded"):
        encode_valid(Chat(worker="w1", session="s1", request="r1", text="hi \ud800"), 1 << 20)


def test_a_message_bigger_than_a_frame_is_refused_before_it_is_sent():
    big = TodoEvent(worker="w1", session="s1", request="r1", action="added", todo=Todo(1, "x" * 500, False),
                    todos=[Todo(i, "x" * 500, False) for i in range(10)])
    with pytest.raises(BadFrame, match="exceeds 4096"):
        encode_valid(big, 4096)


def test_a_message_the_other_side_would_refuse_is_refused_by_the_sender():
    "A field of the wrong type (an int for a bool, as SQLite gives it back) never leaves."
    with pytest.raises(BadFrame, match="invalid tool_result message"):
        encode_valid(ToolResult(worker="w1", session="s1", request="r1", reply="r0", call="c1", ok=1, text="t", todos=[]),
                     1 << 20)
    assert decode(encode_valid(SAMPLES[0], 1 << 20)) == SAMPLES[0]


KIND_NAMES = [k.__struct_config__.tag for k in KINDS]
FIELD_NAMES = ["v", "kind", "worker", "session", "request", "epoch", "text", "reply", "seq", "todos", "todo", "action",
               "ok", "call", "name", "arguments", "model", "values", "status", "started", "pid", "parallel", "stats"]


@st.composite
def payloads(draw):
    "JSON objects shaped like messages, with any values: mostly wrong, sometimes right."
    fields = draw(st.dictionaries(st.sampled_from(FIELD_NAMES) | any_text, json_values, max_size=8))
    if draw(st.booleans()):
        fields |= {"v": 1, "kind": draw(st.sampled_from(KIND_NAMES))}
    return as_json(fields).encode()


topics = st.sampled_from([b"web.ack", b"web.chunk", b"brain.w1.chat", b"brain..todo", b""]) | st.binary(max_size=40)


@pytest.mark.fuzz
@given(st.lists(topics | payloads() | st.binary(max_size=200), max_size=4))
def test_any_frames_decode_to_a_valid_message_or_are_refused_with_badframe(frames):
    try:
        msg = decode(frames, max_bytes=1000)
    except BadFrame as e:
        assert str(e)
    else:
        assert decode(encode_valid(msg, 1000), 1000) == msg, "what is taken can be passed on as it is"


@pytest.mark.fuzz
@given(any_text, any_text, st.integers(), st.booleans())
def test_any_message_is_encoded_for_the_other_side_or_refused_with_badframe(text, session, seq, ok):
    for msg in (Chat(worker="w1", session="s1", request="r1", text=text),
                Chunk(worker="w1", session=session, request="r1", seq=seq, text=text),
                ToolResult(worker="w1", session="s1", request="r1", reply="r0", call="c", ok=ok, text=text, todos=[])):
        try:
            frames = encode_valid(msg, 1 << 20)
        except BadFrame as e:
            assert str(e)
        else:
            assert decode(frames) == msg
