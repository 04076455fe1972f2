"""Pure functions: the message schema, configuration parsing, the conversation's context."""
import pytest

from brain.conversation import Conversation
from shared.config import Settings, ollama_url
from shared.messages import (KINDS, Ack, BadFrame, Bye, Chat, Chunk, Done, Failed, Heartbeat, Hello, Note, Regenerate, Reset, Stats, Stop, Todo,
                             TodoEvent, decode, encode)

SAMPLES = [
    Chat(worker="w1", session="s1", request="r1", text="hi <b>there</b> ✓"),
    Stop(worker="w1", session="s1", request="r9", reply="r1"),
    Reset(worker="w1", session="s1", request="r8"),
    Regenerate(worker="w1", session="s1", request="r7", reply="r1"),
    TodoEvent(worker="w1", session="s1", request="r2", action="toggled", todo=Todo(1, "a", True),
              todos=[Todo(1, "a", True), Todo(2, "b", False)]),
    Hello(worker="w1", started=1.5, pid=42, model="llama3.2", parallel=4),
    Heartbeat(worker="w1", started=1.5, pid=42, model="llama3.2", parallel=4, busy=2),
    Bye(worker="w1"),
    Ack(worker="w1", session="s1", request="r1"),
    Note(worker="w1", session="s1", request="r1", text="old turns set aside"),
    Chunk(worker="w1", session="s1", request="r1", seq=3, text="word"),
    Done(worker="w1", session="s1", request="r1", seq=4, text="all of it", stats=Stats(eval_count=4)),
    Failed(worker="w1", session="s1", request="r1", seq=2, code="ollama_down", error="down", text="par"),
]


def test_every_kind_round_trips_with_a_topic_that_names_its_direction():
    assert {type(m) for m in SAMPLES} == set(KINDS)
    for msg in SAMPLES:
        frames = encode(msg)
        assert decode(frames) == msg
        expected = f"brain.w1.{msg.kind}" if msg.kind in ("chat", "stop", "regenerate", "reset", "todo") else f"web.{msg.kind}"
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
])
def test_bad_frames_are_refused_with_a_reason(frames, reason):
    with pytest.raises(BadFrame, match=reason):
        decode(frames, max_bytes=1000)


@pytest.mark.parametrize("raw, url", [
    ("", "http://127.0.0.1:11434"),
    ("127.0.0.1:11434", "http://127.0.0.1:11434"),
    ("0.0.0.0", "http://0.0.0.0:11434"),
    (":9000", "http://127.0.0.1:9000"),
    ("http://gpu-box", "http://gpu-box:80"),
    ("https://gpu-box/", "https://gpu-box:443"),
    ("http://gpu-box:8080/ollama", "http://gpu-box:8080/ollama"),
    ("[::1]:11434", "http://[::1]:11434"),
])
def test_ollama_host_is_read_as_ollama_reads_it(raw, url):
    assert ollama_url(raw) == url


def test_settings_have_loopback_defaults_and_refuse_nonsense(tmp_path):
    s = Settings.from_env({})
    assert s.web_host == "127.0.0.1" and "127.0.0.1" in s.bus_pub and "127.0.0.1" in s.bus_sub
    assert s.model == "llama3.2" and "attitude" in s.system_prompt
    (tmp_path / "persona.txt").write_text("Be terse.\n")
    assert Settings.from_env({"SYSTEM_PROMPT": "x", "SYSTEM_PROMPT_FILE": str(tmp_path / "persona.txt")}
                             ).system_prompt == "Be terse."
    with pytest.raises(SystemExit, match="BRAIN_PARALLEL"):
        Settings.from_env({"BRAIN_PARALLEL": "lots"})


def test_conversation_folds_events_into_one_turn_and_keeps_the_list_in_the_system_message():
    c = Conversation()
    milk, eggs = Todo(1, "milk", False), Todo(2, "eggs", False)
    c.note(TodoEvent(session="s", request="a", action="added", todo=milk, todos=[milk]))
    c.note(TodoEvent(session="s", request="b", action="added", todo=eggs, todos=[milk, eggs]))
    assert c.begin_turn(None)
    assert not c.begin_turn(None), "nothing new: no comment"
    done = Todo(1, "milk", True)
    c.note(TodoEvent(session="s", request="c", action="toggled", todo=done, todos=[done, eggs]))
    assert c.begin_turn("what's left?")
    system, *turns = c.messages("PERSONA")
    assert system["content"].startswith("PERSONA") and "- [x] milk\n- [ ] eggs" in system["content"]
    assert turns == [
        {"role": "user", "content": "[app] The user added the todo 'milk'; then added the todo 'eggs'."},
        {"role": "user", "content": "[app] The user marked 'milk' as done."},
        {"role": "user", "content": "what's left?"},
    ]


def test_conversation_sets_old_turns_aside_to_fit_the_window_keeping_instructions_and_list():
    c = Conversation(todos=[Todo(1, "water plants", False)])
    for i in range(60):
        c.begin_turn(f"question {i} " + "x" * 90)
        c.add_reply(f"answer {i} " + "y" * 90)
    c.begin_turn("the newest question")
    budget = 600
    set_aside = c.fit("PERSONA", budget)
    messages = c.messages("PERSONA")
    assert set_aside > 0 and c.estimate(messages) <= 0.6 * budget
    assert messages[0]["role"] == "system" and "PERSONA" in messages[0]["content"]
    assert "water plants" in messages[0]["content"]
    assert messages[1]["role"] == "user" and messages[-1]["content"] == "the newest question"
    assert c.fit("PERSONA", budget) == 0, "nothing more to set aside until the window fills again"


def test_the_token_estimate_only_ever_rises_to_what_ollama_counted():
    c = Conversation()
    messages = [{"role": "user", "content": "z" * 1000}]
    c.learn(messages, prompt_eval_count=504)  # 0.5 tokens a character
    assert c.tokens_per_char == 0.5
    c.learn(messages, prompt_eval_count=104)  # a cached prefix: Ollama counted only the new part
    assert c.tokens_per_char == 0.5
