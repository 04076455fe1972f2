"""Pulls in the web (web/pulls.py through the chat layer: web/commands.py, web/replies.py), in-process with fakes for the bus and the
tabs: one pull per model however many tabs press Pull, progress fanned out to every session that
follows it, Cancel, Ollama's text escaped, and no bar left waiting when its brain goes away."""
import json

import pytest
from bs4 import BeautifulSoup

from shared.config import Settings
from shared.messages import Ack, CancelPull, Heartbeat, Pull, PullOutcome, PullProgress
from tests.fake_bus import FakeBus
from tests.web.test_chats import Client, FakeTabs, from_tab, make_chats
from web.store import Store


@pytest.fixture
def web(tmp_path):
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "BUS_HEARTBEAT_S": "1"})
    bus, tabs = FakeBus(), FakeTabs()
    chats, now = make_chats(settings, Store(tmp_path), bus, tabs), [0.0]
    chats.pulls.clock = lambda: now[0]
    return chats, bus, tabs, now


def press(chats, sid, **frame):
    client = Client()
    from_tab(chats, sid, client, json.dumps(frame))
    return client


def panel(tabs, sid):
    "The session's pull panel as its tabs show it now (the last one sent)."
    html = next(f for f in reversed(tabs.frames.get(sid, [])) if 'id="pulls"' in f)
    return BeautifulSoup(html, "html.parser").find(id="pulls")


def progress(pull: Pull, **fields):
    return PullProgress(worker="w1", session=pull.session, pull=pull.id, model=pull.model, **fields)


def pulls_sent(bus):
    return [m for m in bus.sent if isinstance(m, (Pull, CancelPull))]


def test_tabs_and_sessions_pressing_pull_share_one_pull_and_all_see_it_go(web):
    chats, bus, tabs, _ = web
    press(chats, "s", pull="qwen2.5:0.5b")
    press(chats, "s", pull="qwen2.5:0.5b")  # another tab of the session
    press(chats, "t", pull="qwen2.5:0.5b")  # another session
    [pull] = pulls_sent(bus)
    assert (pull.session, pull.model) == ("s", "qwen2.5:0.5b")
    chats.brain_message(progress(pull, status="pulling 8d32a80bb199", digest="sha256:8d32", completed=420_000_000,
                                 total=1_000_000_000))
    for sid in ("s", "t"):
        bar = panel(tabs, sid).find(class_="pull")
        assert bar.progress["value"] == "420000000" and bar.progress["max"] == "1000000000"
        assert bar.find(class_="detail").get_text() == "pulling 8d32a80bb199 · 42% · 420.0 MB of 1.0 GB"
        assert bar.button.get_text() == "Cancel"
    bus.models = ["llama3.2:latest", "qwen2.5:0.5b"]
    chats.brain_message(progress(pull, status="writing manifest", outcome=PullOutcome.PULLED))
    assert panel(tabs, "t").get_text(" ", strip=True) == "qwen2.5:0.5b is pulled."
    press(chats, "t", pull="qwen2.5:0.5b")
    assert len(pulls_sent(bus)) == 1, "a model that is pulled is not pulled again"


def test_cancel_withdraws_a_pull_no_brain_has_yet_or_asks_its_brain_to_stop(web):
    chats, bus, tabs, _ = web
    press(chats, "s", pull="mistral")
    [pull] = pulls_sent(bus)
    bus.withdraw = lambda message: message == pull.id
    press(chats, "s", cancel_pull=pull.id)
    assert panel(tabs, "s").get_text(" ", strip=True) == "The pull of mistral was cancelled."
    assert pulls_sent(bus) == [pull]

    press(chats, "s", pull="mistral")
    again = pulls_sent(bus)[-1]
    bus.withdraw = lambda message: False
    chats.brain_message(Ack(worker="w1", session="s", message=again.id))
    press(chats, "s", cancel_pull=again.id)
    cancel = pulls_sent(bus)[-1]
    assert isinstance(cancel, CancelPull) and (cancel.session, cancel.pull) == ("s", again.id) and cancel.id != again.id
    chats.brain_message(progress(again, status="pulling manifest", outcome=PullOutcome.CANCELLED))
    assert "cancelled" in panel(tabs, "s").get_text()


