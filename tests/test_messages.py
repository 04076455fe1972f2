"""Every bus message: round trips, topics, and refusals with a reason (shared/messages.py)."""
import pytest

from shared.messages import (KINDS, Ack, BadFrame, Bye, CallTool, CancelPull, Chat, Chunk, Done, Failed, Grant, Heartbeat, Hello,
                             Interaction, Note, Pull, PullProgress, Regenerate, Reset, Revoke, Stats, Stop, Todo, TodoEvent,
                             ToolResult, Waiting, decode, encode)

SAMPLES = [
    Chat(worker="w1", session="s1", request="r1", text="hi <b>there</b> ✓"),
    Stop(worker="w1", session="s1", request="r9", reply="r1"),
    Reset(worker="w1", session="s1", request="r8"),
    Regenerate(worker="w1", session="s1", request="r7", reply="r1"),
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
        to_brain = ("chat", "stop", "regenerate", "reset", "todo", "interaction", "tool_result", "grant", "revoke",
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
