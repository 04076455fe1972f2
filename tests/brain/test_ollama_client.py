"""The one boundary to Ollama (brain/ollama_client.py) against the fake Ollama HTTP server: every
fault becomes a clear error, stats and thinking are read, the connection is reused; pulls stream
their progress, end with the model listed, and fail with a line a person can act on."""
import threading

import pytest

from brain.ollama_client import (DiskFull, Hangup, HungUp, ModelNotFound, NoAnswer, NoSuchModel, OllamaClient,
                                 OllamaFailed, OllamaTimeout, OllamaUnavailable, RegistryUnreachable, Unsendable)
from shared.messages import FailCode
from tests.fake_ollama import Plan, PullPlan

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("plan, error, text", [
    (Plan(status=500, error="out of memory"), OllamaFailed, "Ollama answered 500: out of memory"),
    (Plan(status=503, error="server busy"), OllamaFailed, "Ollama answered 503: server busy"),
    (Plan(error_after=1), OllamaFailed, "error mid-reply"),
    (Plan(garbage_after=1), OllamaFailed, "not a chat chunk"),
    (Plan(garbage_after=1, garbage=b"[" * 5000 + b"]" * 5000), OllamaFailed, "not a chat chunk"),  # too deep to read
    (Plan(drop_after=1), OllamaFailed, "connection to Ollama broke"),
    (Plan(stall_after=1, stall=5), OllamaTimeout, "stalled mid-reply"),
    (Plan(first_byte_delay=2), OllamaTimeout, "did not start answering within 1s"),
])
def test_client_turns_each_fault_into_a_clear_error(fake, plan, error, text):
    fake.plan(plan)
    with pytest.raises(error, match=text.replace("(", r"\(")):
        list(OllamaClient(fake.url, 1, 1).chat("llama3.2", USER))


def test_client_names_the_missing_model_and_the_unreachable_host(fake):
    with pytest.raises(ModelNotFound, match=r"Run `ollama pull mistral`"):
        list(OllamaClient(fake.url).chat("mistral", USER))
    with pytest.raises(OllamaUnavailable, match=r"Can't reach Ollama at http://127.0.0.1:1\b"):
        list(OllamaClient("http://127.0.0.1:1").chat("llama3.2", USER))


def test_a_request_that_cannot_be_written_as_json_is_never_sent_and_is_not_taken_for_ollama_down(fake):
    "A call written as text may hold NaN or Infinity (json.loads takes them): JSON cannot carry them."
    called = {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "add_todo", "arguments": {"title": "milk", "qty": float("nan")}}}]}
    deep = []
    for _ in range(5000):
        deep = [deep]
    for arguments in (float("nan"), float("inf"), b"bytes", deep):
        called["tool_calls"][0]["function"]["arguments"]["qty"] = arguments
        with pytest.raises(Unsendable, match=r"could not be written as JSON .* so it was not sent") as refused:
            list(OllamaClient(fake.url).chat("llama3.2", [*USER, called, *USER]))
        assert not isinstance(refused.value, NoAnswer) and refused.value.code is FailCode.UNSENDABLE
    assert fake.requests == []


def test_a_request_closed_before_any_byte_got_no_answer_and_the_next_one_goes_on_the_same_client(fake):
    client = OllamaClient(fake.url)
    fake.plan(Plan(close=True))
    with pytest.raises(NoAnswer, match=r"closed the connection before answering") as dropped:
        list(client.chat("llama3.2", USER))
    assert not isinstance(dropped.value, OllamaUnavailable), "connected: not 'can't reach'"
    *_, stats = client.chat("llama3.2", USER)
    assert stats.done_reason == "stop" and len(fake.requests) == 2


def test_num_predict_bounds_the_reply_and_the_done_line_says_length(fake):
    fake.plan(Plan(chunks=[f" w{i}" for i in range(50)]))
    *deltas, stats = OllamaClient(fake.url).chat("llama3.2", USER, options={"num_ctx": 8192, "num_predict": 7})
    assert "".join(d.content for d in deltas) == " w0 w1 w2 w3 w4 w5 w6" and stats.done_reason == "length"
    assert fake.requests[-1]["options"] == {"num_ctx": 8192, "num_predict": 7}


def test_client_reads_stats_when_sent_and_degrades_when_omitted(fake):
    client = OllamaClient(fake.url)
    *deltas, stats = client.chat("llama3.2", USER)
    assert "".join(d.content for d in deltas) == fake.replies[-1]
    assert stats.done_reason == "stop" and stats.eval_count == len(deltas)
    fake.plan(Plan(stats=False))
    *_, bare = client.chat("llama3.2", USER)
    assert bare.done_reason == "stop" and bare.eval_count is None


