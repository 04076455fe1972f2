"""The broker's listener (web/replies.py), with fakes for the relay, the bus, the pulls and the
tool calls: each message about a reply moves its line on and shows it; what is late, repeated or
about a reset conversation changes nothing; a lost brain's replies are carried on by the next."""
import asyncio
import json

from shared.messages import (Ack, Answered, CallTool, Chunk, Done, Failed, FailCode, Note, Prompt,
                             Resume, Stats, Waiting)
from tests.fake_bus import FakeBus
from tests.web.test_chats import NowDB
from tests.web.test_sessions import Tabs
from web.replies import Replies
from web.sessions import Sessions
from web.store import Store, Transcripts
from web.transcript import Line, Status

PROMPT = Prompt(system="You keep a list.")


class Relay:
    "What each tab was sent, in order: (what, request, status, text)."

    def __init__(self): self.sent = []
    def append(self, session, *lines): self.sent += [("append", l.reply, l.status, l.text) for l in lines]
    def show(self, session, line): self.sent.append(("show", line.reply, line.status, line.text))
    def words(self, session, request, text, thinking): self.sent.append(("words", request, thinking, text))


class Tools:
    "The tool calls: the calls they were handed."

    def __init__(self): self.called = []
    def call(self, msg): self.called.append(msg)
    def once_applied(self, session, reply, then): then()  # no call of it is being applied


def make(tmp_path):
    bus = FakeBus()
    sessions = Sessions(Transcripts(Store(tmp_path), NowDB()), Tabs(), bus)
    relay, others = Relay(), Tools()
    return Replies(sessions, relay, bus, others, PROMPT), sessions, relay, others


def asked(sessions, request, status=Status.THINKING, worker="w1", sid="s"):
    sessions.add(sid, Line(reply=request, role="user", text=f"question {request}"))
    return sessions.add(sid, Line(reply=request, role="reply", status=status, asks=request, worker=worker))


def chunk(seq, text="", reply="r1", thinking=""):
    return Chunk(worker="w1", session="s", reply=reply, seq=seq, text=text, thinking=thinking)


def test_a_tool_call_goes_to_the_tool_calls_unless_its_conversation_was_reset(tmp_path):
    replies, sessions, _, others = make(tmp_path)
    asked(sessions, "r1")
    tool = CallTool(worker="w1", session="s", reply="r1", call="c1", name="add", arguments={})
    replies.brain_message(tool)
    sessions.reset("s")
    replies.brain_message(CallTool(worker="w1", session="s", reply="r1", call="c2", name="add", arguments={}))
    assert others.called == [tool]


def test_a_claim_shows_a_queued_reply_taken_once(tmp_path):
    replies, sessions, relay, others = make(tmp_path)
    asked(sessions, "r1", Status.QUEUED, worker="")
    for _ in range(2):
        replies.brain_message(Ack(worker="w2", session="s", message="m1", reply="r1"))
    assert relay.sent == [("show", "r1", Status.THINKING, "")] and sessions.get("s").reply("r1").worker == "w2"


def test_streamed_words_show_the_reply_streaming_once_then_go_as_words(tmp_path):
    replies, sessions, relay, _ = make(tmp_path)
    asked(sessions, "r1")
    replies.brain_message(chunk(0, "Hel"))
    replies.brain_message(chunk(1, "lo"))
    replies.brain_message(chunk(2, "", thinking="hmm"))  # the first thought: its box appears
    replies.brain_message(chunk(3, "!", thinking=" more"))
    replies.brain_message(chunk(1, "lo"))  # repeated
    assert relay.sent == [("show", "r1", Status.STREAMING, "Hel"), ("words", "r1", "", "lo"),
                          ("show", "r1", Status.STREAMING, "Hello"), ("words", "r1", " more", "!")]
    line = sessions.get("s").reply("r1")
    assert (line.text, line.thinking, line.seq) == ("Hello!", "hmm more", 4)


def test_words_after_a_gap_are_taken_and_the_final_text_repairs_it(tmp_path):
    replies, sessions, relay, _ = make(tmp_path)
    asked(sessions, "r1")
    replies.brain_message(chunk(0, "one"))
    replies.brain_message(chunk(2, " three"))
    replies.brain_message(Done(worker="w1", session="s", reply="r1", seq=3, text="one two three", stats=Stats()))
    line = sessions.get("s").reply("r1")
    assert (line.status, line.text, relay.sent[-1][0]) == (Status.DONE, "one two three", "show")


def test_a_reply_the_brain_starts_by_itself_is_a_new_line_and_one_that_ends_at_once_too(tmp_path):
    replies, sessions, relay, others = make(tmp_path)
    replies.brain_message(chunk(0, "Nice list", reply="c1"))
    replies.brain_message(Failed(worker="w1", session="s", reply="c2", seq=0, code=FailCode.OLLAMA_DOWN, error="down"))
    assert relay.sent[0] == ("append", "c1", Status.THINKING, "") and relay.sent[-1] == ("append", "c2", Status.FAILED, "")
    assert [(l.reply, l.status) for l in sessions.get("s").lines.values()] == [("c1", Status.STREAMING),
                                                                                 ("c2", Status.FAILED)]
    assert replies.bus.made == [("w1", "s", "c1")], "counted till it ends"


