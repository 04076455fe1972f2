"""bench/llama_ollama.py turns Ollama's `format` into a llama.cpp grammar and refuses a malformed
one as Ollama does. No model file is needed: the HTTP tests serve a stub engine."""
import json
import threading
from http.server import ThreadingHTTPServer
from types import SimpleNamespace

import pytest
import requests

pytest.importorskip("llama_cpp")  # the `llama` extra (make bench-llama); absent from a plain `make test` setup
from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar  # noqa: E402

from bench.llama_ollama import FormatError, grammar_for, handler  # noqa: E402
from brain.tools import parameters  # noqa: E402
from tests.fake_ollama import format_schema  # noqa: E402
from tests.fake_ollama import FormatError as FakeFormatError  # noqa: E402

DECISION = {"type": "object", "properties": {"action": {"type": "string", "enum": ["add", "none"]},
                                             "items": {"type": "array", "items": {"type": "string"}}},
            "required": ["action", "items"]}
MALFORMED = ["yaml", "JSON", 42, [1, 2], True,  # not "json", not an object
             {"type": "foo"}, {"type": "string", "pattern": "[a-z]+"},  # what llama.cpp's converter refuses
             {"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}, {"$ref": "https://example.com/s.json"}]


def rules(grammar: LlamaGrammar) -> dict[str, str]:
    return dict(map(str.strip, line.split("::=", 1)) for line in grammar._grammar.splitlines() if "::=" in line)


def test_no_format_is_no_grammar():
    assert grammar_for(None) is None and grammar_for("") is None  # Ollama reads null and "" as unset


def test_json_is_the_json_grammar_rooted_at_an_object():
    grammar = grammar_for("json")
    assert grammar._grammar == JSON_GBNF
    assert rules(grammar)["root"] == "object"  # Ollama's grammarJSON: root ::= object too


def test_a_schema_becomes_its_grammar():
    grammar = grammar_for(DECISION)
    assert grammar._grammar == LlamaGrammar.from_json_schema(json.dumps(DECISION))._grammar
    assert '"\\"add\\"" | "\\"none\\""' in grammar._grammar  # the enum's values are the only choices
    assert rules(grammar_for({}))["root"] == "object"  # an empty schema: any object, as in Ollama


@pytest.mark.parametrize("fmt", MALFORMED, ids=repr)
def test_a_malformed_format_is_refused_with_ollamas_words_and_as_the_fake_does(fmt):
    with pytest.raises(FormatError) as refused:
        grammar_for(fmt)
    with pytest.raises(FakeFormatError) as faked:
        format_schema(fmt)
    assert str(refused.value) == str(faked.value)
    assert str(refused.value) == "invalid JSON schema in format" or str(refused.value).startswith("invalid format: ")
    if fmt == "yaml":
        assert str(refused.value) == 'invalid format: "\\"yaml\\""; expected "json" or a valid JSON Schema object'


class StubEngine:
    "What handler() uses of an Engine: its name, its model's size, and chat() (records the grammar it is given)."
    name = "gemma3:270m"
    llama = SimpleNamespace(_model=SimpleNamespace(n_params=lambda: 268_098_176))

    def __init__(self):
        self.grammars = []

    def chat(self, messages, tools, options, grammar=None):
        self.grammars.append(grammar)
        yield '{"action": "none", "items": []}', [], None
        yield None, None, {"done_reason": "stop", "eval_count": 1}


@pytest.fixture
def stand_in():
    engine = StubEngine()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler(engine))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield engine, f"http://127.0.0.1:{server.server_address[1]}/api/chat"
    server.shutdown()
    server.server_close()


def post(url, **body):
    return requests.post(url, json={"model": "gemma3:270m", "messages": [{"role": "user", "content": "hi"}], **body},
                         timeout=10)


def test_the_format_reaches_the_engine_as_a_grammar(stand_in):
    engine, url = stand_in
    r = post(url, format=DECISION)
    assert r.status_code == 200
    stream = [json.loads(line) for line in r.iter_lines() if line]
    assert json.loads(stream[0]["message"]["content"]) == {"action": "none", "items": []}
    assert stream[-1]["done"]
    assert engine.grammars[-1]._grammar == grammar_for(DECISION)._grammar
    post(url, format="json").close()
    assert engine.grammars[-1]._grammar == JSON_GBNF
    post(url).close()
    assert engine.grammars[-1] is None


def test_a_malformed_format_gets_500_before_any_chunk(stand_in):
    engine, url = stand_in
    r = post(url, format={"type": "foo"})
    assert (r.status_code, r.json()) == (500, {"error": "invalid JSON schema in format"})
    r = post(url, format="yaml")
    assert r.status_code == 500 and r.json()["error"].startswith("invalid format: ")
    assert engine.grammars == []  # nothing was generated
    r = requests.post(url, json={"model": "gemma3:270m", "messages": [], "format": "yaml"}, timeout=10)
    assert [json.loads(line)["done_reason"] for line in r.iter_lines() if line] == ["load"]  # a load ignores it


def test_the_model_is_described_as_ollama_describes_it_so_auto_can_tell_its_size(stand_in):
    _, url = stand_in
    shown = requests.post(url.replace("/api/chat", "/api/show"), json={"model": "gemma3:270m"}, timeout=10).json()
    assert shown["details"]["parameter_size"] == "268.10M" and parameters(shown) == 268_098_176
    missing = requests.post(url.replace("/api/chat", "/api/show"), json={"model": "llama3.2"}, timeout=10)
    assert (missing.status_code, missing.json()) == (404, {"error": "model 'llama3.2' not found"})
