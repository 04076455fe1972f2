"""What a tab's frame does (web/commands.py), with fakes for the bus, the tabs and the other pieces:
any frame is read at the door into a chat command, another control's fields, or refused with a
notice, never an exception; each chat control gives at most one bus message and the lines it
changes; any other control is told to the model as used; a message the bus refuses changes nothing
and the tab is told why."""
import json

import pytest
from hypothesis import given

from shared.config import Settings
from shared.messages import Chat, Prompt, Regenerate, Reset, Stop
from tests.web.test_chats import NowDB
from tests.web.test_sessions import Tabs
from tests.fake_bus import FakeBus
from tests.page import Tab
from tests.strategies import frames
from web.commands import ChatControls, Command, Commands, Control, ModelControls, Unreadable, Used, read_frame
from web.sessions import Sessions
from web.store import Store, Transcripts
from web.transcript import Line, Status

PROMPT = Prompt(system="You keep a list.")


class Heard:
    """The relay, the views, the pulls, the tool calls, the app events and the tab the frames come
    from: what each was handed, in order."""

    def __init__(self): self.heard = []
    def of(self, name): return [h[1:] for h in self.heard if h[0] == name]

    def _hear(self, name, *args, answer=None):
        self.heard.append((name, *args))
        return answer

    # the tab: its notices
    def send(self, html):
        page = Tab(ws=[])
        page._apply(html)
        self._hear("notice", self, page.notice)
    # the relay
    def append(self, session, *lines): self._hear("append", session, *lines)
    def show(self, session, line): self._hear("show", session, line)
    def transcript(self, session, lines): self._hear("transcript", session, lines)
    def fragments(self, session, html): self._hear("fragments", session, html)
    # the views
    def model_chosen(self, sid): return self._hear("model_chosen", sid, answer="<model_chosen>")
    def pull_panel(self, sid): return self._hear("pull_panel", sid, answer="<pull_panel>")
    # the pulls: the sessions whose panel changed
    def start(self, sid, model): return self._hear("start", sid, model, answer={sid})
    def cancel(self, sid, pull): return self._hear("cancel", sid, pull, answer=set())
    # the tool calls and the app events
    def undo(self, sid, client, call): self._hear("undo", sid, client, call)
    def tell(self, sid, lines): self._hear("tell", sid, lines)


@pytest.fixture
def world(tmp_path, request):
    marker = request.node.get_closest_marker("env")
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), **(marker.kwargs if marker else {})})
    bus, heard = FakeBus(), Heard()
    sessions = Sessions(Transcripts(Store(tmp_path), NowDB()), Tabs(), bus)
    commands = Commands(ChatControls(settings, sessions, bus, heard, PROMPT),
                        ModelControls(sessions, bus, heard, heard, heard), heard, heard)
    return commands, sessions, bus, heard


def do(world, control, value, sid="s"):
    "A frame of the tab (`heard`)."
    commands, _, _, heard = world
    commands.do(sid, heard, Command(control, value))


def notices(heard):
    return [text for client, text in heard.of("notice")]


def ended(heard):
    "The reply lines shown as they ended: (reply, status, note)."
    return [(line.reply, line.status, line.note) for _, line in heard.of("show")]


def lines(sessions, sid="s"):
    return [(l.reply, l.role, l.status) for l in sessions.get(sid).lines.values()]


def test_every_chat_control_has_its_command(world):
    commands, *_ = world
    assert set(commands.handlers) == set(Control)


def test_a_message_is_one_chat_with_the_sessions_model_and_its_two_lines(world):
    commands, sessions, bus, heard = world
    sessions.choose("s", "qwen3:4b")
    do(world, Control.MSG, "  hello  ")
    [chat] = bus.sent
    assert chat == Chat(session="s", id=chat.id, reply=chat.reply, text="hello", model="qwen3:4b", prompt=PROMPT)
    assert lines(sessions) == [(chat.reply, "user", Status.DONE), (chat.reply, "reply", Status.THINKING)]
    assert sessions.get("s").reply(chat.reply).asks == chat.reply and chat.id != chat.reply
    assert [h[0] for h in heard.heard] == ["append", "notice"] and notices(heard) == [""]
    bus.no_brain = True
    do(world, Control.MSG, "anyone?")
    assert lines(sessions)[-1][2] == Status.QUEUED, "no brain has it yet"


@pytest.mark.env(MAX_CHAT_CHARS="10", SESSION_MAX_REPLIES="1")
def test_an_empty_a_long_or_one_message_too_many_is_not_sent(world):
    commands, sessions, bus, heard = world
    do(world, Control.MSG, "   ")
    do(world, Control.MSG, "x" * 11)
    do(world, Control.MSG, "one")
    do(world, Control.MSG, "two")
    assert [m.text for m in bus.sent] == ["one"]
    assert notices(heard) == [
        "That message is 11 characters long; the limit is 10 (MAX_CHAT_CHARS). Nothing was sent.", "",
        "1 replies are on their way already (SESSION_MAX_REPLIES); send this once one has come, or press Stop. "
        "Nothing was sent."]