def test_a_reply_ends_done_with_its_stats_stopped_or_failed_and_a_repeated_end_changes_nothing(tmp_path):
    replies, sessions, relay, _ = make(tmp_path)
    for request in ("done", "stopped", "failed"):
        asked(sessions, request)
    replies.brain_message(Done(worker="w1", session="s", reply="done", seq=0, text="Hi", thinking="hm",
                               stats=Stats(eval_count=5)))
    replies.brain_message(Failed(worker="w1", session="s", reply="stopped", seq=0, code=FailCode.STOPPED,
                                 error="Stopped.", text="On"))
    replies.brain_message(Failed(worker="w1", session="s", reply="failed", seq=0, code=FailCode.INTERNAL, error="boom"))
    shown = len(relay.sent)
    replies.brain_message(Failed(worker="w1", session="s", reply="done", seq=0, code=FailCode.INTERNAL, error="late"))
    replies.brain_message(chunk(0, "late", reply="done"))
    assert len(relay.sent) == shown
    session = sessions.get("s")
    assert [(session.reply(r).status, session.reply(r).text) for r in ("done", "stopped", "failed")] == [
        (Status.DONE, "Hi"), (Status.STOPPED, "On"), (Status.FAILED, "")]
    assert session.reply("done").thinking == "hm" and "5 tokens" in session.reply("done").note
    assert session.reply("failed").note == "boom"


def test_waiting_and_notes_are_shown(tmp_path):
    replies, sessions, relay, _ = make(tmp_path)
    asked(sessions, "r1")
    replies.brain_message(Waiting(worker="w2", session="s", reply="r1", reason="Ollama is restarting"))
    replies.brain_message(Note(worker="w1", session="s", reply="r1", text="Context trimmed."))
    line = sessions.get("s").reply("r1")
    assert (line.status, line.note, line.worker) == (Status.WAITING, "Ollama is restarting", "w2")
    assert relay.sent == [("show", "r1", Status.WAITING, ""), ("append", "r1", Status.DONE, "Context trimmed.")]


def test_two_notes_about_one_reply_are_two_lines_on_the_page_and_after_a_reload(tmp_path):
    replies, sessions, relay, _ = make(tmp_path)
    asked(sessions, "r1")
    for text in ("Old turns were set aside.", "This model cannot use the app's tools.", "Old turns were set aside."):
        replies.brain_message(Note(worker="w1", session="s", reply="r1", text=text))
    notes = lambda s: [(l.key, l.text) for l in s.lines.values() if l.role == "note"]  # noqa: E731
    shown = notes(sessions.get("s"))
    assert [text for _, text in shown] == ["Old turns were set aside.", "This model cannot use the app's tools."]
    assert len({key for key, _ in shown}) == 2, "two articles with one id on the page"
    reloaded = Sessions(sessions.kept, Tabs(), FakeBus())
    assert notes(asyncio.run(reloaded.open("s"))) == shown


def test_the_words_of_a_conversation_reset_since_are_ignored(tmp_path):
    replies, sessions, relay, _ = make(tmp_path)
    asked(sessions, "r1")
    sessions.reset("s")
    replies.brain_message(chunk(0, "old"))
    replies.brain_message(Done(worker="w1", session="s", reply="r1", seq=1, text="old", stats=Stats()))
    assert relay.sent == [] and sessions.get("s").lines == {}


def test_a_lost_brains_replies_are_interrupted_and_carried_on_by_the_next(tmp_path):
    replies, sessions, relay, others = make(tmp_path)
    streaming = asked(sessions, "r1")
    replies.brain_message(chunk(0, "Once"))
    asked(sessions, "queued", Status.QUEUED, worker="")
    asked(sessions, "other", worker="w2")
    asked(sessions, "ended", Status.DONE)
    replies.brain_lost("w1")
    [resume] = replies.bus.sent
    assert isinstance(resume, Resume) and (resume.session, resume.reply, resume.text, resume.seq, resume.question,
                                           resume.prompt) == ("s", "r1", "Once", 1, "question r1", PROMPT)
    assert streaming.status == Status.INTERRUPTED and "carrying on" in streaming.note
    assert [sessions.get("s").reply(r).status for r in ("queued", "other", "ended")] == [
        Status.QUEUED, Status.THINKING, Status.DONE]
    replies.brain_message(Chunk(worker="w2", session="s", reply="r1", seq=1, text=" upon"))
    assert (streaming.status, streaming.text) == (Status.STREAMING, "Once upon"), "an interrupted reply carries on"


def test_a_lost_brains_reply_is_resumed_with_the_calls_the_web_answered_for_it(tmp_path):
    "What the brain needs to put the round back, so the call is neither asked for nor applied again."
    replies, sessions, relay, others = make(tmp_path)
    streaming = asked(sessions, "r1")
    replies.brain_message(chunk(0, "On it."))
    streaming.cards = json.dumps([{"call": "call_a", "text": "Added #1 'milk'.", "ok": True, "undone": False,
                                   "name": "add_todo", "arguments": {"title": "milk"}, "at": 6, "index": 0}])
    replies.brain_lost("w1")
    [resume] = replies.bus.sent
    assert resume.calls == [Answered(call="call_a", name="add_todo", arguments={"title": "milk"}, ok=True,
                                     text="Added #1 'milk'.", at=6, index=0)]


def test_a_reply_whose_end_was_lost_fails_with_what_arrived(tmp_path):
    replies, sessions, relay, _ = make(tmp_path)
    asked(sessions, "r1")
    asked(sessions, "ended", Status.DONE)
    replies.brain_message(chunk(0, "Hel"))
    replies.reply_lost("s", "r1")
    replies.reply_lost("s", "ended")
    replies.reply_lost("s", "unknown")
    line = sessions.get("s").reply("r1")
    assert (line.status, line.text) == (Status.FAILED, "Hel") and "lost on its way" in line.note
    assert sessions.get("s").reply("ended").status == Status.DONE