def test_client_passes_thinking_separately(fake):
    fake.plan(Plan(thinking=["Hmm", ", let me see"], chunks=["Yes."]))
    deltas = list(OllamaClient(fake.url).chat("llama3.2", USER))[:-1]
    assert "".join(d.thinking for d in deltas) == "Hmm, let me see"
    assert "".join(d.content for d in deltas) == "Yes."


def test_client_keeps_one_connection_alive_across_replies(fake):
    client = OllamaClient(fake.url)
    for _ in range(5):
        list(client.chat("llama3.2", USER))
    assert fake.server.connections == 1


def test_a_pull_streams_each_layer_then_the_model_is_listed(fake):
    fake.pull_plan = PullPlan(layers=(1000, 10), steps=2, delay=0)
    client = OllamaClient(fake.url)
    lines = list(client.pull("qwen2.5:0.5b"))
    assert [line.status for line in lines][0] == "pulling manifest"
    assert [line.status for line in lines][-2:] == ["verifying sha256 digest", "writing manifest"]
    layers = [line for line in lines if line.digest]
    assert [(line.completed, line.total) for line in layers] == [(0, 1000), (500, 1000), (1000, 1000),
                                                                 (0, 10), (5, 10), (10, 10)]
    assert all(line.status == f"pulling {line.digest[7:19]}" for line in layers)
    assert fake.pulls == [{"model": "qwen2.5:0.5b", "stream": True}]
    assert "qwen2.5:0.5b" in client.models()


@pytest.mark.parametrize("model, fault, error, text", [
    ("no-such-model", "", NoSuchModel, "There is no model 'no-such-model' to pull: check the name at ollama.com/library "
                                       "(Ollama said: pull model manifest: file does not exist)."),
    ("bad name!", "", NoSuchModel, "'bad name!' is not a model name Ollama accepts (Ollama said: invalid model name)."),
    ("mistral", "disk_full", DiskFull, "Ollama's disk is full: free some space"),
    ("mistral", "offline", RegistryUnreachable, "Ollama cannot reach the model registry: check the network"),
    ("mistral", "break", OllamaFailed, "The connection to Ollama broke while pulling 'mistral'. Pull again to resume."),
])
def test_a_pull_that_fails_says_so_in_one_line(fake, model, fault, error, text):
    fake.pull_plan = PullPlan(delay=0, fault=fault)
    with pytest.raises(error) as failed:
        list(OllamaClient(fake.url).pull(model))
    assert str(failed.value).startswith(text) and "\n" not in str(failed.value) and len(str(failed.value)) < 420
    assert "mistral:latest" not in fake.models


def test_a_pull_with_ollama_down_names_the_fix():
    with pytest.raises(OllamaUnavailable, match=r"Start it with `ollama serve`"):
        list(OllamaClient("http://127.0.0.1:1").pull("qwen2.5:0.5b"))


def test_a_hangup_ends_a_pull_at_once_and_ollama_sees_the_client_leave(fake):
    fake.pull_plan = PullPlan(steps=50, delay=0.05)
    hangup = Hangup()
    pulled = OllamaClient(fake.url).pull("qwen2.5:0.5b", hangup=hangup)
    next(pulled)
    threading.Timer(0.2, hangup.fire).start()
    with pytest.raises(HungUp, match="The pull of 'qwen2.5:0.5b' was cancelled"):
        list(pulled)
    fake.wait(lambda f: f.pull_hangups == ["qwen2.5:0.5b"])
    assert "qwen2.5:0.5b" not in fake.models


def test_the_official_client_reads_the_fakes_pull_as_ollamas():
    "The PyPI `ollama` client parses pull progress into ProgressResponse: the fake's lines must fit it."
    import ollama  # a dev dependency: the official client
    from tests.fake_ollama import FakeOllama
    fake = FakeOllama().start()
    fake.pull_plan = PullPlan(layers=(1000,), steps=2, delay=0)
    try:
        parsed = list(ollama.Client(host=fake.url).pull("qwen2.5:0.5b", stream=True))
        assert all(isinstance(p, ollama.ProgressResponse) for p in parsed)
        assert [p.status for p in parsed][-1] == "success" and parsed[2].completed == 500 and parsed[2].total == 1000
        with pytest.raises(ollama.ResponseError, match="pull model manifest: file does not exist"):
            list(ollama.Client(host=fake.url).pull("no-such-model", stream=True))
    finally:
        fake.stop()


def test_arguments_given_as_a_deep_json_string_are_unreadable_not_a_failed_stream(fake):
    "msgspec raises RecursionError, not DecodeError, on deep input: one call's arguments must not end the reply."
    nested = "[" * 100_000 + "]" * 100_000
    fake.plan(Plan(tool_calls=[{"name": "add_todo", "arguments": nested}]))
    [call] = next(item for item in OllamaClient(fake.url).chat("llama3.2", USER) if isinstance(item, list))
    assert (call.name, call.arguments) == ("add_todo", {"_unreadable": nested[:200]})