def test_a_message_the_bus_refuses_changes_nothing_and_the_tab_is_told(world):
    commands, sessions, bus, heard = world
    bus.refuse = "100 messages of this session are waiting for a brain already"
    for control, value in ((Control.MSG, "hello"), (Control.RESET, "")):
        do(world, control, value)
    assert lines(sessions) == [] and bus.sent == [] and not heard.of("transcript")
    assert notices(heard) == ["Not sent: 100 messages of this session are waiting for a brain already."] * 2


def test_another_control_is_told_to_the_model_as_used_once(world):
    commands, _, bus, heard = world
    commands.do("s", heard, Used({"lamp": "on", "HEADERS": {"HX-Trigger": "lamp-form"}}))
    assert heard.heard == [("tell", "s", ["used #lamp-form (WS /ws lamp='on')"])] and bus.sent == []


def test_stop_withdraws_what_no_brain_has_taken_else_asks_the_brain_and_an_ended_reply_is_left(world):
    commands, sessions, bus, heard = world
    bus.no_brain = True
    do(world, Control.MSG, "one")
    waiting = bus.sent[-1].reply
    do(world, Control.STOP, waiting)
    assert ended(heard) == [(waiting, Status.STOPPED, "Stopped before it was sent.")] and bus.pending == {}
    bus.no_brain = False
    do(world, Control.MSG, "two")
    going = bus.sent[-1].reply
    do(world, Control.STOP, going)
    do(world, Control.STOP, waiting)  # stopped already
    do(world, Control.STOP, "unknown")
    assert [(m.session, m.reply) for m in bus.sent if isinstance(m, Stop)] == [("s", going)] and len(ended(heard)) == 1
    do(world, Control.MSG, "three")
    orphan = bus.sent[-1].reply
    bus.gone.add(orphan)  # its brain is gone, or its end was lost: no Stop would reach anyone
    do(world, Control.STOP, orphan)
    assert ended(heard)[-1][:2] == (orphan, Status.STOPPED) and "gone away" in ended(heard)[-1][2]
    assert [m.reply for m in bus.sent if isinstance(m, Stop)] == [going], "ended here"


def test_retry_asks_the_question_again_in_a_new_line_or_makes_the_newest_comment_again(world):
    commands, sessions, bus, heard = world
    sessions.add("s", Line(reply="c1", role="reply", status=Status.FAILED, note="boom"))
    do(world, Control.MSG, "question")
    asked = bus.sent[-1].reply
    sessions.get("s").reply(asked).status = Status.INTERRUPTED
    do(world, Control.RETRY, "c1")
    do(world, Control.RETRY, "unknown")
    assert notices(heard)[-2:] == ["Only the newest comment can be asked again.", "There is nothing to retry there."]
    do(world, Control.RETRY, asked)
    again = bus.sent[-1]
    assert again == Chat(session="s", id=again.id, reply=again.reply, text="question", retry=True, prompt=PROMPT)
    assert ended(heard) == [(asked, Status.RETRIED, "")]
    assert lines(sessions)[-1] == (again.reply, "reply", Status.THINKING)
    assert sessions.get("s").reply(again.reply).asks == asked, "it answers the same question"
    sessions.get("s").reply(again.reply).status = Status.FAILED
    sessions.add("s", Line(reply="c2", role="reply", status=Status.FAILED))
    do(world, Control.RETRY, "c2")
    assert isinstance(bus.sent[-1], Regenerate) and bus.sent[-1].reply not in ("c2", again.reply)


def test_regenerate_answers_the_newest_finished_reply_again_in_the_same_line(world):
    commands, sessions, bus, heard = world
    do(world, Control.MSG, "one")
    first = bus.sent[-1].reply
    do(world, Control.REGENERATE, first)
    assert notices(heard)[-1] == "Only the newest finished reply can be regenerated." and len(bus.sent) == 1
    line = sessions.get("s").reply(first)
    line.status, line.text, line.seq = Status.DONE, "Hi", 3
    do(world, Control.REGENERATE, first)
    assert bus.sent[-1] == Regenerate(session="s", id=bus.sent[-1].id, reply=first, prompt=PROMPT)
    assert (line.status, line.text, line.seq) == (Status.THINKING, "", 0) and heard.heard[-1][0] == "show"


def test_reset_empties_the_transcript_in_every_tab(world):
    commands, sessions, bus, heard = world
    do(world, Control.MSG, "one")
    do(world, Control.RESET, "all")
    assert isinstance(bus.sent[-1], Reset) and lines(sessions) == [] and heard.of("transcript") == [("s", [])]
    assert sessions.was_reset(bus.sent[0].reply)


