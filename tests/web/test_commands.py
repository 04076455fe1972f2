"""What a tab's frame does (web/commands.py), with fakes for the bus, the tabs and the other pieces:
each chat control gives at most one bus message and the lines it changes; any other control is
told to the model as used; a message the bus refuses changes nothing and the tab is told why."""
import pytest

from shared.config import Settings
from shared.messages import Chat, Prompt, Regenerate, Reset, Stop
from tests.web.test_chats import NowDB
from tests.web.test_sessions import Tabs
from tests.fake_bus import FakeBus
from web.commands import ChatControls, Commands, ModelControls
from web.frames import Command, Control, Used
from web.sessions import Sessions
from web.store import Store, Transcripts
from web.transcript import Line, Status

PROMPT = Prompt(system="You keep a list.")


class Heard:
    "The relay, the views, the pulls, the tool calls and the app events: what each was handed, in order."

    def __init__(self): self.heard = []
    def of(self, name): return [h[1:] for h in self.heard if h[0] == name]

    def _hear(self, name, *args, answer=None):
        self.heard.append((name, *args))
        return answer

    # the relay
    def append(self, session, *lines): self._hear("append", session, *lines)
    def show(self, session, line): self._hear("show", session, line)
    def notice(self, client, text): self._hear("notice", client, text)
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


class Replies:
    def __init__(self): self.ended = []

    def end(self, line, move, note):
        line.move(move, note)
        self.ended.append((line.reply, line.status, note))


@pytest.fixture
def world(tmp_path, request):
    marker = request.node.get_closest_marker("env")
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), **(marker.kwargs if marker else {})})
    bus, heard, replies = FakeBus(), Heard(), Replies()
    sessions = Sessions(Transcripts(Store(tmp_path), NowDB()), Tabs(), bus)
    commands = Commands(ChatControls(settings, sessions, bus, heard, replies, PROMPT),
                        ModelControls(sessions, bus, heard, heard, heard), heard, heard, heard)
    return commands, sessions, bus, heard, replies


CLIENT = object()


def do(commands, control, value, sid="s"):
    commands.do(sid, CLIENT, Command(control, value))


def notices(heard):
    return [text for client, text in heard.of("notice")]


def lines(sessions, sid="s"):
    return [(l.reply, l.role, l.status) for l in sessions.get(sid).lines.values()]


def test_every_chat_control_has_its_command(world):
    commands, *_ = world
    assert set(commands.handlers) == set(Control)


def test_a_message_is_one_chat_with_the_sessions_model_and_its_two_lines(world):
    commands, sessions, bus, heard, _ = world
    sessions.choose("s", "qwen3:4b")
    do(commands, Control.MSG, "  hello  ")
    [chat] = bus.sent
    assert chat == Chat(session="s", id=chat.id, reply=chat.reply, text="hello", model="qwen3:4b", prompt=PROMPT)
    assert lines(sessions) == [(chat.reply, "user", Status.DONE), (chat.reply, "reply", Status.THINKING)]
    assert sessions.get("s").reply(chat.reply).asks == chat.reply and chat.id != chat.reply
    assert [h[0] for h in heard.heard] == ["append", "notice"] and notices(heard) == [""]
    bus.no_brain = True
    do(commands, Control.MSG, "anyone?")
    assert lines(sessions)[-1][2] == Status.QUEUED, "no brain has it yet"


@pytest.mark.env(MAX_CHAT_CHARS="10", SESSION_MAX_REPLIES="1")
def test_an_empty_a_long_or_one_message_too_many_is_not_sent(world):
    commands, sessions, bus, heard, _ = world
    do(commands, Control.MSG, "   ")
    do(commands, Control.MSG, "x" * 11)
    do(commands, Control.MSG, "one")
    do(commands, Control.MSG, "two")
    assert [m.text for m in bus.sent] == ["one"]
    assert notices(heard) == [
        "That message is 11 characters long; the limit is 10 (MAX_CHAT_CHARS). Nothing was sent.", "",
        "1 replies are on their way already (SESSION_MAX_REPLIES); send this once one has come, or press Stop. "
        "Nothing was sent."]


def test_a_message_the_bus_refuses_changes_nothing_and_the_tab_is_told(world):
    commands, sessions, bus, heard, _ = world
    bus.refuse = "100 messages of this session are waiting for a brain already"
    for control, value in ((Control.MSG, "hello"), (Control.RESET, "")):
        do(commands, control, value)
    assert lines(sessions) == [] and bus.sent == [] and not heard.of("transcript")
    assert notices(heard) == ["Not sent: 100 messages of this session are waiting for a brain already."] * 2


def test_another_control_is_told_to_the_model_as_used_once(world):
    commands, _, bus, heard, _ = world
    commands.do("s", CLIENT, Used({"lamp": "on", "HEADERS": {"HX-Trigger": "lamp-form"}}))
    assert heard.heard == [("tell", "s", ["used #lamp-form (WS /ws lamp='on')"])] and bus.sent == []