def test_a_session_cannot_cancel_a_pull_it_does_not_follow(web):
    chats, bus, tabs, _ = web
    press(chats, "s", pull="mistral")
    [pull] = pulls_sent(bus)
    bus.withdraw = lambda message: message == pull.id
    press(chats, "t", cancel_pull=pull.id)  # the id of another session's pull, sent by hand
    assert chats.pulls.pulling("mistral") and "Cancel" in panel(tabs, "s").get_text()
    press(chats, "t", pull="mistral")  # joined: now it is t's pull too
    press(chats, "t", cancel_pull=pull.id)
    assert not chats.pulls.pulling("mistral") and "cancelled" in panel(tabs, "s").get_text()


def test_a_model_name_with_a_newline_at_its_end_is_no_model_name(web):
    "Ollama would not know it, and it would start a second pull of the model beside the first."
    chats, bus, tabs, _ = web
    press(chats, "s", pull="mistral")
    client = press(chats, "t", pull="mistral\n")
    assert len(pulls_sent(bus)) == 1 and "That is not a model name." in "".join(client.sent)


def test_what_ollama_says_is_shown_as_text_in_one_line(web):
    chats, bus, tabs, _ = web
    press(chats, "s", pull="gemma3")
    [pull] = pulls_sent(bus)
    evil = "<img src=x onerror=alert(1)> pulling"
    chats.brain_message(progress(pull, status=evil, completed=1, total=2))
    html = next(f for f in reversed(tabs.frames["s"]) if 'id="pulls"' in f)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    chats.brain_message(progress(pull, outcome=PullOutcome.FAILED, error=f"Ollama could not pull 'gemma3': {evil}"))
    [line] = panel(tabs, "s").find_all(class_="error")
    assert line.get_text() == f"Ollama could not pull 'gemma3': {evil}" and not line.find("img")


def test_a_bad_model_name_is_refused_before_the_bus(web):
    chats, bus, _, _ = web
    client = press(chats, "s", pull="llama3.2; rm -rf /")
    assert pulls_sent(bus) == [] and "That is not a model name." in client.sent[-1]


def test_a_pull_ends_when_its_brain_goes_or_when_its_end_was_lost(web):
    chats, bus, tabs, now = web
    press(chats, "s", pull="mistral")
    [pull] = pulls_sent(bus)
    chats.brain_message(Ack(worker="w1", session="s", message=pull.id))
    chats.brain_lost("w1")
    assert "The brain stopped during the pull of mistral; press Pull to resume it." in panel(tabs, "s").get_text()

    press(chats, "s", pull="mistral")
    again = pulls_sent(bus)[-1]
    chats.brain_message(progress(again, status="writing manifest"))
    beat = dict(worker="w1", started=0.0, pid=1, model="llama3.2", parallel=4)
    chats.brain_message(Heartbeat(**beat, pulling=[], models=["llama3.2:latest", "mistral:latest"]))
    assert panel(tabs, "s").find(class_="pull running"), "not before two heartbeats have passed"
    now[0] = 2.5
    chats.brain_message(Heartbeat(**beat, pulling=[again.id], models=["llama3.2:latest"]))
    assert panel(tabs, "s").find(class_="pull running"), "still in hand"
    chats.brain_message(Heartbeat(**beat, pulling=[], models=["llama3.2:latest", "mistral:latest"]))
    assert panel(tabs, "s").get_text(" ", strip=True) == "mistral is pulled."


def test_a_model_that_is_not_pulled_can_be_chosen_and_the_page_offers_to_pull_it(web):
    chats, bus, tabs, _ = web
    client = press(chats, "s", model="qwen2.5:0.5b")
    assert "The model 'qwen2.5:0.5b' is not pulled. Run `ollama pull qwen2.5:0.5b`, or press Pull." in client.sent[-1]
    offer = panel(tabs, "s").find(class_="pull-offer")
    assert offer.get_text() == "Pull qwen2.5:0.5b" and json.loads(offer["hx-vals"]) == {"pull": "qwen2.5:0.5b"}
    press(chats, "s", pull="qwen2.5:0.5b")
    assert panel(tabs, "s").find(class_="pull-offer") is None, "no offer while it is being pulled"
