"""One reply (brain/replies.py): the decisions of its rounds (`Rounds`: when calls are applied, when
the reply ends, what a resumed round continues), then a reply made with fakes at its edges (Ollama's
streams answering from a script, the web answering calls, the bus as a list): notes when calls are
not made, the one end, and nothing said by a reply whose worker closes or loses the session.
Waiting for Ollama and asking it again: tests/brain/test_asking.py."""
import asyncio

import pytest

from brain import tools
from brain.asking import Asker
from brain.conversation import Conversation
from brain.jobs import Turn
from brain.ollama_client import OllamaFailed, ToolCall
from brain.replies import After, Replies, Rounds, starts_over
from brain.streams import Answer, Interrupted
from brain.tool_calls import asked
from shared.config import Settings
from shared.messages import Answered, FailCode, Prompt, Stats
from tests.fake_app import TOOLS
from tests.brain.test_engine import Clock, Watch

ADD = ToolCall("add_todo", {"title": "milk"})
TICK = ToolCall("set_todo_done", {"id": 1, "done": True})


# The rounds: decisions only.

def test_a_round_without_calls_or_stopped_or_echoing_a_call_made_ends_the_reply():
    rounds = Rounds(allowed=1)
    assert rounds.after([], asked_by_user=True, cancelled=False) is After.END
    assert rounds.after([ADD], asked_by_user=True, cancelled=True) is After.END
    rounds.made[asked(ADD)] = "Added."
    assert rounds.after([TICK, ADD], asked_by_user=True, cancelled=False) is After.END, "an echo with more calls"


def test_calls_in_a_comment_on_app_events_are_never_made():
    assert Rounds(allowed=3).after([ADD], asked_by_user=False, cancelled=False) is After.COMMENT_CALLED


def test_calls_that_all_fail_may_be_put_right_a_few_times_more_than_the_rounds_allowed():
    rounds = Rounds(allowed=1)
    for _ in range(1 + tools.RETRIES):
        assert rounds.after([TICK], True, False) is After.ACT
        rounds.applied(made_before=0)  # nothing was made: the round does not count
    assert rounds.acted == 0
    assert rounds.after([TICK], True, False) is After.KEPT_FAILING


def test_past_the_rounds_allowed_no_call_is_made():
    rounds = Rounds(allowed=1)
    assert rounds.after([ADD], True, False) is After.ACT
    rounds.made[asked(ADD)] = "Added."
    rounds.applied(made_before=0)
    assert rounds.after([TICK], True, False) is After.ROUNDS_USED


def test_a_resumed_round_continues_what_was_shown_and_the_reply_says_it_once():
    conversation = Conversation()
    conversation.begin_turn("tell me a story")
    rounds = Rounds(allowed=1, said="Once upon", prefill="Once upon")
    assert rounds.messages(conversation)[-1] == {"role": "assistant", "content": "Once upon"}
    assert not rounds.started_over(" a time")
    assert rounds.heard(" a time") == "Once upon a time", "the round's whole text, for the conversation"
    assert rounds.said == "Once upon a time" and rounds.prefill == ""
    assert rounds.messages(conversation)[-1] == {"role": "user", "content": "tell me a story"}


def test_a_continuation_that_opens_as_the_reply_did_started_over():
    assert starts_over("Once upon a time there", "Once upon a time there was")
    assert not starts_over("Once upon a time there", " was a fox")
    assert not starts_over("Hi", "Hi again"), "too short to tell"
    said = " ".join(["a very long reply"] * 3)
    assert not starts_over(said, " a very long reply"), "a reply that repeats itself goes on"


# A reply made with fakes at its edges.

class Streams:
    "Answers each request with the next script item: an Answer, or an exception raised as Interrupted."
    def __init__(self, *script):
        self.script, self.offered, self.flushed, self.asked, self.schemas = list(script), [], 0, [], []

    async def reply(self, turn, messages, offered, known=None):
        self.offered.append(offered)
        return await self.decide(turn, messages, None)

    async def decide(self, turn, messages, schema):
        self.schemas.append(schema)
        self.asked.append(messages)
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise Interrupted(item, "")
        if callable(item):
            return item(turn)
        return item

    def flush(self, turn, force=False):
        self.flushed += 1

    async def show(self, model):
        return await described(model)


