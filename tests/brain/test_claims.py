"""A reply that claims a change (brain/claims.py): its words come from the app's own tools."""
import pytest

from apps.reading import loop as reading
from apps.todo import loop as todo
from brain.claims import claimed, past, verbs
from web.apps import Host, tool_schema

TODO = [tool_schema(a) for a in todo.as_app(Host(None)).actions]
READING = [tool_schema(a) for a in reading.as_app(Host(None)).actions]


def test_the_past_tense_of_a_tools_verb():
    assert [past(v) for v in ("add", "remove", "tick", "set", "tidy", "give", "play")] == \
        ["added", "removed", "ticked", "set", "tidied", "gave", "played"]


def test_the_words_of_a_claim_come_from_the_tools_names_and_descriptions():
    assert {"added", "ticked", "renamed", "deleted", "cleared", "removed", "gave"} <= verbs(TODO)
    assert "ticked" in verbs(TODO), "from set_todo_done's description: 'Tick a todo off …'"


@pytest.mark.parametrize("text", [
    "I added oat milk to your list!", "I've just ticked off the stamps.", "Sure. Renamed it to 'call the electrician'.",
    "The dentist one has been deleted.", "I have removed it. The todo list is now: #1 milk.",
    "Okay! I marked it as done.", "I cleared the done ones.", "Okay, let's remove the dentist one!",
    "Sure, I'll add oat milk.", "I'm going to tick it off."])
def test_a_reply_that_says_it_changed_the_list_is_a_claim(text):
    assert claimed(text, TODO)


@pytest.mark.parametrize("text", [
    "Milk is a fine thing to add.", "You added milk, how bold.", "Want me to delete it?", "Hello! How can I help?",
    "Let's see what is left.", "I'll be here if you need me.",
    "Your list: buy stamps, call the plumber.", "Adding things is my favourite."])
def test_words_that_claim_no_change_of_the_models_own_are_not(text):
    assert not claimed(text, TODO)


def test_another_apps_tools_give_its_own_words_and_no_tools_none():
    assert verbs(READING) - verbs([]) == {"added", "took"}, "add_book; 'Take a book off the list'"
    assert claimed("I took 'Dune' off your list.", READING) and not claimed("I took a look at your list.", [])
    assert claimed("I added it.", None) is None and claimed("I added it.", []) is None
