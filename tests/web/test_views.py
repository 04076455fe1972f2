"""What a tab is shown of its session (web/views.py): the status line and picker follow the
session's own model, the pull offer stands while that model is not pulled and not being pulled,
and a tab that (re)connects gets all of it at once."""
from bs4 import BeautifulSoup
from fasthtml.common import to_xml

from shared.config import Settings
from tests.web.test_chats import NowDB
from tests.fake_bus import FakeBus
from tests.web.test_sessions import Tabs
from web.sessions import Sessions
from web.status import ChainStatus
from web.store import Store, Transcripts
from web.transcript import Line, Status
from web.views import Views


class Broker(FakeBus):
    def __init__(self, models):
        super().__init__()
        self.models, self.asked_status = models, []

    def status_of(self, session, model=""):
        self.asked_status.append((session, model))
        return ChainStatus.NOT_PULLED, f"{model} is not pulled"


class Pulls:
    def __init__(self, *pulling): self.models = set(pulling)
    def pulling(self, model): return model in self.models
    def of(self, session): return []


def make(tmp_path, models=("llama3.2:latest",), pulling=()):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "MODEL": "llama3.2"})
    broker = Broker(None if models is None else list(models))
    sessions = Sessions(Transcripts(Store(tmp_path), NowDB()), Tabs(), broker)
    return Views(settings, sessions, broker, Pulls(*pulling)), sessions, broker


def html(ft):
    return BeautifulSoup(to_xml(ft), "html.parser")


def test_the_status_line_is_asked_for_the_sessions_own_model(tmp_path):
    views, sessions, broker = make(tmp_path)
    sessions.choose("s", "mistral")
    line = html(views.status_line("s")).find(id="brain-status")
    assert broker.asked_status == [("s", "mistral")] and line["class"] == ["brain", "not-pulled"]
    assert line.get_text() == "mistral is not pulled"


def test_the_picker_selects_the_sessions_model_or_the_default(tmp_path):
    views, sessions, _ = make(tmp_path)
    assert html(views.picker("s")).find("option", selected=True)["value"] == "llama3.2:latest"
    sessions.choose("s", "qwen3:4b")
    chosen = html(views.picker("s")).find("option", selected=True)
    assert (chosen["value"], chosen.get_text()) == ("qwen3:4b", "qwen3:4b (not pulled)")


def test_the_pull_offer_stands_only_while_the_model_is_listed_as_not_pulled_and_no_pull_runs(tmp_path):
    def offer(views, sid="s"):
        button = html(views.pull_panel(sid)).find(class_="pull-offer")
        return button and button.get_text()

    views, sessions, _ = make(tmp_path)
    assert offer(views) is None, "the default model is pulled"
    sessions.choose("s", "mistral")
    assert offer(views) == "Pull mistral"
    views, sessions, _ = make(tmp_path, pulling=("mistral",))
    sessions.choose("s", "mistral")
    assert offer(views) is None, "a pull of it runs"
    views, sessions, _ = make(tmp_path, models=None)
    sessions.choose("s", "mistral")
    assert offer(views) is None, "nothing is called not pulled before Ollama has listed its models"


def test_a_tab_that_connects_gets_the_transcript_status_picker_and_pulls(tmp_path):
    views, sessions, _ = make(tmp_path)
    sessions.add("s", Line(reply="r1", role="user", text="hi <b>"))
    sessions.add("s", Line(reply="r1", role="reply", text="hello", status=Status.STREAMING))
    page = BeautifulSoup(views.snapshot("s"), "html.parser")
    assert [a["id"] for a in page.find(id="msg-list").find_all("article")] == ["user-r1", "reply-r1"]
    assert page.find(id="user-r1-body").get_text() == "hi <b>"
    assert page.find(id="brain-status") and page.find(id="model-picker") and page.find(id="pulls")
    assert [a.id for a in views.bubbles("s")] == ["user-r1", "reply-r1"]


def test_a_model_chosen_refreshes_all_that_depends_on_it(tmp_path):
    views, sessions, _ = make(tmp_path)
    sessions.choose("s", "mistral")
    page = BeautifulSoup(views.model_chosen("s"), "html.parser")
    assert [tag["id"] for tag in page.find_all(recursive=False)] == ["model-picker", "brain-status", "pulls"]
    assert page.find(class_="pull-offer").get_text() == "Pull mistral"