class Calls:
    "The web, applying every call: ok unless its title is empty."
    def __init__(self):
        self.made = []

    async def round(self, turn, calls, made, offered, at=0, decided=False):
        "As brain/tool_calls.py: a decision's refused calls are left out."
        self.made += calls
        sent, results = [], []
        for call in calls:
            ok = call.arguments.get("title") != ""
            if ok:
                made[asked(call)] = f"did {call.name}"
            elif decided:
                continue
            sent.append({"function": {"name": call.name}})
            results.append((call.name, f"did {call.name}" if ok else "Error: no title"))
        return sent, results, "the state"


class Copies:
    def __init__(self, session, conversation):
        self.copies, self.saves = {session: conversation}, 0

    def held(self, session):
        return self.copies.get(session)

    def save(self, session, afresh=False):
        self.saves += 1

    async def stored(self, session):
        self.save(session)
        return session in self.copies


class Bus:
    "What a reply says on the bus, as (kind, args, keywords), for the four kinds a reply says."
    def __init__(self):
        self.said = []

    def done(self, turn, *args, **kw): self.said.append(("done", args, kw))
    def failed(self, turn, *args, **kw): self.said.append(("failed", args, kw))
    def note(self, turn, *args, **kw): self.said.append(("note", args, kw))
    def waiting(self, turn, *args, **kw): self.said.append(("waiting", args, kw))


async def described(model):
    "Ollama's /api/show, as it describes models here: qwen2.5-coder:0.5b has 494M parameters, any other 3.2B."
    return {"details": {"parameter_size": "494.03M" if model == "qwen2.5-coder:0.5b" else "3.2B"}}


def said(text, calls=(), thinking=""):
    return Answer(text, thinking, Stats(prompt_eval_count=10), list(calls))


@pytest.fixture
def reply():
    """make(streams, ...) -> (what was said on the bus, the conversation, the copies): a reply made for
    `turn` (a chat turn by default); `meanwhile()` runs beside it on the loop."""
    def make(streams, turn=None, conversation=None, watch=None, copies=None, meanwhile=None, clock=None, bus=None,
             **env):
        turn = turn or Turn("s", "r1", "add milk", Prompt("sys", TOOLS), epoch=1)
        conversation = conversation or Conversation()
        copies, bus = copies or Copies("s", conversation), bus or Bus()
        calls = Calls()
        settings = Settings.from_env(env)
        asker = Asker(settings, watch or Watch(), streams, bus, (clock or Clock()).call_later)
        replies = Replies(settings, asker, calls, copies, bus)

        async def main():
            beside = asyncio.ensure_future(meanwhile() if meanwhile else asyncio.sleep(0))
            await replies.make(turn, conversation)
            await beside
        asyncio.run(main())
        made.extend(calls.made)
        return bus.said, conversation, copies
    made = []  # the calls sent to the web, by every reply made
    make.made = made
    return make


def test_a_reply_applies_its_calls_and_ends_once_with_what_every_round_said_and_thought(reply):
    streams = Streams(said("On it. ", [ADD], thinking="they ask for milk; "), said("Added.", thinking="done"))
    bus, conversation, copies = reply(streams)
    assert bus == [("done", ("On it. Added.", "they ask for milk; done", Stats(prompt_eval_count=10)), {})]
    assert [t["role"] for t in conversation.turns] == ["user", "assistant", "tool", "assistant"]
    assert streams.offered == [TOOLS, TOOLS] and copies.saves == 3, "begun, the round, the end"


def test_calls_past_the_rounds_allowed_are_not_made_and_the_user_is_told(reply):
    bus, _, _ = reply(Streams(said("", [ADD]), said("", [TICK])))
    assert bus[0][0] == "note" and bus[0][1][0] == ("The model asked for more changes (set_todo_done) after 1 round "
                                                    "of them in one reply; they were not made (MODEL_TOOL_ROUNDS).")
    assert bus[1][0] == "done"


def test_calls_that_keep_failing_are_given_up_and_the_user_is_told(reply):
    failing = ToolCall("add_todo", {"title": ""})
    bus, _, _ = reply(Streams(*[said("", [failing])] * (1 + tools.RETRIES + 1)))
    assert bus[0][1][0] == "The model's calls kept failing (add_todo), so I stopped it there."