def test_stop_withdraws_what_no_brain_has_taken_else_asks_the_brain_and_an_ended_reply_is_left(world):
    commands, sessions, bus, _, replies = world
    bus.no_brain = True
    do(commands, Control.MSG, "one")
    waiting = bus.sent[-1].reply
    do(commands, Control.STOP, waiting)
    assert replies.ended == [(waiting, Status.STOPPED, "Stopped before it was sent.")] and bus.pending == {}
    bus.no_brain = False
    do(commands, Control.MSG, "two")
    going = bus.sent[-1].reply
    do(commands, Control.STOP, going)
    do(commands, Control.STOP, waiting)  # stopped already
    do(commands, Control.STOP, "unknown")
    assert [(m.session, m.reply) for m in bus.sent if isinstance(m, Stop)] == [("s", going)] and len(replies.ended) == 1
    do(commands, Control.MSG, "three")
    orphan = bus.sent[-1].reply
    bus.gone.add(orphan)  # its brain is gone, or its end was lost: no Stop would reach anyone
    do(commands, Control.STOP, orphan)
    assert replies.ended[-1][:2] == (orphan, Status.STOPPED) and "gone away" in replies.ended[-1][2]
    assert [m.reply for m in bus.sent if isinstance(m, Stop)] == [going], "ended here"


def test_retry_asks_the_question_again_in_a_new_line_or_makes_the_newest_comment_again(world):
    commands, sessions, bus, heard, replies = world
    sessions.add("s", Line(reply="c1", role="reply", status=Status.FAILED, note="boom"))
    do(commands, Control.MSG, "question")
    asked = bus.sent[-1].reply
    sessions.get("s").reply(asked).status = Status.INTERRUPTED
    do(commands, Control.RETRY, "c1")
    do(commands, Control.RETRY, "unknown")
    assert notices(heard)[-2:] == ["Only the newest comment can be asked again.", "There is nothing to retry there."]
    do(commands, Control.RETRY, asked)
    again = bus.sent[-1]
    assert again == Chat(session="s", id=again.id, reply=again.reply, text="question", retry=True, prompt=PROMPT)
    assert replies.ended == [(asked, Status.RETRIED, "")]
    assert lines(sessions)[-1] == (again.reply, "reply", Status.THINKING)
    assert sessions.get("s").reply(again.reply).asks == asked, "it answers the same question"
    sessions.get("s").reply(again.reply).status = Status.FAILED
    sessions.add("s", Line(reply="c2", role="reply", status=Status.FAILED))
    do(commands, Control.RETRY, "c2")
    assert isinstance(bus.sent[-1], Regenerate) and bus.sent[-1].reply not in ("c2", again.reply)


def test_regenerate_answers_the_newest_finished_reply_again_in_the_same_line(world):
    commands, sessions, bus, heard, _ = world
    do(commands, Control.MSG, "one")
    first = bus.sent[-1].reply
    do(commands, Control.REGENERATE, first)
    assert notices(heard)[-1] == "Only the newest finished reply can be regenerated." and len(bus.sent) == 1
    line = sessions.get("s").reply(first)
    line.status, line.text, line.seq = Status.DONE, "Hi", 3
    do(commands, Control.REGENERATE, first)
    assert bus.sent[-1] == Regenerate(session="s", id=bus.sent[-1].id, reply=first, prompt=PROMPT)
    assert (line.status, line.text, line.seq) == (Status.THINKING, "", 0) and heard.heard[-1][0] == "show"


def test_reset_empties_the_transcript_in_every_tab(world):
    commands, sessions, bus, heard, _ = world
    do(commands, Control.MSG, "one")
    do(commands, Control.RESET, "all")
    assert isinstance(bus.sent[-1], Reset) and lines(sessions) == [] and heard.of("transcript") == [("s", [])]
    assert sessions.was_reset(bus.sent[0].reply)


def test_a_model_is_chosen_for_the_session_and_every_tab_of_it_sees_what_follows(world):
    commands, sessions, bus, heard, _ = world
    do(commands, Control.MODEL, "llama3.2; rm -rf /")
    do(commands, Control.MODEL, "llama3.2")
    do(commands, Control.MODEL, "qwen3:4b")
    assert sessions.get("s").model == "qwen3:4b" and heard.of("model_chosen") == [("s",), ("s",)]
    assert heard.of("fragments") == [("s", "<model_chosen>")] * 2
    assert notices(heard) == ["That is not a model name.", "", "The model 'qwen3:4b' is not pulled. Run "
                              "`ollama pull qwen3:4b`, or press Pull."]
    assert bus.sent == [], "a choice is the web's: the next message carries it"


def test_pull_starts_or_joins_a_pull_of_a_model_not_pulled_and_cancel_cancels_it(world):
    commands, _, bus, heard, _ = world
    do(commands, Control.PULL, "bad name!")
    do(commands, Control.PULL, "mistral\n")  # "$" would let it by, as a model other than mistral's pull
    do(commands, Control.PULL, "llama3.2")
    do(commands, Control.PULL, "mistral")
    do(commands, Control.CANCEL_PULL, "p1")
    assert heard.of("start") == [("s", "mistral")] and heard.of("cancel") == [("s", "p1")]
    assert heard.of("pull_panel") == [("s",)], "the panel of each session whose pulls changed, shown once"
    assert notices(heard) == ["That is not a model name."] * 2 + ["The model 'llama3.2' is pulled already.", ""]


def test_undo_is_the_tool_calls(world):
    commands, _, _, heard, _ = world
    do(commands, Control.UNDO, "call_1")
    assert heard.of("undo") == [("s", CLIENT, "call_1")]


def test_each_control_gives_at_most_one_bus_message(world):
    commands, _, bus, _, _ = world
    for control in Control:
        do(commands, control, "x")
    assert [type(m) for m in bus.sent] == [Chat, Reset], "a stop, retry or regenerate of no reply sends nothing"