def test_a_model_is_chosen_for_the_session_and_every_tab_of_it_sees_what_follows(world):
    commands, sessions, bus, heard = world
    do(world, Control.MODEL, "llama3.2; rm -rf /")
    do(world, Control.MODEL, "llama3.2")
    do(world, Control.MODEL, "qwen3:4b")
    assert sessions.get("s").model == "qwen3:4b" and heard.of("model_chosen") == [("s",), ("s",)]
    assert heard.of("fragments") == [("s", "<model_chosen>")] * 2
    assert notices(heard) == ["That is not a model name.", "", "The model 'qwen3:4b' is not pulled. Run "
                              "`ollama pull qwen3:4b`, or press Pull."]
    assert bus.sent == [], "a choice is the web's: the next message carries it"


def test_pull_starts_or_joins_a_pull_of_a_model_not_pulled_and_cancel_cancels_it(world):
    commands, _, bus, heard = world
    do(world, Control.PULL, "bad name!")
    do(world, Control.PULL, "mistral\n")  # "$" would let it by, as a model other than mistral's pull
    do(world, Control.PULL, "llama3.2")
    do(world, Control.PULL, "mistral")
    do(world, Control.CANCEL_PULL, "p1")
    assert heard.of("start") == [("s", "mistral")] and heard.of("cancel") == [("s", "p1")]
    assert heard.of("pull_panel") == [("s",)], "the panel of each session whose pulls changed, shown once"
    assert notices(heard) == ["That is not a model name."] * 2 + ["The model 'llama3.2' is pulled already.", ""]


def test_undo_is_the_tool_calls(world):
    commands, _, _, heard = world
    do(world, Control.UNDO, "call_1")
    assert heard.of("undo") == [("s", heard, "call_1")]


def test_each_control_gives_at_most_one_bus_message(world):
    commands, _, bus, _ = world
    for control in Control:
        do(world, control, "x")
    assert [type(m) for m in bus.sent] == [Chat, Reset], "a stop, retry or regenerate of no reply sends nothing"


# The door: each frame read once.

def read(**fields):
    return read_frame(json.dumps(fields), 1000)


def test_a_lone_surrogate_is_refused():
    with pytest.raises(Unreadable, match="not valid JSON text"):
        read_frame('{"msg": "hi \\ud800"}', 1000)


def test_a_frame_too_long_is_refused_before_it_is_read():
    with pytest.raises(Unreadable, match="WS_MAX_FRAME_CHARS"):
        read_frame('{"msg": "' + "x" * 2000 + '"}', 1000)


@pytest.mark.parametrize("text", [None, "[1, 2]", '"msg"', "not json", "[" * 5000 + "]" * 5000])
def test_what_holds_no_form_fields_is_refused_with_a_notice_that_nothing_was_sent(text):
    with pytest.raises(Unreadable, match=r"^That message could not be read \(.*\)\. Nothing was sent\.$"):
        read_frame(text, 100_000)


def test_each_chat_control_is_a_command_with_its_value():
    for control in Control:
        assert read(**{control.value: "x1", "HEADERS": {"HX-Trigger": "chat-form"}}) == Command(control, "x1")
    assert read(msg="") == Command(Control.MSG, ""), "an empty message is the chat's to ignore"


def test_a_frame_naming_several_controls_is_the_first_in_the_tables_order():
    assert read(cancel_pull="p1", stop="r1") == Command(Control.STOP, "r1")
    assert read(model="qwen3:4b", msg="hi") == Command(Control.MSG, "hi")


@pytest.mark.parametrize("value", [5, None, ["hi"], {"text": "hi"}, True])
def test_a_chat_control_whose_value_is_no_text_is_refused(value):
    with pytest.raises(Unreadable) as refused:
        read(msg=value)
    assert str(refused.value) == "That message could not be read; nothing was sent."
    with pytest.raises(Unreadable):
        read(msg=value, stop="r1")  # the first control decides, not the first one that is text


def test_any_other_control_is_its_fields_for_the_model_to_hear_of():
    fields = {"lamp": "on", "HEADERS": {"HX-Trigger": "lamp-form"}}
    assert read(**fields) == Used(fields)
    assert read_frame("{}", 10) == Used({})


@pytest.mark.fuzz
@given(frames)
def test_any_frame_is_a_command_other_fields_or_refused_with_a_reason(frame):
    try:
        read_ = read_frame(frame, 65536)
    except Unreadable as e:
        assert str(e).endswith(("Nothing was sent.", "nothing was sent."))
    else:
        match read_:
            case Command(control, value):
                assert isinstance(control, Control) and isinstance(value, str)
            case Used(fields):
                assert isinstance(fields, dict) and not any(c.value in fields for c in Control)
            case _:
                pytest.fail(f"not a frame: {read_!r}")