def test_a_round_ollama_cut_at_num_predict_is_told_and_the_reply_goes_on(reply):
    cut = Answer("On and on", "", Stats(done_reason="length"), [])
    bus, conversation, _ = reply(Streams(cut), REPLY_MAX_TOKENS="300")
    assert bus == [("note", ("The reply was cut off at 300 tokens (REPLY_MAX_TOKENS).",), {}),
                   ("done", ("On and on", "", Stats(done_reason="length")), {})]
    assert conversation.turns[-1] == {"role": "assistant", "content": "On and on"}


def test_a_broken_stream_fails_the_reply_with_what_was_said(reply):
    bus, _, _ = reply(Streams(OllamaFailed("gone")))
    assert bus == [("failed", (FailCode.OLLAMA_FAILED, "gone"), {"text": ""})]


def test_a_reply_whose_session_was_fenced_meanwhile_says_nothing_more(reply):
    copies = Copies("s", Conversation())

    def fenced(turn):
        copies.copies.clear()  # the engine forgot our copy while Ollama answered
        return said("late words")

    bus, _, _ = reply(Streams(fenced), conversation=copies.copies["s"], copies=copies)
    assert bus == [] and copies.saves == 1, "only the turn's beginning was saved"


class SlowDisk(Copies):
    "Saves that reach the disk only when `written` is set."
    def __init__(self, session, conversation):
        super().__init__(session, conversation)
        self.writing, self.written = False, asyncio.Event()

    async def stored(self, session):
        self.writing = True
        await self.written.wait()
        return await super().stored(session)


def slow_disk(copies: SlowDisk, bus: Bus, then=lambda: None):
    "Beside a reply: once it waits for its save, nothing has been said yet; `then()`, and the save lands."
    async def disk():
        for _ in range(100):
            if copies.writing:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        assert copies.writing and bus.said == [], "the end waits for the save"
        then()
        copies.written.set()
    return disk


def test_a_reply_ends_on_the_bus_only_once_it_is_on_disk(reply):
    """A brain killed between the two would leave the page showing a reply's end that the
    conversation store never got, so the model would not see that answer again."""
    bus, conversation = Bus(), Conversation()
    copies = SlowDisk("s", conversation)
    said_, _, _ = reply(Streams(said("Hi.")), conversation=conversation, copies=copies, bus=bus,
                        meanwhile=slow_disk(copies, bus))
    assert [kind for kind, _, _ in said_] == ["done"] and conversation.turns[-1]["content"] == "Hi."


def test_a_stop_while_the_whole_reply_is_being_saved_comes_too_late(reply):
    bus, conversation, turn = Bus(), Conversation(), Turn("s", "r1", "hi", Prompt("sys", TOOLS), epoch=1)
    copies = SlowDisk("s", conversation)
    said_, _, _ = reply(Streams(said("Hi.")), turn=turn, conversation=conversation, copies=copies, bus=bus,
                        meanwhile=slow_disk(copies, bus, then=turn.control.cancel))
    assert [kind for kind, _, _ in said_] == ["done"], "not 'stopped': the reply was whole and is kept so"


def test_a_broken_stream_fails_only_once_the_rounds_it_applied_are_on_disk(reply):
    "The page shows the round's card as applied: the model must know of it whichever brain answers next."
    bus, conversation = Bus(), Conversation()
    copies = SlowDisk("s", conversation)
    said_, _, _ = reply(Streams(said("On it. ", [ADD]), OllamaFailed("gone")), conversation=conversation,
                        copies=copies, bus=bus, meanwhile=slow_disk(copies, bus))
    assert [kind for kind, _, _ in said_] == ["failed"] and conversation.turns[-1]["role"] == "tool"


def test_a_reply_whose_end_the_store_refused_says_nothing(reply):
    copies = Copies("s", Conversation())

    async def refused(session):
        copies.copies.clear()  # another worker holds the session now: the store fenced ours
        return False
    copies.stored = refused
    bus, _, _ = reply(Streams(said("Hi.")), conversation=copies.copies["s"], copies=copies)
    assert bus == []


