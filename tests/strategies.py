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
