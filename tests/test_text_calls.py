"""The recogniser of tool calls written as text (brain/text_calls.py): every shape small models
write, split into chunks anywhere, and the look-alikes that must be shown as written."""
import json

import pytest
from hypothesis import given, strategies as st

from brain.ollama_client import ToolCall
from brain.text_calls import CallFilter

NAMES = {"add_todo", "set_todo_done", "rename_todo", "delete_todo", "clear_done"}
ADD = ToolCall("add_todo", {"title": "Oat Milk"})
TICK = ToolCall("set_todo_done", {"id": 2, "done": True})


def run(text: str, names=NAMES, markers=("App note:", "[app]"), pieces: list[int] | None = None):
    "Feed `text` (in pieces of the given sizes, else whole); what was shown live, at the end, and the calls."
    f = CallFilter(names, markers)
    live, i = [], 0
    for size in pieces or [len(text)]:
        live.append(f.feed(text[i:i + size]))
        i += size
    live.append(f.feed(text[i:]))
    rest, calls = f.finish()
    return "".join(live) + rest, calls


CALLS = {
    "bare object": ('{"name": "add_todo", "arguments": {"title": "Oat Milk"}}', "", [ADD]),
    "parameters": ('{"name": "add_todo", "parameters": {"title": "Oat Milk"}}', "", [ADD]),
    "arguments as a JSON string": ('{"name": "add_todo", "arguments": "{\\"title\\": \\"Oat Milk\\"}"}', "", [ADD]),
    "function wrapper": ('{"type": "function", "function": {"name": "add_todo", "arguments": {"title": "Oat Milk"}}}',
                         "", [ADD]),
    "flat arguments": ('{"name": "add_todo", "title": "Oat Milk"}', "", [ADD]),
    "no arguments": ('{"name": "clear_done"}', "", [ToolCall("clear_done", {})]),
    "json fence": ('```json\n{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\n```', "", [ADD]),
    "bare fence": ('```\n{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\n```', "", [ADD]),
    "tool_call tags": ('<tool_call>\n{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\n</tool_call>', "", [ADD]),
    "a list": ('[{"name": "add_todo", "arguments": {"title": "Oat Milk"}}, '
               '{"name": "set_todo_done", "arguments": {"id": 2, "done": true}}]', "", [ADD, TICK]),
    "one per line": ('{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\n'
                     '{"name": "set_todo_done", "arguments": {"id": 2, "done": true}}\n', "", [ADD, TICK]),
    "two in one fence": ('```json\n{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\n'
                         '{"name": "set_todo_done", "arguments": {"id": 2, "done": true}}\n```', "", [ADD, TICK]),
    "text around": ('On it.\n{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\nDone, you caffeine fiend.',
                    "On it.\nDone, you caffeine fiend.", [ADD]),
    "unclosed fence at the end": ('```json\n{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\n', "", [ADD]),
    "extra keys kept for the app to ignore": ('{"name": "add_todo", "arguments": {"title": "Oat Milk", "required": ["title"]}}',
                                              "", [ToolCall("add_todo", {"title": "Oat Milk", "required": ["title"]})]),
    "unknown tool in a call's shape": ('{"name": "get_todo_list", "arguments": {}}', "", [ToolCall("get_todo_list", {})]),
    "a title as the name": ('{"name": "water the plants", "arguments": {"id": 3}}', "",
                            [ToolCall("water the plants", {"id": 3})]),
    "the last brace missing at the end": ('{"name": "add_todo", "arguments": {"title": "Oat Milk"}', "", [ADD]),
    "an error text as the name": ('{"name": "Error: there is no tool named \'x\'; the tools are add_todo, set_todo_done, '
                                  'rename_todo, delete_todo, clear_done.", "arguments": {}}', "",
                                  [ToolCall("Error: there is no tool named 'x'; the tools are add_todo, set_todo_done, "
                                            "rename_todo, delete_todo, clear_done.", {})]),
    "calls joined by a comma": ('{"name": "add_todo", "arguments": {"title": "Oat Milk"}}, '
                                '{"name": "set_todo_done", "arguments": {"id": 2, "done": true}}', "", [ADD, TICK]),
    "a fence closing a bare call": ('{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\n```\nOn it.', "On it.", [ADD]),
    "a call closed twice": ('{"name": "add_todo", "arguments": {"title": "Oat Milk"}}}}\nOn it.', "On it.", [ADD]),
    "a call cut off mid-name at the end is dropped": ('Done.\n{"name": "', "Done.\n", []),
    "tool_calls object": ('{"tool_calls": [{"function": {"name": "add_todo", "arguments": {"title": "Oat Milk"}}}]}',
                          "", [ADD]),
}

LOOK_ALIKES = {
    "plain prose": "Oat milk? Bold choice. Added to your list of regrets.",
    "a JSON example naming no tool": 'Here is JSON:\n{"name": "Ada", "age": 36}\nNeat.',
    "an object that is not a call": '{"title": "Oat Milk", "done": false}',
    "a list of numbers": "[1, 2, 3]",
    "a markdown checkbox": "- [x] #2 stamps\n- [ ] #3 oat milk",
    "a python fence": '```python\nprint({"name": "add_todo"})\n```',
    "a fence of prose": "```\nnot json\n```",
    "broken JSON": '{"name": "add_todo", "arguments": {"title": "Oat Milk", }}',
    "an unclosed object that is no call": '{"title": "Oat Milk"',
    "a tag-like word": "<b>bold</b> claim",
    "braces in prose": "{curly} braces are fine",
    "a named object without arguments": '{"name": "Oat Milk Co", "price": 3}',
}