def test_a_reply_cut_off_by_the_worker_closing_says_nothing_more(reply):
    def closing(turn):
        turn.control.cut_off()
        return said("partial")

    bus, _, copies = reply(Streams(closing))
    assert bus == [] and copies.saves == 1


def test_a_reply_cut_off_mid_stream_by_the_worker_closing_saves_and_says_nothing(reply):
    def closing(turn):
        turn.control.cut_off()  # the worker closes: its store may be closed already
        raise Interrupted(OllamaFailed("hung up"), "partial")

    bus, _, copies = reply(Streams(closing))
    assert bus == [] and copies.saves == 1, "only the turn's beginning was saved"


# A reply resumed after its brain died during a tool round: the calls the web answered come back.

MILK = Answered(call="call_a", name="add_todo", arguments={"title": "milk"}, ok=True, text="Added #1 'milk'.", at=7)
ROUND = [{"role": "assistant", "content": "On it. ", "tool_calls": [
    {"id": "call_a", "function": {"index": 0, "name": "add_todo", "arguments": {"title": "milk"}}}]},
         {"role": "tool", "tool_name": "add_todo", "content": "Added #1 'milk'."}]


def resumed(shown, question="add milk", carried=(MILK,)):
    return Turn("s", "r1", None, Prompt("sys", TOOLS), resume=shown, question=question, carried=list(carried), epoch=1)


def asked_before(conversation):
    conversation.begin_turn("add milk")
    return conversation


def test_a_resume_puts_back_the_round_its_brain_did_not_save_and_the_call_is_never_made_again(reply):
    streams = Streams(said("", [ADD]), said("never asked"))  # the model asks for it again, as a real one did
    bus, conversation, copies = reply(streams, turn=resumed("On it. Added"), conversation=asked_before(Conversation()))
    assert streams.asked[0][1:] == [{"role": "user", "content": "add milk"}, *ROUND,
                                    {"role": "assistant", "content": "Added"}], "the round, then what came after it"
    assert reply.made == [], "an echo of the call already applied: nothing sent to the web"
    assert bus == [("done", ("On it. Added", "", Stats(prompt_eval_count=10)), {})]
    assert conversation.turns[1:3] == ROUND and copies.saves >= 1


def test_a_put_back_round_counts_against_the_rounds_allowed(reply):
    bus, _, _ = reply(Streams(said("", [TICK])), turn=resumed("On it. "), conversation=asked_before(Conversation()))
    assert reply.made == [] and "after 1 round of them in one reply" in bus[0][1][0]


def test_a_round_its_brain_saved_is_not_put_back_twice_but_still_counts(reply):
    conversation = asked_before(Conversation())
    conversation.add_tool_round("On it. ", ROUND[0]["tool_calls"], [("add_todo", "Added #1 'milk'.")], "")
    streams = Streams(said("", [ADD]))
    bus, conversation, _ = reply(streams, turn=resumed("On it. Added"), conversation=conversation)
    assert streams.asked[0][1:] == [{"role": "user", "content": "add milk"}, *ROUND,
                                    {"role": "assistant", "content": "Added"}]
    assert reply.made == [] and bus[0][0] == "done"


def test_a_resume_whose_question_was_not_saved_asks_it_then_puts_the_round_back(reply):
    streams = Streams(said(" it is."))
    bus, conversation, _ = reply(streams, turn=resumed("On it. Added"))
    assert streams.asked[0][1:] == [{"role": "user", "content": "add milk"}, *ROUND,
                                    {"role": "assistant", "content": "Added"}]
    assert bus[0] == ("done", ("On it. Added it is.", "", Stats(prompt_eval_count=10)), {})
    assert [t["role"] for t in conversation.turns] == ["user", "assistant", "tool", "assistant"]


# MODEL_TOOL_MODE=decide (brain/tools.py), and replies that claim a change no call made (brain/claims.py).

