"""When Ollama misbehaves the user is told, in the chat, what happened and what to do; the brain
stays up and the next message works once Ollama is fine again."""
import pytest

from brain.ollama_client import ModelNotFound, OllamaClient, OllamaFailed, OllamaTimeout, OllamaUnavailable
from tests.fake_ollama import FakeOllama, Plan
from tests.page import Visitor
from tests.system import free_port

USER = [{"role": "user", "content": "hi"}]


def test_ollama_down_is_told_and_the_next_message_works_once_it_is_up(start_system, fake):
    port = free_port()
    system = start_system(OLLAMA_HOST=f"127.0.0.1:{port}")
    visitor = Visitor(system.url)
    tab = visitor.open_tab()

    tab.send("anyone home?")
    [failed] = tab.wait(lambda t: t.finished(1))
    assert failed.status == "failed"
    assert f"Can't reach Ollama at http://127.0.0.1:{port}" in failed.note and "ollama serve" in failed.note

    late = FakeOllama(port=port).start()
    try:
        tab.send("how about now?")
        replies = tab.wait(lambda t: t.finished(2))
        assert replies[-1].status == "done" and replies[-1].text == late.replies[-1]
    finally:
        late.stop()
        visitor.close()


def test_a_model_that_is_not_pulled_names_the_pull_command(start_system, fake):
    system = start_system(OLLAMA_MODEL="qwen3:4b")
    visitor = Visitor(system.url)
    tab = visitor.open_tab()

    tab.send("hello")
    [failed] = tab.wait(lambda t: t.finished(1))
    assert failed.status == "failed" and "`ollama pull qwen3:4b`" in failed.note

    fake.models.append("qwen3:4b")
    tab.send("hello again")
    assert tab.wait(lambda t: t.finished(2))[-1].status == "done"
    visitor.close()


def test_an_error_mid_stream_keeps_the_partial_text_out_of_context(system, visitor, fake):
    fake.plan(Plan(chunks=["One", " two", " three", " four"], error_after=2))
    tab = visitor.open_tab()

    tab.send("count for me")
    [failed] = tab.wait(lambda t: t.finished(1))
    assert failed.status == "failed" and failed.text == "One two"
    assert "Ollama reported an error mid-reply" in failed.note

    tab.send("try again")
    assert tab.wait(lambda t: t.finished(2))[-1].status == "done"
    turns = fake.chat_requests()[-1]["messages"][1:]
    assert [m["role"] for m in turns] == ["user", "user"], "a broken reply must not enter the context as complete"


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
