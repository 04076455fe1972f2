"""The recogniser of tool calls written as text (brain/text_calls.py): every shape small models
write when they mean a call, split into chunks anywhere; the look-alikes and the quoted or explained
calls that must be shown as written; and JSON no request could carry on."""
import json

import pytest
from hypothesis import given, strategies as st

from brain.ollama_client import ToolCall
from brain.text_calls import MAX_DEPTH, CallFilter
from tests.strategies import MEANT_WRAPPERS, any_text, as_json, calls as call_objects, model_text, prose, refused_calls

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
    "words after": ('{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\nDone, you caffeine fiend.',
                    "Done, you caffeine fiend.", [ADD]),
    "whitespace and a marker before": ('\n  [app] {"name": "add_todo", "arguments": {"title": "Oat Milk"}}', "", [ADD]),
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
    "a call cut off mid-name at the end is dropped": ('{"name": "', "", []),
    "tool_calls object": ('{"tool_calls": [{"function": {"name": "add_todo", "arguments": {"title": "Oat Milk"}}}]}',
                          "", [ADD]),
    "a decision written into a reply": ('{"calls": [{"name": "add_todo", "arguments": {"title": "Oat Milk"}}]}', "", [ADD]),
    "a decision of none written into a reply": ('{"calls": []}\nOat milk, noted.', "Oat milk, noted.", []),
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

DELETE = '{"name": "delete_todo", "arguments": {"id": 2}}'
# A call quoted or explained: shown as written and never applied (issue 24, finding 6).
QUOTED = {
    "on its own line after words": f"On it.\n{DELETE}\nDone, you caffeine fiend.",
    "after an explanation": f"To delete it you could call:\n{DELETE}",
    "in a json fence after words": f"For example:\n```json\n{DELETE}\n```",
    "in a bare fence after words": f"Like this:\n```\n{DELETE}\n```\nThat deletes #2.",
    "in a python fence": f"```python\n{DELETE}\n```",
    "in a python fence after words": f"In code:\n```python\ncall({DELETE})\n```",
    "among other code in a fence": f"```\nx = 1\n{DELETE}\n```",
    "among other JSON in a fence": f'```json\n{{"title": "x"}}\n{DELETE}\n```',
    "indented as code after words": f"You would send:\n\n    {DELETE}\n",
    "indented among other code": f"    x = 1\n    {DELETE}\n",
    "in a blockquote": f"> {DELETE}",
    "in the middle of a line": f"Calling {DELETE} deletes #2.",
    "in tags after words": f"Sure!\n<tool_call>\n{DELETE}\n</tool_call>",
    "a list after words": f"Both:\n[{DELETE}, {DELETE}]",
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
    "Fed a character at a time, nothing of the call is shown at any point; the words after it are."
    f = CallFilter(NAMES)
    text = '{"name": "add_todo", "arguments": {"title": "Oat Milk"}}\nFine.'
    shown = [f.feed(c) for c in text]
    assert "".join(shown) == "Fine." and shown[-1] == "."
    assert f.finish() == ("", [ADD])


def test_words_are_never_held_and_a_start_only_until_it_cannot_be_a_call():
    f = CallFilter(NAMES)
    assert f.feed("{") == ""  # the round could begin with a call
    assert f.feed('"title') == '{"title'  # ... until it cannot
    assert f.feed(' thing.\n{') == ' thing.\n{'  # words were shown: nothing after them is held
    assert f.feed('"name": "add_todo", "arguments": {}}') == '"name": "add_todo", "arguments": {}}'
    assert f.finish() == ("", [])


@pytest.mark.parametrize("text", QUOTED.values(), ids=QUOTED.keys())
@pytest.mark.parametrize("chunk", [None, 1, 5])
def test_a_quoted_or_explained_call_is_shown_as_written_and_never_applied(text, chunk):
    "Held text that turns out to be a quote is released whole, wherever the stream was split."
    assert run(text, pieces=chunk and [chunk] * len(text)) == (text, [])


def test_after_words_even_a_call_that_follows_a_taken_one_is_quoted():
    text = f'{CALLS["bare object"][0]}\nDone. To undo it you would call:\n{DELETE}'
    assert run(text) == (f"Done. To undo it you would call:\n{DELETE}", [ADD])


def test_a_call_after_a_reply_wrapped_in_json_is_quoted():
    assert run(f'{{"response": "Sure."}}\n{DELETE}') == (f"Sure.{DELETE}", [])


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


NOT_JSON_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]


@pytest.mark.parametrize("number", NOT_JSON_NUMBERS)
@pytest.mark.parametrize("wrapper", MEANT_WRAPPERS + ["{}\n{}"])
def test_a_call_with_a_number_json_has_not_is_shown_and_never_taken(number, wrapper):
    """json.loads reads NaN and Infinity (and 1e999 as infinity); a call holding one would make every
    later request of its session fail to encode (issue 24, finding 1). It is no call: shown as written."""
    call = f'{{"name": "set_todo_done", "arguments": {{"id": {number}, "done": true}}}}'
    text = wrapper.format(call, CALLS["bare object"][0])
    for pieces in (None, [1] * len(text)):
        assert run(text, pieces=pieces) == (text, [])