def test_in_decide_mode_the_decisions_calls_are_made_and_the_reply_is_asked_for_in_words_after_them(reply):
    streams = Streams(said('{"calls": [{"name": "add_todo", "arguments": {"title": "milk"}}]}'), said("Milk, then."))
    bus, conversation, _ = reply(streams, MODEL_TOOL_MODE="decide")
    assert reply.made == [ADD]
    assert streams.schemas[0]["properties"]["calls"]["items"]["anyOf"][0]["properties"]["name"] == {"const": "add_todo"}
    assert streams.schemas[1] is None and streams.offered == [None], "the reply offers no tools: it cannot act"
    decision, words = streams.asked
    assert decision[0]["content"].startswith("sys\n\nThe app's actions:\n- add_todo(title): ")
    assert words[:len(decision)] == decision, "the reply's prompt goes on from the decision's"
    assert words[len(decision):] == [{"role": "user", "content": "App note: As the user asked, the app did this: did add_todo"},
                                     tools.NOW]
    assert [t["role"] for t in conversation.turns] == ["user", "assistant", "tool", "assistant"], "kept as calls"
    assert tools.NOW not in conversation.messages()
    assert bus == [("done", ("Milk, then.", "", Stats(prompt_eval_count=10)), {})]


def test_in_decide_mode_a_decision_of_none_or_not_json_makes_no_call_and_calls_in_the_reply_are_never_made(reply):
    for decision in ('{"calls": []}', "Sure!", '{"calls": [{"name": "launch_rockets", "arguments": {}}]}'):
        streams = Streams(said(decision), said("Hello.", [ADD]))
        bus, conversation, _ = reply(streams, MODEL_TOOL_MODE="decide")
        assert reply.made == [] and bus[-1][0] == "done"
        assert [t["role"] for t in conversation.turns] == ["user", "assistant"]


def test_in_decide_mode_a_decision_the_app_refuses_is_not_in_the_conversation_and_the_reply_is_asked_as_if_none(reply):
    streams = Streams(said('{"calls": [{"name": "add_todo", "arguments": {"title": ""}}]}'), said("Two left."))
    bus, conversation, copies = reply(streams, turn=Turn("s", "r1", "what's left?", Prompt("sys", TOOLS), epoch=1),
                                      MODEL_TOOL_MODE="decide")
    assert reply.made == [ToolCall("add_todo", {"title": ""})], "the web was asked"
    assert [t["role"] for t in conversation.turns] == ["user", "assistant"], "no empty round kept"
    decision, words = streams.asked
    assert words == decision + [tools.NOW], "the reply is asked as if nothing had been decided"
    assert bus == [("done", ("Two left.", "", Stats(prompt_eval_count=10)), {})] and copies.saves == 2


def test_a_comment_is_not_decided_on_in_decide_mode(reply):
    streams, clicked = Streams(said("Nice click.")), Conversation()
    clicked.record(["added 'milk'"], "the state")
    reply(streams, turn=Turn("s", "r1", None, Prompt("sys", TOOLS), epoch=1), conversation=clicked, MODEL_TOOL_MODE="decide")
    assert streams.schemas == [None]


def test_a_reply_that_claims_a_change_no_call_made_is_marked(reply):
    bus, conversation, _ = reply(Streams(said("I added milk to your list!")))
    assert bus[0][0] == "note" and bus[0][1][0].startswith('Nothing was changed, though this reply says so ("I added")')
    assert bus[1][0] == "done" and bus[1][1][0] == "I added milk to your list!", "what was shown stays as it was"
    assert conversation.turns[-1] == {"role": "assistant", "content": "I added milk to your list!"}


def test_a_reply_that_made_its_change_or_claims_none_is_not_marked(reply):
    bus, _, _ = reply(Streams(said("", [ADD]), said("Added milk.")))
    assert [kind for kind, *_ in bus] == ["done"]
    bus, _, _ = reply(Streams(said("Milk is a fine thing to add.")))
    assert [kind for kind, *_ in bus] == ["done"]


def test_auto_decides_for_a_small_model_and_calls_natively_for_a_larger_one(reply):
    streams = Streams(said('{"calls": []}'), said("Hi."))
    reply(streams, turn=Turn("s", "r1", "hi", Prompt("sys", TOOLS), epoch=1, model="qwen2.5-coder:0.5b"))
    assert streams.schemas[0] is not None and streams.offered == [None], "494M parameters: decided first"
    streams = Streams(said("Hi."))
    reply(streams, turn=Turn("s", "r1", "hi", Prompt("sys", TOOLS), epoch=1, model="llama3.2"))
    assert streams.schemas == [None] and streams.offered == [TOOLS], "3.2B: native tool calls"
