"""The one boundary to Ollama (brain/ollama_client.py) against the fake Ollama HTTP server: every
fault becomes a clear error, stats and thinking are read, the connection is reused."""
import pytest

from brain.ollama_client import ModelNotFound, OllamaClient, OllamaFailed, OllamaTimeout, OllamaUnavailable
from tests.fake_ollama import Plan

USER = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("plan, error, text", [
    (Plan(status=500, error="out of memory"), OllamaFailed, "Ollama answered 500: out of memory"),
    (Plan(status=503, error="server busy"), OllamaFailed, "Ollama answered 503: server busy"),
    (Plan(error_after=1), OllamaFailed, "error mid-reply"),
    (Plan(garbage_after=1), OllamaFailed, "not a chat chunk"),
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