@pytest.mark.parametrize("number", NOT_JSON_NUMBERS)
def test_a_cut_off_call_with_a_number_json_has_not_is_shown_not_dropped(number):
    text = f'{{"name": "set_todo_done", "arguments": {{"id": {number}'
    assert run(text) == (text, [])


@pytest.mark.parametrize("number", NOT_JSON_NUMBERS)
def test_arguments_given_as_a_json_string_with_such_a_number_are_unreadable_not_infinite(number):
    text = json.dumps({"name": "set_todo_done", "arguments": f'{{"id": {number}}}'})
    shown, [call] = run(text)
    assert shown == "" and call.arguments == {"_unreadable": f'{{"id": {number}}}'}


DEEP = 100_000


@pytest.mark.parametrize("text", [
    "[" * DEEP + "]" * DEEP,
    '{"name": "add_todo", "arguments": {"title": ' + "[" * DEEP + "]" * DEEP + "}}",
    '{"name": "add_todo", "arguments": {"title": ' + "[" * DEEP,
    "```json\n" + "[" * DEEP + "]" * DEEP + "\n```",
    "<tool_call>" + "{\"a\": " * DEEP + "1" + "}" * DEEP + "</tool_call>",
], ids=["a bare list", "a call's arguments", "a call's arguments cut off", "a fence", "tags"])
def test_deep_nesting_never_raises_and_is_shown(text):
    "json.loads raises RecursionError on deep input: the stream reader would fail."
    assert run(text) == (text, [])


def test_arguments_given_as_a_deep_json_string_are_unreadable():
    nested = "[" * DEEP + "]" * DEEP
    shown, [call] = run(json.dumps({"name": "add_todo", "arguments": nested}))
    assert call.arguments == {"_unreadable": nested[:200]}


def test_nesting_up_to_the_bound_is_still_a_call():
    "The bound refuses only what no tool takes: a call nested MAX_DEPTH deep in all is taken."
    title = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)
    text = f'{{"name": "add_todo", "arguments": {{"title": {title}}}}}'
    assert run(text) == ("", [ToolCall("add_todo", {"title": json.loads(title)})])
    assert run(text.replace("[]", "[[]]")) == (text.replace("[]", "[[]]"), [])


@pytest.mark.fuzz
@given(text=model_text(MAX_DEPTH), cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=40))
def test_whatever_a_model_writes_is_shown_or_taken_never_lost_and_only_calls_come_before_a_call(text, cuts):
    """Prose, fences, calls meant and quoted, numbers JSON has not, deep nesting, cut off anywhere,
    in any chunks: the reader never raises and decides as on the whole text; no character is shown
    twice or out of order; a call is taken only when nothing but calls comes before it (so what is
    shown is the text's end); and every call taken can be sent on as JSON."""
    shown, calls = run(text, markers=(), pieces=cuts)
    assert (shown, calls) == run(text, markers=())
    if calls:
        assert text.endswith(shown), "nothing is shown before a call: words before it make it a quote"
    else:
        assert shown == text or (shown == "" and (not text.strip() or text.lstrip()[0] in "{[<`")), \
            "all is shown, or all was whitespace or a cut-off call"
    for call in calls:
        json.dumps(call.arguments, allow_nan=False)


@pytest.mark.fuzz
@given(meant=st.lists(st.tuples(st.sampled_from(MEANT_WRAPPERS), call_objects), max_size=3),
       first=prose | st.tuples(st.sampled_from(MEANT_WRAPPERS), refused_calls(MAX_DEPTH)).map(lambda w: w[0].format(w[1])),
       after=st.lists(model_text(MAX_DEPTH) | any_text, max_size=3),
       cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=40))
def test_the_calls_a_round_starts_with_are_taken_and_all_from_the_first_words_on_is_shown(meant, first, after, cuts):
    """A round that starts with calls, written any way a model means them, then has words (or a
    call no request could carry) and anything after them: exactly the calls before the words are
    taken, and everything from the words on is shown as written, whatever it holds."""
    text = "\n".join([wrapper.format(as_json(call)) for wrapper, call in meant] + [first, *after])
    rest = "\n".join([first, *after])
    if meant:
        rest = rest.lstrip(" \t\r\n}],")  # what is left around a call is taken with it
        if rest.startswith("```\n"):
            rest = rest[len("```\n"):]  # ... and a fence closing it
    expected = [ToolCall(call["name"], call["arguments"]) for _, call in meant]
    assert run(text, markers=(), pieces=cuts) == (rest, expected)
