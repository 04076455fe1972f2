"""The real-model evaluation's judge (bench/eval.py): what counts as the asked change, a wrong one,
raw call text, parroting and a change claimed but not made, from the list before and after and the
reply as shown; and the sets it plays (tuned, held-out, sessions)."""
from bench import eval_asks_heldout
from bench.eval import ASKS, RAW_CALL, SESSIONS, Ask, Score, claims_change, held_out, judge, select, table

BEFORE = {"todo-1": ("buy stamps", False), "todo-2": ("call the plumber", False), "todo-3": ("water the plants", True)}


def test_the_asked_change_alone():
    after = {**BEFORE, "todo-1": ("buy stamps", True)}
    score, verdict = judge(Ask("tick", "tick off the stamps", done={"stamps": True}), BEFORE, after, "Done.")
    assert (score.happened, score.wrong, verdict) == (1, 0, "ok")


def test_a_new_todo_with_the_same_title_is_not_the_asked_change():
    after = {**BEFORE, "todo-4": ("water the plants", False)}
    score, _ = judge(Ask("untick", "untick the plants", done={"plants": False}), BEFORE, after, "")
    assert (score.happened, score.wrong) == (0, 1)


def test_a_change_beside_the_asked_one_is_wrong():
    after = {**BEFORE, "todo-1": ("buy stamps", True), "todo-2": ("call the plumber", True)}
    score, _ = judge(Ask("tick", "tick off the stamps", done={"stamps": True}), BEFORE, after, "")
    assert (score.happened, score.wrong) == (1, 1)


def test_chatting_must_not_change_anything_and_raw_calls_and_parrots_are_seen():
    reply = 'App note: hi {"name": "add_todo", "arguments": {}}'
    score, _ = judge(Ask("chit-chat", "hi"), BEFORE, {**BEFORE, "todo-4": ("hi", False)}, reply)
    assert (score.changes, score.wrong, score.raw, score.parrot) == (0, 1, 1, 1)


def test_a_rename_keeps_the_todo_and_changes_its_title():
    after = {**BEFORE, "todo-2": ("call the electrician", False)}
    ask = Ask("rename", "rename the plumber one to 'call the electrician'", added=["electrician"], gone=["plumber"])
    score, _ = judge(ask, BEFORE, after, "")
    assert (score.happened, score.wrong) == (1, 0)


# "Claimed but not done": a reply that says it changed the list when the asked change was not made.

def test_a_rename_claimed_with_a_recital_while_nothing_changed_is_a_claim():
    reply = "I renamed the plumber one to 'call the electrician'. The todo list is now: #1 buy stamps, #2 call the electrician, #3 water the plants (done)"
    ask = Ask("rename", "rename the plumber one to 'call the electrician'", added=["electrician"], gone=["plumber"])
    score, verdict = judge(ask, BEFORE, dict(BEFORE), reply)
    assert (score.happened, score.claimed, verdict) == (0, 1, "MISSED CLAIMED")


def test_a_card_backed_reply_for_a_change_made_is_no_claim():
    after = {**BEFORE, "todo-5": ("oat milk", False)}
    score, verdict = judge(Ask("add", "add oat milk", added=["oat milk"]), BEFORE, after, "Added #5 'oat milk'.", ["Added #5 'oat milk'."])
    assert (score.happened, score.claimed, verdict) == (1, 0, "ok")


def test_a_card_repeated_in_words_for_a_wrong_change_is_wrong_but_no_claim():
    "The 2026-12-06 run: asked to add, the model deleted, and its words said so: honest, if unwanted."
    after = {k: v for k, v in BEFORE.items() if k != "todo-2"}
    card = "Deleted #2 'call the plumber'."
    reply = card + " The todo list is now: #1 buy stamps; #3 water the plants (done)."
    score, verdict = judge(Ask("add", "note down 'take out the bins'", added=["bins"]), BEFORE, after, reply, [card])
    assert (score.happened, score.wrong, score.claimed, verdict) == (0, 1, 0, "MISSED WRONG")
    score, _ = judge(Ask("add", "note down 'take out the bins'", added=["bins"]), BEFORE, BEFORE, reply, [])
    assert score.claimed == 1  # the same words with no card and nothing changed: a claim


def test_claim_words_and_what_is_no_claim():
    for reply in ["Marked #3 'water the plants' as not done.", "Sure, I've added oat milk.", "Oat milk has been added!",
                  "Okay, removed it.", "Your stamps are now done."]:
        assert claims_change(reply, BEFORE, BEFORE), reply
    for reply in ["I haven't added anything.", "'water the plants' is marked as done.", "I'll add it.",
                  "You have 3 todos: buy stamps, call the plumber and water the plants.", "Hello! How can I help?"]:
        assert not claims_change(reply, BEFORE, BEFORE), reply


