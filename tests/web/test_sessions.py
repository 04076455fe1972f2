"""Each session's conversation in the web (web/sessions.py): held in memory while in use and read
back from SQLite after, bounded, with what a stopped web left under way put right."""
import asyncio

from shared.messages import Chat, Prompt
from tests.fake_bus import FakeBus
from tests.web.test_chats import NowDB
from web import sessions as sessions_module
from web.sessions import Session, Sessions
from web.store import Store, Transcripts
from web.transcript import Line, Status


class Tabs:
    "Which sessions a tab has open (what `Clients.watching` tells)."

    def __init__(self, *open_sessions): self.open = set(open_sessions)
    def __call__(self, sid): return sid in self.open


def waiting(*replies) -> FakeBus:
    "A bus whose messages asking for these replies wait in the outbox for a brain."
    bus = FakeBus()
    bus.no_brain = True
    for reply in replies:
        bus.submit(Chat(session="s", id=f"m-{reply}", reply=reply, text="", prompt=Prompt(system="")))
    return bus


def make(tmp_path, limit=1000, tabs=None, bus=None, disk=None):
    store = Store(tmp_path)
    return Sessions(Transcripts(store, disk or NowDB()), tabs or Tabs(), bus or FakeBus(), limit), store


def say(sessions, sid, request, status=Status.DONE):
    sessions.add(sid, Line(reply=request, role="user", text=f"question {request}"))
    return sessions.add(sid, Line(reply=request, role="reply", text=f"answer {request}", status=status))


def test_past_the_limit_the_least_recently_used_idle_session_leaves_and_comes_back_from_disk(tmp_path):
    sessions, _ = make(tmp_path, limit=2)
    for sid in ("a", "b"):
        say(sessions, sid, f"r-{sid}")
    sessions.get("a")  # used again: "b" is now the oldest
    say(sessions, "c", "r-c")
    assert list(sessions.held) == ["a", "c"]
    back = asyncio.run(sessions.open("b"))
    assert [(l.reply, l.role, l.text) for l in back.lines.values()] == [
        ("r-b", "user", "question r-b"), ("r-b", "reply", "answer r-b")]


def test_a_session_with_an_open_tab_or_a_reply_under_way_stays_past_the_limit(tmp_path):
    sessions, _ = make(tmp_path, limit=1, tabs=Tabs("watched"))
    say(sessions, "watched", "r1")
    say(sessions, "thinking", "r2", status=Status.THINKING)
    say(sessions, "idle", "r3")
    assert set(sessions.held) == {"watched", "thinking", "idle"}, "none of the others may leave, the newest stays"
    sessions.get("thinking").reply("r2").status = Status.DONE
    say(sessions, "next", "r4")
    assert set(sessions.held) == {"watched", "next"}


def test_a_session_keeps_its_newest_lines_in_memory_and_every_line_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(sessions_module, "KEPT_PER_SESSION", 4)
    sessions, store = make(tmp_path)
    for i in range(3):
        say(sessions, "s", f"r{i}")
    assert [key for key in sessions.get("s").lines] == ["user-r1", "reply-r1", "user-r2", "reply-r2"]
    assert len(store.transcript("s")) == 6


def test_a_line_is_kept_as_it_was_when_kept_not_as_it_changes_after(tmp_path):
    posted = []

    class Later(NowDB):
        def post(self, fn, *args): posted.append((fn, args))
    sessions, store = make(tmp_path, disk=Later())
    line = sessions.add("s", Line(reply="r1", role="reply", status=Status.STREAMING, text="Hel"))
    line.text = "Hello"
    for fn, args in posted:
        fn(*args)
    assert store.transcript("s")[0].text == "Hel"


def test_opening_reads_the_disk_once_and_what_arrived_meanwhile_wins(tmp_path):
    sessions, store = make(tmp_path)
    store.keep_line(Line(session="s", reply="r1", role="reply", text="from disk"))
    store.keep_line(Line(session="s", reply="r0", role="user", text="older"))
    store.choose_model("s", "qwen3:4b")
    sessions.get("s").lines["reply-r1"] = Line(session="s", reply="r1", role="reply", text="streaming now")
    session = asyncio.run(sessions.open("s"))
    assert [l.text for l in session.lines.values()] == ["older", "streaming now"] and session.model == "qwen3:4b"
    store.keep_line(Line(session="s", reply="r9", role="user", text="not read again"))
    assert len(asyncio.run(sessions.open("s")).lines) == 2
    sessions.get("t").model = "chosen meanwhile"
    store.choose_model("t", "qwen3:4b")
    assert asyncio.run(sessions.open("t")).model == "chosen meanwhile"


def test_a_line_left_under_way_by_a_web_that_stopped_is_queued_while_its_message_waits_else_interrupted(tmp_path):
    sessions, store = make(tmp_path, bus=waiting("waits"))
    for request in ("waits", "cut", "ended"):
        store.keep_line(Line(session="s", reply=request, role="reply",
                             status=Status.DONE if request == "ended" else Status.STREAMING))
    session = asyncio.run(sessions.open("s"))
    assert [(l.reply, l.status) for l in session.lines.values()] == [
        ("waits", Status.QUEUED), ("cut", Status.INTERRUPTED), ("ended", Status.DONE)]
    assert session.reply("cut").note == "Interrupted: the web restarted mid-reply."


def test_a_reset_empties_the_transcript_and_remembers_the_old_replies(tmp_path):
    sessions, store = make(tmp_path)
    say(sessions, "s", "r1")
    sessions.reset("s")
    assert sessions.get("s").lines == {} and store.transcript("s") == []
    assert sessions.was_reset("r1") and not sessions.was_reset("r2")


def test_a_model_choice_is_kept(tmp_path):
    sessions, store = make(tmp_path)
    sessions.choose("s", "mistral")
    assert sessions.get("s").model == "mistral" and store.model_choice("s") == "mistral"


def test_the_newest_reply_and_whether_one_is_under_way():
    session = Session()
    assert session.newest_reply() is None and not session.busy
    for line in (Line(reply="r1", role="reply"), Line(reply="r2", role="reply", status=Status.QUEUED),
                 Line(reply="r2", role="note")):
        session.lines[line.key] = line
    assert session.newest_reply().reply == "r2" and session.busy
