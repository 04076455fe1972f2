"""The real-model evaluation's judge (bench/eval.py): what counts as the asked change, a wrong one,
raw call text and parroting, from the list before and after and the reply as shown."""
from bench.eval import Ask, judge

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
