"""The fake Ollama honours `format` (structured outputs) as Ollama's /api/chat does: the content is
JSON valid for the format, streamed in chunks; a malformed format gets Ollama's 500 error; a plan
no grammar could produce is a recorded test error, never invalid JSON. See tests/fake_ollama.py."""
import json
from typing import Literal

import jsonschema
import msgspec
import ollama
import requests

from tests.fake_ollama import Plan, closed, words

MODEL = "llama3.2:latest"
USER = [{"role": "user", "content": "add milk to my list"}]
DECISION = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["add", "remove", "none"]},
        "items": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": "string"},
    },
    "required": ["action", "items", "tags"],
}


def chat(fake, **body) -> requests.Response:
    return requests.post(f"{fake.url}/api/chat", json={"model": MODEL, "messages": USER, **body}, timeout=10)


def lines(response: requests.Response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.iter_lines() if line]


def content(stream: list[dict]) -> str:
    return "".join(m["message"]["content"] for m in stream if not m["done"])


def test_json_mode_yields_a_json_object(fake):
    stream = lines(chat(fake, format="json"))
    assert isinstance(json.loads(content(stream)), dict)  # Ollama's JSON grammar: root ::= object
    assert stream[-1]["done"] and stream[-1]["done_reason"] == "stop"
    assert fake.formats == ["json"]


def test_json_mode_streams_a_planned_object_in_chunks(fake):
    fake.plan(Plan(json={"answer": "yes", "count": 2}))
    stream = lines(chat(fake, format="json"))
    chunks = [m["message"]["content"] for m in stream[:-1]]
    assert len(chunks) > 3 and all(chunks)
    assert json.loads("".join(chunks)) == {"answer": "yes", "count": 2}


def test_a_schema_without_a_plan_gets_a_minimal_valid_instance(fake):
    value = json.loads(content(lines(chat(fake, format=DECISION))))
    jsonschema.validate(value, closed(DECISION))
    assert value == {"action": "add", "items": [""], "tags": []}  # first enum value, required only, minItems


def test_the_planned_value_streams_in_chunks_and_the_done_line_is_as_without_format(fake):
    plain = lines(chat(fake))
    decision = {"action": "remove", "items": ["milk", "eggs"], "tags": [], "note": "done"}
    fake.plan(Plan(json=decision))
    stream = lines(chat(fake, format=DECISION))
    chunks = [m for m in stream if not m["done"]]
    assert len(chunks) > 5
    for chunk in chunks:
        assert set(chunk) == {"model", "created_at", "message", "done"}
        assert chunk["message"]["role"] == "assistant" and set(chunk["message"]) == {"role", "content"}
    assert json.loads(content(stream)) == decision
    jsonschema.validate(json.loads(content(stream)), closed(DECISION))
    done = stream[-1]
    assert set(done) == set(plain[-1])
    assert done["message"] == {"role": "assistant", "content": ""} and done["done_reason"] == "stop"
    assert done["eval_count"] == len(chunks)
    assert stream == stream[:-1] + [done] and [m["done"] for m in stream].count(True) == 1
    assert fake.replies[-1] == content(stream)


def test_the_plan_can_set_the_json_text_chunk_by_chunk(fake):
    fake.plan(Plan(chunks=['{"action": ', '"none", ', '"items": ["x"], ', '"tags": []}']))
    stream = lines(chat(fake, format=DECISION))
    assert [m["message"]["content"] for m in stream[:-1]] == ['{"action": ', '"none", ', '"items": ["x"], ', '"tags": []}']


def test_a_plan_the_schema_forbids_is_a_test_error_not_invalid_json(fake):
    for bad in ({"action": "shout", "items": ["x"], "tags": []},  # not in the enum
                {"action": "add", "tags": []},  # a required property missing
                {"action": "add", "items": ["x"], "tags": [], "extra": 1}):  # the grammar admits no other property
        fake.plan(Plan(json=bad))
        r = chat(fake, format=DECISION)
        assert r.status_code == 500 and r.json()["error"].startswith("fake Ollama test error: ")
    assert len(fake.errors) == 3 and "does not satisfy the format" in fake.errors[0]
    fake.plan(Plan(chunks=["not ", "json"]))
    assert chat(fake, format="json").status_code == 500
    fake.plan(Plan(json=[1, 2]))  # "json" means an object
    assert chat(fake, format="json").status_code == 500
    fake.plan(Plan(tool_calls=[{"name": "add_todo", "arguments": {"text": "milk"}}]))
    assert chat(fake, format=DECISION).status_code == 500
    assert "tool_calls" in fake.errors[-1] and not fake.replies


def test_a_schema_the_fake_cannot_fill_is_a_test_error(fake):
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": "^[A-Z]{3}$"}}, "required": ["code"]}
    r = chat(fake, format=schema)
    assert r.status_code == 500 and "pattern" in fake.errors[-1]
    fake.plan(Plan(json={"code": "ABC"}))
    assert json.loads(content(lines(chat(fake, format=schema)))) == {"code": "ABC"}


