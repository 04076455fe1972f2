"""Every bus message: round trips, topics, and refusals with a reason (shared/messages.py)."""
import pytest
from hypothesis import given, strategies as st

from shared.messages import (KINDS, Ack, AppEvent, BadFrame, Bye, CallTool, CancelPull, Chat, Chunk, Credit, Done, Failed,
                             FailCode, Grant,
                             Heartbeat, Hello, Note, Prompt, Pull, PullOutcome, PullProgress, Reach, Regenerate, Reset, Resume,
                             Revoke, SCHEMA_VERSION, Stats, Stop, ToBrain, ToolResult, Waiting, decode, encode, encode_valid)
from tests.strategies import any_text, as_json, json_values

PROMPT = Prompt("You are the assistant inside a shelf app.",
                [{"type": "function", "function": {"name": "add_item", "description": "Add an item.",
                                                   "parameters": {"type": "object", "properties": {
                                                       "title": {"type": "string"}}, "required": ["title"]}}}])
SAMPLES = [
    Chat(worker="w1", session="s1", id="m1", reply="r1", text="hi <b>there</b> ✓", prompt=PROMPT),
    Stop(worker="w1", session="s1", id="m9", reply="r1"),
    Reset(worker="w1", session="s1", id="m8"),
    Regenerate(worker="w1", session="s1", id="m7", reply="r1", prompt=PROMPT),
    Resume(worker="w1", session="s1", id="m9", reply="r1", text="Once upon", prompt=PROMPT, seq=2, question="a story?"),
    AppEvent(worker="w1", session="s1", id="m2", lines=["marked #1 'a' done"], prompt=PROMPT,
             state="The shelf now:\n- [x] #1 a\n- [ ] #2 b", comment=True),
    Hello(worker="w1", started=1.5, pid=42, model="llama3.2", parallel=4),
    Heartbeat(worker="w1", started=1.5, pid=42, model="llama3.2", parallel=4, busy=2, ollama=Reach.UP,
              ollama_url="http://127.0.0.1:11434", version="0.12.0", models=["llama3.2:latest"], sent=1234),
    Bye(worker="w1"),
    Ack(worker="w1", session="s1", message="m1", reply="r1", epoch=1733050000000001),
    Grant(worker="w1", session="s1", message="m1", epoch=1733050000000001),
    Revoke(worker="w1", session="s1", message="", epoch=0),
    Credit(worker="w1", seen=1235),
    Note(worker="w1", session="s1", reply="r1", text="old turns set aside"),
    Waiting(worker="w1", session="s1", reply="r1", reason="Ollama is not running"),
    CallTool(worker="w1", session="s1", reply="r1", call="call_1", name="add_item", arguments={"title": "milk"}),
    ToolResult(worker="w1", session="s1", id="m6", reply="r1", call="call_1", ok=True,
               text="Added #1 'milk'. The shelf is now: #1 milk.", state="The shelf now:\n- [ ] #1 milk"),
    Chunk(worker="w1", session="s1", reply="r1", seq=3, text="word"),
    Done(worker="w1", session="s1", reply="r1", seq=4, text="all of it", stats=Stats(eval_count=4)),
    Failed(worker="w1", session="s1", reply="r1", seq=2, code=FailCode.OLLAMA_DOWN, error="down", text="par"),
    Pull(worker="w1", session="s1", id="p1", model="hf.co/bartowski/Qwen2.5-0.5B-GGUF:Q4_K_M"),
    CancelPull(worker="w1", session="s1", id="p2", pull="p1"),
    PullProgress(worker="w1", session="s1", pull="p1", model="qwen2.5:0.5b", status="pulling 8d32a80bb199",
                 digest="sha256:8d32a80bb199", completed=420_557_117, total=841_114_235),
    PullProgress(worker="w1", session="s1", pull="p1", model="nope", status="pulling manifest",
                 outcome=PullOutcome.FAILED, error="There is no model 'nope' to pull"),
]


def test_every_kind_round_trips_with_a_topic_that_names_its_direction():
    assert {type(m) for m in SAMPLES} == set(KINDS)
    for msg in SAMPLES:
        frames = encode(msg)
        assert decode(frames) == msg
        to_brain = ("chat", "stop", "regenerate", "resume", "reset", "app_event", "tool_result", "grant", "revoke",
                    "credit", "pull", "cancel_pull")
        expected = f"brain.w1.{msg.kind}" if msg.kind in to_brain else f"web.{msg.kind}"
        assert frames[0].decode() == expected


@pytest.mark.parametrize("frames, reason", [
    ([b"web.ack"], "expected 2 frames"),
    ([b"web.ack", b"{"], "not a message"),
    ([b"web.ack", b"[]"], "not a message"),
    ([b"web.ack", b'{"v": 1, "kind": "ack"}'], "unsupported schema version 1"),
    ([b"web.x", b'{"v": 2, "kind": "x"}'], "unknown message kind 'x'"),
    ([b"web.ack", b'{"v": 2, "kind": "ack", "worker": "w", "session": "a b", "message": "m"}'], "invalid ack"),
    ([b"web.ack", b'{"v": 2, "kind": "ack", "worker": "w", "session": "s", "message": ""}'], "invalid ack"),
    ([b"web.chunk", b'{"v": 2, "kind": "chunk", "worker": "w", "session": "s", "reply": "r", "seq": -1, "text": ""}'],
     "invalid chunk"),
    ([b"web.failed", b'{"v": 2, "kind": "failed", "worker": "w", "session": "s", "reply": "r", "seq": 0, '
                     b'"code": "whatever", "error": "e"}'], "invalid failed"),
    ([b"brain.w.app_event", b'{"v": 2, "kind": "app_event", "worker": "w", "session": "s", "id": "m", '
                            b'"lines": ["x"]}'], "invalid app_event"),
    ([b"web.done", encode(SAMPLES[5])[1]], "does not match"),
    ([b"web.ack", b"x" * 2000], "exceeds 1000"),
    ([b"brain.w.pull", b'{"v": 2, "kind": "pull", "worker": "w", "session": "s", "id": "p", "model": "a b<i>"}'],
     "invalid pull message: Expected `str` matching regex"),
    ([b"web.pull_progress", b'{"v": 2, "kind": "pull_progress", "worker": "w", "session": "s", "pull": "p", '
                            b'"model": "m", "outcome": "maybe"}'], "invalid pull_progress"),
])
def test_bad_frames_are_refused_with_a_reason(frames, reason):
    with pytest.raises(BadFrame, match=reason):
        decode(frames, max_bytes=1000)


