"""What the model is told of the app (web/app_events.py): each user action as one app_event with
the state after it, each of its own actions' result with the state and the app's brief, and the digest of the state the brain last got, kept true only once the bus has
taken the message that carries it (a lost event is then put right by the brain)."""
import asyncio
from types import SimpleNamespace

from shared.messages import AppEvent, CallTool, Prompt, ToolResult, digest
from tests.web.test_chats import NowDB
from tests.fake_bus import FakeBus
from tests.web.test_sessions import Tabs
from web.app_events import AppEvents
from web.sessions import Sessions
from web.store import Store, Transcripts

PROMPT = Prompt(system="You keep a list.", tools=[])


class Offers(FakeBus):
    "offer's answers: True sent, False waiting for a brain, None refused."

    def __init__(self, answer=True):
        super().__init__()
        self.answer, self.offered = answer, []

    def offer(self, msg):
        self.offered.append(msg)
        return self.answer


def app():
    return SimpleNamespace(state=lambda sid: f"The list of {sid}: milk", brief=lambda sid: f"{sid}'s list is now: milk.")


def add(session="s"):
    return CallTool(worker="w1", session=session, reply="r1", call="c1", name="add", arguments={"title": "milk"})


def make(tmp_path, answer=True):
    broker = Offers(answer)
    sessions = Sessions(Transcripts(Store(tmp_path), NowDB()), Tabs(), broker)
    return AppEvents(sessions, broker, app(), NowDB(), PROMPT), sessions, broker


def test_a_change_is_told_once_in_the_apps_words_with_the_state_after_it_for_a_comment(tmp_path):
    events, sessions, broker = make(tmp_path)
    asyncio.run(events.changed("s", ["added #3 'milk'"]))
    asyncio.run(events.changed("s", []))
    [event] = broker.offered
    assert isinstance(event, AppEvent) and (event.session, event.lines, event.state, event.comment, event.prompt) == (
        "s", ["added #3 'milk'"], "The list of s: milk", True, PROMPT)
    assert event.since == "", "the brain's state is not known yet: it states it whole"
    assert sessions.get("s").told == digest("The list of s: milk")


def test_each_event_carries_the_digest_of_the_state_the_brain_last_got(tmp_path):
    events, sessions, broker = make(tmp_path)
    events.tell("s", ["added #1 'milk'"], "one")
    events.tell("s", ["used #lamp (WS /ws lamp='on')"])  # no state: what the brain has stays as it was
    events.tell("s", ["added #2 'eggs'"], "two")
    assert [(e.since, e.comment) for e in broker.offered] == [("", False), (digest("one"), False), (digest("one"), False)]
    assert len({e.id for e in broker.offered}) == 3 and sessions.get("s").told == digest("two")


def test_an_action_of_the_model_is_answered_with_its_result_the_state_after_it_and_the_apps_brief(tmp_path):
    events, sessions, broker = make(tmp_path)
    asyncio.run(events.answer(add(), True, "Added 'milk'."))
    [result] = broker.offered
    assert isinstance(result, ToolResult) and (result.session, result.reply, result.call, result.ok, result.text,
                                               result.brief, result.state) == (
        "s", "r1", "c1", True, "Added 'milk'.", "s's list is now: milk.", "The list of s: milk")
    assert sessions.get("s").told == digest("The list of s: milk")


def test_only_a_message_the_bus_took_counts_as_the_brains_state(tmp_path):
    for answer, told in ((None, ""), (False, digest("The list of s: milk"))):  # waiting for a brain: it will be sent
        events, sessions, _ = make(tmp_path / str(answer), answer)
        asyncio.run(events.answer(add(), True, "ok"))
        assert sessions.get("s").told == told


def test_after_a_refused_event_the_next_one_has_the_brain_state_the_whole_state(tmp_path):
    "The brain never got what the refused event said: the digest it would check must not match."
    events, sessions, broker = make(tmp_path)
    events.tell("s", ["added #1 'milk'"], "one")
    broker.answer = None  # the session's queue in the web is full: refused
    events.tell("s", ["added #2 'eggs'"], "two")
    broker.answer = True
    events.tell("s", ["added #3 'tea'"], "three")
    assert broker.offered[-1].since == "" and sessions.get("s").told == digest("three")
