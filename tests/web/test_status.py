"""The status line (web/status.py): which link of the chain web → brain → Ollama → model stands
between a session's next message and an answer, and that every open tab is kept told."""
from shared.messages import Heartbeat
from web.status import ChainStatus, StatusBoard, chain_status


def worker(**kw):
    return Heartbeat(worker="w1", started=0, pid=1, model="llama3.2", parallel=1,
                     **({"ollama": "up", "ollama_url": "http://127.0.0.1:11434", "models": ["llama3.2:latest"]} | kw))


def test_ready_only_when_a_message_would_be_answered_now():
    assert chain_status(worker(), False, "") == (ChainStatus.READY, "brain ready")
    assert chain_status(worker(busy=1), False, "") == (ChainStatus.BUSY, "brain thinking…")
    assert chain_status(worker(loading="llama3.2"), False, "") == (ChainStatus.LOADING, "loading llama3.2…")


def test_no_worker_is_offline_or_restarting_after_a_goodbye():
    assert chain_status(None, False, "") == (ChainStatus.OFFLINE, "brain offline")
    assert chain_status(None, True, "") == (ChainStatus.RESTARTING, "brain restarting…")


def test_ollama_down_names_its_address_and_the_command_that_fixes_it():
    status, text = chain_status(worker(ollama="down", ollama_url="http://10.0.0.5:11434"), False, "")
    assert status == ChainStatus.OLLAMA_DOWN
    assert text == "Ollama is not running at 10.0.0.5:11434 — start it with `ollama serve`"
    assert chain_status(worker(ollama="checking", models=None), False, "") == (ChainStatus.CHECKING, "checking Ollama…")


def test_the_sessions_own_model_decides_whether_it_is_pulled():
    w = worker(models=["llama3.2:latest", "qwen3:4b"])
    assert chain_status(w, False, "qwen3:4b")[0] == ChainStatus.READY
    assert chain_status(w, False, "llama3.2")[0] == ChainStatus.READY, "a name without a tag means :latest"
    status, text = chain_status(w, False, "mistral")
    assert status == ChainStatus.NOT_PULLED
    assert text == "mistral is not pulled — run `ollama pull mistral` (or pick another model)"
    assert chain_status(worker(models=["qwen3:4b"]), False, "")[0] == ChainStatus.NOT_PULLED, "'' is the worker's default"
    assert chain_status(worker(models=None), False, "mistral")[0] == ChainStatus.READY, "not listed yet: not judged"


def test_the_first_broken_link_is_the_one_told():
    everything_wrong = worker(ollama="down", models=["other:latest"], loading="llama3.2", busy=2)
    assert chain_status(everything_wrong, False, "")[0] == ChainStatus.OLLAMA_DOWN
    assert chain_status(worker(models=["other:latest"], loading="x", busy=1), False, "")[0] == ChainStatus.NOT_PULLED
    assert chain_status(worker(loading="llama3.2", busy=1), False, "")[0] == ChainStatus.LOADING


class Tabs:
    "The board's view of the open tabs: sessions, and what each was sent."

    def __init__(self, *sessions):
        self.by_session = {s: {object()} for s in sessions}
        self.sent = []

    def send(self, session, html):
        self.sent.append((session, html))


def test_every_session_gets_its_own_line_and_the_picker_only_when_the_models_changed():
    tabs, models = Tabs("a", "b"), [["m:latest"]]
    board = StatusBoard(tabs, line=lambda s: f"<line {s}>", picker=lambda s: f"<picker {s}>", models=lambda: models[0])
    board.changed()
    assert sorted(tabs.sent) == [("a", "<line a><picker a>"), ("b", "<line b><picker b>")], "the first list is news"
    tabs.sent.clear()
    board.changed()
    assert sorted(tabs.sent) == [("a", "<line a>"), ("b", "<line b>")], "same models: the line alone"
    tabs.sent.clear()
    models[0] = ["m:latest", "n:latest"]
    board.changed()
    assert sorted(tabs.sent) == [("a", "<line a><picker a>"), ("b", "<line b><picker b>")]
    tabs.sent.clear()
    tabs.by_session.clear()
    board.changed()
    assert tabs.sent == [], "no tab, nothing sent"