def test_a_malformed_format_gets_ollamas_error(fake):
    fake.plan(Plan(json={"kept": True}))
    cases = {
        '"yaml"': "yaml",
        "42": 42,
        "[1, 2]": [1, 2],
    }
    for raw, fmt in cases.items():
        r = chat(fake, format=fmt)
        assert r.status_code == 500
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.json() == {"error": f"invalid format: {json.dumps(raw)}; expected \"json\" or a valid JSON Schema object"}
    assert chat(fake, format="yaml").json()["error"] == 'invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema object'
    for schema in ({"type": "foo"},  # not a JSON-Schema type
                   {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}},  # a dangling $ref
                   {"$ref": "https://example.com/schema.json"},  # not a local $ref
                   {"type": "string", "pattern": "[a-z]+"}):  # llama.cpp wants ^...$
        r = chat(fake, format=schema)
        assert (r.status_code, r.json()) == (500, {"error": "invalid JSON schema in format"}), schema
    assert fake.formats[-1] == {"type": "string", "pattern": "[a-z]+"}
    assert not fake.replies and not fake.errors
    # a refused request leaves the plans to the next reply
    assert json.loads(content(lines(chat(fake, format="json")))) == {"kept": True}


def test_a_schema_that_is_not_json_schema_is_refused_too(fake):
    "Stricter than Ollama (llama.cpp ignores a `required` that is not a list), so that plans can be checked."
    r = chat(fake, format={"type": "object", "required": "action"})
    assert (r.status_code, r.json()) == (500, {"error": "invalid JSON schema in format"})


def test_a_load_with_a_malformed_format_is_only_a_load(fake):
    r = requests.post(f"{fake.url}/api/chat", json={"model": MODEL, "messages": [], "format": "yaml"}, timeout=10)
    assert [m["done_reason"] for m in lines(r)] == ["load"]


def test_an_unknown_model_is_404_before_the_format_is_read(fake):
    r = requests.post(f"{fake.url}/api/chat", json={"model": "nope", "messages": USER, "format": "yaml"}, timeout=10)
    assert (r.status_code, r.json()) == (404, {"error": "model 'nope' not found"})


def test_a_request_without_format_is_unchanged(fake):
    stream = lines(chat(fake))
    expected = words(f'Reply 1: noted, you said "{USER[0]["content"]}". Fascinating. Truly.')
    assert [m["message"]["content"] for m in stream[:-1]] == expected
    assert set(stream[-1]) == {"model", "created_at", "message", "done", "done_reason", "total_duration",
                               "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_count",
                               "eval_duration"}
    assert stream[-1]["eval_count"] == len(expected)
    for fmt in (None, ""):  # Ollama reads both as no format
        stream = lines(chat(fake, format=fmt))
        assert content(stream).startswith("Reply ") and not fake.errors
    assert fake.formats == [None, None, ""]


def test_json_planned_without_a_format_is_plain_text(fake):
    fake.plan(Plan(json={"action": "add"}))
    assert content(lines(chat(fake))) == '{"action": "add"}'


def test_thinking_streams_before_the_constrained_json(fake):
    fake.plan(Plan(thinking=["The user ", "wants milk."], json={"action": "add", "items": ["milk"], "tags": []}))
    stream = lines(chat(fake, format=DECISION))
    assert [m["message"].get("thinking") for m in stream[:2]] == ["The user ", "wants milk."]
    assert all(m["message"]["content"] == "" for m in stream[:2])
    assert json.loads(content(stream))["items"] == ["milk"]


def test_num_predict_cuts_the_json_as_ollama_does(fake):
    stream = lines(chat(fake, format=DECISION, options={"num_predict": 3}))
    assert stream[-1]["done_reason"] == "length" and len(stream) == 4


def test_a_msgspec_schema_with_defs_and_literals(fake):
    class Decision(msgspec.Struct):
        action: Literal["add", "done", "nothing"]
        text: str
        due: str | None = None

    schema = msgspec.json.schema(Decision)
    assert "$ref" in schema  # msgspec puts the struct under $defs
    value = msgspec.json.decode(content(lines(chat(fake, format=schema))), type=Decision)
    assert value == Decision(action="add", text="")


def test_the_official_client_reads_a_structured_reply(fake):
    fake.plan(Plan(json={"action": "none", "items": ["x"], "tags": ["a"]}))
    parts = list(ollama.Client(host=fake.url).chat(model=MODEL, messages=USER, format=DECISION, stream=True))
    assert json.loads("".join(p.message.content for p in parts)) == {"action": "none", "items": ["x"], "tags": ["a"]}
    assert parts[-1].done and parts[-1].done_reason == "stop"
    try:  # the client checks `format` itself ("" | "json" | dict); a bad schema reaches the server
        ollama.Client(host=fake.url).chat(model=MODEL, messages=USER, format={"type": "foo"})
    except ollama.ResponseError as e:
        assert (e.status_code, e.error) == (500, "invalid JSON schema in format")
    else:
        raise AssertionError("a malformed format must fail")


def test_a_prefill_is_continued_and_a_reply_it_wrote_whole_is_ended_at_once(fake):
    whole = content(lines(chat(fake)))
    cut = whole[:len(whole) // 2]
    rest = lines(chat(fake, messages=USER + [{"role": "assistant", "content": cut}]))
    assert cut + content(rest) == whole and rest[-1]["done"], "the reply it began, carried on"
    ended = lines(chat(fake, messages=USER + [{"role": "assistant", "content": whole}]))
    assert content(ended) == "" and ended[-1]["done_reason"] == "stop", "its own finished answer: the end of turn"
    other = content(lines(chat(fake, messages=USER + [{"role": "assistant", "content": "Well,"}])))
    assert other.startswith(" ") and "Well," not in other, "text it never wrote: new words after it"