@pytest.mark.parametrize("text, shown, calls", CALLS.values(), ids=CALLS.keys())
def test_calls_written_as_text_are_taken_out(text, shown, calls):
    assert run(text) == (shown, calls)


@pytest.mark.parametrize("text", LOOK_ALIKES.values(), ids=LOOK_ALIKES.keys())
def test_look_alikes_are_shown_as_written(text):
    assert run(text) == (text, [])


def test_without_offered_tools_nothing_is_a_call():
    text = CALLS["bare object"][0]
    assert run(text, names=None) == (text, [])


@pytest.mark.parametrize("text, shown", [
    ('{"response": "Deleted #4. Dentist dodged."}', "Deleted #4. Dentist dodged."),
    ('{"response": "Deleted #4. Dentist dodged.', "Deleted #4. Dentist dodged."),
    ('{"message": "' + "long " * 100 + '"}', "long " * 100),
    ('{"response": "a", "mood": "smug"}', '{"response": "a", "mood": "smug"}'),
])
def test_a_reply_wrapped_in_json_shows_its_words(text, shown):
    assert run(text, pieces=[3] * len(text)) == (shown, [])


@pytest.mark.parametrize("text, shown", [
    ("[app] The user added #2 'buy milk'.", "The user added #2 'buy milk'."),
    ("App note: Hi! How is your day going?", "Hi! How is your day going?"),
    ("  [APP]: Hi! How is your day going?", "Hi! How is your day going?"),
    ("[app] [app] [app] Ha.", "Ha."),
    ("Nothing to strip: [app] in the middle.", "Nothing to strip: [app] in the middle."),
])
def test_a_marker_the_reply_starts_with_is_stripped(text, shown):
    assert run(text, pieces=[1] * len(text))[0] == shown


def test_raw_call_text_never_streams_while_held():
    "Fed a character at a time, nothing of the call is shown at any point; the text before it is."
    f = CallFilter(NAMES)
    text = 'Fine.\n{"name": "add_todo", "arguments": {"title": "Oat Milk"}}'
    shown = "".join(f.feed(c) for c in text)
    assert shown == "Fine.\n"
    assert f.finish() == ("", [ADD])


def test_prose_is_held_no_longer_than_its_first_characters():
    f = CallFilter(NAMES)
    assert f.feed("Sure") == "Sure"
    assert f.feed(" thing.\n{") == " thing.\n"  # a brace at a line start is held
    assert f.feed('"title') == '{"title'  # ... until it cannot be a call


def test_held_text_is_bounded():
    f = CallFilter(NAMES)
    junk = '{"name": ' + " " * 400
    assert f.feed(junk) == junk  # unnamed past 300 characters: shown


@pytest.mark.fuzz
@given(case=st.sampled_from([*CALLS.values(), *((t, t, []) for t in LOOK_ALIKES.values())]),
       cuts=st.lists(st.integers(min_value=0, max_value=12), max_size=60))
def test_any_chunking_gives_the_same_result(case, cuts):
    "Streams split anywhere (as tokens arrive) are recognised exactly as the whole text is."
    text, shown, calls = case
    assert run(text, pieces=cuts) == (shown, calls)


@pytest.mark.fuzz
@given(st.text(max_size=200), st.lists(st.integers(min_value=1, max_value=20), max_size=20))
def test_text_that_cannot_begin_a_call_is_shown_whole_and_at_once(text, cuts):
    "Prose is never held past its line and never lost: only a marker the reply starts with goes."
    prose = "".join(c for c in text if c not in "{[<`")
    f = CallFilter(NAMES, ("App note:", "[app]"))
    live = "".join(f.feed(prose[i:i + 7]) for i in range(0, len(prose), 7))
    rest, calls = f.finish()
    expected = prose.lstrip()
    for marker in ("app note:", "[app]"):
        while expected.lower().startswith(marker):
            expected = expected[len(marker):].lstrip(" :")
    assert calls == [] and (live + rest).strip() == expected.strip()


@pytest.mark.fuzz
@given(st.text(max_size=300), st.lists(st.integers(min_value=0, max_value=20), max_size=30))
def test_any_text_in_any_chunks_is_handled_the_same_as_whole(text, cuts):
    "Whatever the model writes and however it is split, the filter never fails and decides as it would on the whole."
    assert run(text, pieces=cuts) == run(text)


def test_a_call_naming_a_tool_is_held_until_it_closes_even_when_long():
    title = "x" * 1500
    text = json.dumps({"name": "add_todo", "arguments": {"title": title}})
    f = CallFilter(NAMES)
    assert "".join(f.feed(text[i:i + 7]) for i in range(0, len(text), 7)) == ""
    assert f.finish() == ("", [ToolCall("add_todo", {"title": title})])
