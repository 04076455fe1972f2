"""Hypothesis strategies for what an attacker or a careless user could send: any text (lone
surrogates included), JSON of any shape and depth, and bus messages with any field values."""
import json

from hypothesis import strategies as st

# Every code point, lone surrogates included (hypothesis leaves them out by default).
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
ids = st.sampled_from(["s1", "s2", "r1", "r2", "w1", "a b", "", "x" * 65, "<b>"]) | any_text
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12)
FIELDS = ["msg", "stop", "retry", "regenerate", "reset", "model", "undo", "pull", "cancel_pull", "HEADERS", "lamp"]
form_fields = st.dictionaries(st.sampled_from(FIELDS) | any_text, json_values | any_text, max_size=5)


def as_json(value) -> str:
    "JSON as a browser could send it: lone surrogates as \\u escapes."
    return json.dumps(value, ensure_ascii=True)


frames = (form_fields.map(as_json) | json_values.map(as_json) | any_text | st.none()
          | st.integers(1, 3000).map(lambda depth: "[" * depth + "]" * depth))

# Text a model could write around a tool call (brain/text_calls.py). A call is {"name", "arguments"}
# with finite values (an invented tool's name included); a refused one holds a number JSON has not
# (NaN, Infinity, one out of range) or nests deeper than the recogniser takes.
TOOL_NAMES = ["add_todo", "set_todo_done", "delete_todo", "clear_done", "get_list"]
finite_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | any_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(any_text, inner, max_size=3),
    max_leaves=8)
calls = st.builds(lambda name, arguments: {"name": name, "arguments": arguments},
                  st.sampled_from(TOOL_NAMES), st.dictionaries(any_text, finite_json_values, max_size=3))
non_finite = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"])


def refused_calls(max_depth: int) -> st.SearchStrategy[str]:
    "Call text nothing can send on: a non-finite number in its arguments, or nesting past `max_depth`."
    def nested(depth: int) -> str:
        return "[" * depth + "]" * depth
    return (st.builds(lambda name, number: f'{{"name": "{name}", "arguments": {{"id": {number}}}}}',
                      st.sampled_from(TOOL_NAMES), non_finite)
            | st.integers(max_depth, 3000).map(lambda d: f'{{"name": "add_todo", "arguments": {{"title": {nested(d)}}}}}')
            | st.integers(max_depth + 1, 3000).map(nested))


# How a call may be written: the ways a model writes a call it means, and the ways it quotes one.
MEANT_WRAPPERS = ["{}", "```json\n{}\n```", "```\n{}\n```", "<tool_call>\n{}\n</tool_call>", "[{}]", "    {}"]
QUOTING_WRAPPERS = ["```python\n{}\n```", "> {}", "Call {} to do it.", "You could call:\n{}", "    x = 1\n    {}",
                    "```\nrun()\n{}\n```"]
prose = st.builds(lambda first, rest: first + rest,
                  st.characters(categories=["L", "N"]), st.text(max_size=40))


def call_text(max_depth: int) -> st.SearchStrategy[str]:
    "A call's JSON, a refused call's, or the start of either (a model stopped mid-call)."
    whole = calls.map(as_json) | refused_calls(max_depth)
    return whole | st.builds(lambda text, cut: text[:cut], whole, st.integers(1, 200))


def model_text(max_depth: int) -> st.SearchStrategy[str]:
    "What a model could write: prose, any text and calls written every way, meant or quoted, run together."
    wrapped = st.builds(lambda wrapper, call: wrapper.format(call),
                        st.sampled_from(MEANT_WRAPPERS + QUOTING_WRAPPERS), call_text(max_depth))
    parts = st.lists(st.tuples(prose | any_text | wrapped, st.sampled_from(["\n", "", " ", "\n\n", ", "])), max_size=6)
    return parts.map(lambda parts: "".join(part + between for part, between in parts))