@pytest.mark.parametrize("field, value", [("session", "s1\n"), ("id", "p1\n"), ("model", "mistral\n")])
def test_an_id_or_a_model_name_with_a_newline_at_its_end_is_refused(field, value):
    "A regex's \"$\" matches before a last newline: the web puts ids into HTML ids, and \"mistral\\n\" is no model."
    fields = {"worker": "w", "session": "s1", "id": "p1", "model": "mistral"} | {field: value}
    with pytest.raises(BadFrame, match=f"invalid pull message: Expected `str` matching regex.*`\\$.{field}`"):
        encode_valid(Pull(**fields), 1 << 20)


def test_a_session_verdict_may_name_no_message_but_a_claim_always_names_one():
    assert decode(encode(Revoke(worker="w1", session="s1", message="", epoch=3))).message == ""
    with pytest.raises(BadFrame, match="invalid ack"):
        encode_valid(Ack(worker="w1", session="s1", message="", epoch=3), 1 << 20)


def test_only_the_messages_that_ask_for_a_reply_name_the_reply_they_make():
    makes = {msg.kind: msg.makes for msg in SAMPLES if isinstance(msg, ToBrain)}
    assert makes == {"chat": "r1", "regenerate": "r1", "resume": "r1", "stop": "", "reset": "", "app_event": "",
                     "tool_result": "", "pull": "", "cancel_pull": ""}, "a Stop or a ToolResult names a reply it does not make"


def test_the_tail_shows_an_app_event_on_one_line_with_what_the_user_did():
    from shared.tail import line
    payload = {"kind": "app_event", "worker": "w1", "session": "s" * 32, "id": "m1", "lines": ["added #3 'milk'"],
               "state": "The shelf now:\n- [ ] #3 milk", "comment": True, "prompt": {"system": "S", "tools": []}}
    shown = line(0.0, "brain.w1.app_event", payload)
    assert "brain.w1.app_event" in shown and "lines=[\"added #3 'milk'\"]" in shown and "comment=True" in shown
    assert "\n" not in shown


def test_a_message_that_cannot_be_encoded_is_refused_with_a_reason():
    with pytest.raises(BadFrame, match="cannot be encoded"):
        encode_valid(Chat(worker="w1", session="s1", id="m1", reply="r1", text="hi \ud800", prompt=PROMPT), 1 << 20)


def test_a_message_bigger_than_a_frame_is_refused_before_it_is_sent():
    big = AppEvent(worker="w1", session="s1", id="m1", lines=["added #10 '" + "x" * 500 + "'"], prompt=PROMPT,
                   state="The shelf now:\n" + "\n".join(f"- [ ] #{i} " + "x" * 500 for i in range(10)))
    with pytest.raises(BadFrame, match="exceeds 4096"):
        encode_valid(big, 4096)


def test_a_message_the_other_side_would_refuse_is_refused_by_the_sender():
    "A field of the wrong type (an int for a bool, as SQLite gives it back) never leaves."
    with pytest.raises(BadFrame, match="invalid tool_result message"):
        encode_valid(ToolResult(worker="w1", session="s1", id="m1", reply="r0", call="c1", ok=1, text="t"), 1 << 20)
    assert decode(encode_valid(SAMPLES[0], 1 << 20)) == SAMPLES[0]


KIND_NAMES = [k.__struct_config__.tag for k in KINDS]
FIELD_NAMES = ["v", "kind", "worker", "session", "id", "message", "epoch", "text", "reply", "seq", "lines", "state",
               "comment", "prompt", "ok", "call", "name", "arguments", "model", "pull", "outcome", "code", "status",
               "started", "pid", "parallel", "stats"]


@st.composite
def payloads(draw):
    "JSON objects shaped like messages, with any values: mostly wrong, sometimes right."
    fields = draw(st.dictionaries(st.sampled_from(FIELD_NAMES) | any_text, json_values, max_size=8))
    if draw(st.booleans()):
        fields |= {"v": SCHEMA_VERSION, "kind": draw(st.sampled_from(KIND_NAMES))}
    return as_json(fields).encode()


topics = st.sampled_from([b"web.ack", b"web.chunk", b"brain.w1.chat", b"brain..app_event", b""]) | st.binary(max_size=40)


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
    for msg in (Chat(worker="w1", session="s1", id="m1", reply="r1", text=text, prompt=Prompt(text)),
                Chunk(worker="w1", session=session, reply="r1", seq=seq, text=text),
                AppEvent(worker="w1", session="s1", id="m1", lines=[text], state=text, prompt=PROMPT),
                ToolResult(worker="w1", session="s1", id="m1", reply="r0", call="c", ok=ok, text=text, state=text)):
        try:
            frames = encode_valid(msg, 1 << 20)
        except BadFrame as e:
            assert str(e)
        else:
            assert decode(frames) == msg