def test_a_recital_counts_only_when_it_differs_from_the_real_list():
    same = "Your list is now: buy stamps, call the plumber, water the plants (done)."
    assert not claims_change(same, BEFORE, BEFORE)
    assert claims_change("Your list is now: buy stamps, water the plants.", BEFORE, BEFORE)  # the plumber left out
    after = {k: v for k, v in BEFORE.items() if k != "todo-1"}
    assert claims_change("The updated list: buy stamps, call the plumber, water the plants.", BEFORE, after)  # gone, still recited


def test_a_claim_on_a_question_or_chat_counts_when_nothing_changed():
    score, verdict = judge(Ask("chit-chat", "thanks"), BEFORE, dict(BEFORE), "You're welcome! I added a reminder for you.")
    assert (score.claimed, score.wrong, verdict) == (1, 0, "ok CLAIMED")
    after = {**BEFORE, "todo-4": ("a reminder", False)}  # made, though not asked: wrong, but no claim of what was not done
    score, verdict = judge(Ask("chit-chat", "thanks"), BEFORE, after, "I added a reminder for you.")
    assert (score.claimed, score.wrong) == (0, 1)


def test_a_partly_made_change_claimed_whole_is_a_claim():
    after = {**BEFORE, "todo-4": ("bread", False)}
    score, verdict = judge(Ask("several", "add bread and eggs", added=["bread", "eggs"]), BEFORE, after, "I added bread and eggs.")
    assert (score.happened, score.claimed) == (0, 1)


# Sessions: an ask judged from the list just before it, whatever earlier asks made of it.

def test_an_ask_about_a_todo_an_earlier_ask_failed_to_make_is_missed():
    score, verdict = judge(Ask("delete", "remove the eggs", gone=["eggs"]), BEFORE, dict(BEFORE), "There are no eggs on your list.")
    assert (score.changes, score.happened, score.claimed) == (1, 0, 0)
    assert verdict == "MISSED (not on the list before: eggs)"


def test_clear_done_and_questions_follow_the_list_before_the_ask():
    before = {**BEFORE, "todo-1": ("buy stamps", True)}
    after = {"todo-2": ("call the plumber", False)}
    score, _ = judge(Ask("clear done", "clear the done ones", gone=["@done"]), before, after, "")
    assert (score.happened, score.wrong) == (1, 0)
    score, _ = judge(Ask("clear done", "clear the done ones", gone=["@done"]), before, {**after, "todo-3": ("water the plants", True)}, "")
    assert score.happened == 0
    score, _ = judge(Ask("question", "what's left?", mentions=["@open"]), before, before, "Just call the plumber.")
    assert (score.questions, score.answered) == (1, 1)
    score, _ = judge(Ask("question", "what's done?", mentions=["@done"]), before, before, "You bought the stamps.")
    assert score.answered == 0  # the plants left out


# The sets: the tuned one as it was, the held-out one apart, the sessions long and mixed.

def test_the_tuned_set_is_unchanged_and_the_held_out_set_is_new():
    assert len(ASKS) == 29 and sum(a.changes for a in ASKS) == 21
    held = held_out()
    assert len(held) >= 20 and not {a.text for a in held} & {a.text for a in ASKS}
    assert {"add", "tick", "untick", "rename", "delete", "clear done", "several", "question", "chit-chat", "greeting"} <= {a.scenario for a in held}
    assert "written on 2026-12-06; do not change these to make a figure better" in eval_asks_heldout.__doc__.replace("\n", " ").lower()


def test_sessions_are_long_and_mixed():
    assert len(SESSIONS) >= 2
    for asks in SESSIONS.values():
        assert len(asks) >= 8 and all(a.text for a in asks)
        assert {"add", "rename", "delete", "clear done", "question", "chit-chat"} <= {a.scenario for a in asks}
        assert {"tick", "untick"} & {a.scenario for a in asks}


def test_only_picks_the_parts():
    tuned, held, sessions = select(None)
    assert (len(tuned), len(held), list(sessions)) == (29, len(held_out()), list(SESSIONS))
    tuned, held, sessions = select(["add", "held-out:tick", "session2"])
    assert {a.scenario for a in tuned} == {"add"} and {a.scenario for a in held} == {"tick"} and list(sessions) == ["session 2"]
    tuned, held, sessions = select(["held-out", "session"])
    assert (tuned, len(held), len(sessions)) == ([], len(held_out()), len(SESSIONS))


def test_the_table_has_the_claimed_columns_and_a_whole_run_row():
    rows = table({"add": Score(asked=2, changes=2, happened=1, claimed=1, marked=1, seconds=4.0, first=3.0)})
    assert rows[0].split(" | ")[-4:-2] == ["claimed but not done", "of which marked"]
    assert rows[-1] == "| all | 2 | 1/2 | 0 | 0 | 0 | – | 1 | 1 | 1.5 | 2.0 |"


def test_a_decision_written_into_a_reply_is_raw_call_text():
    assert RAW_CALL.search('{"calls": []}') and RAW_CALL.search('{"calls": ["add_todo"]}')
    assert not RAW_CALL.search("No calls today, the phone is quiet.")
