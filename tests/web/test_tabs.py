"""A tab's chat connection (web/tabs.py), with fakes for the commands and the tabs: each frame is
counted against the session's rate and read once, a command is handed on typed, what is refused
goes no further than a notice, and a frame that breaks the web leaves the tab open and told."""
import asyncio
import json

import pytest

from tests import page
from tests.web.test_chats import Client
from web.commands import Command, Control, Used
from web.limits import Rate
from web.tabs import Tab, Tabs


class Commands:
    def __init__(self): self.done, self.fail = [], False

    def do(self, sid, client, frame):
        if self.fail:
            raise KeyError("a bug")
        self.done.append((sid, client, frame))


class Clients:
    def __init__(self): self.added, self.removed = [], []

    def add(self, sid, ws, tab=""):
        self.added.append((sid, ws, tab))
        client = Client()
        client.closing = None
        return client

    def remove(self, client): self.removed.append(client)


class Sessions:
    def __init__(self): self.opened = []
    async def open(self, sid): self.opened.append(sid)


class Views:
    def snapshot(self, sid): return f"snapshot of {sid}"


@pytest.fixture
def tabs():
    return Tabs(Clients(), Sessions(), Views(), Commands(), Rate(1, 3, clock=lambda: 0.0), max_chars=1024)


def test_a_tab_connects_with_its_session_read_in_and_starts_from_its_snapshot(tabs):
    tab = asyncio.run(tabs.connect("s", "the socket", "a" * 32))
    assert tabs.sessions.opened == ["s"] and tabs.clients.added == [("s", "the socket", "a" * 32)]
    tab.opened()
    assert tab.client.sent == ["snapshot of s"] and not tab.closing
    tab.close()
    assert tabs.clients.removed == [tab.client]


def test_each_frame_is_read_once_and_handed_on_typed(tabs):
    tab = Tab(tabs, "s", Client())
    tab.receive(json.dumps({"msg": "hi", "HEADERS": {"HX-Trigger": "chat-form"}}))
    tab.receive(json.dumps({"lamp": "on"}))
    assert tabs.commands.done == [("s", tab.client, Command(Control.MSG, "hi")), ("s", tab.client, Used({"lamp": "on"}))]
    assert tab.client.sent == []


@pytest.mark.parametrize("text", [None, "not json", json.dumps({"msg": 5}), json.dumps({"msg": "x" * 1024})])
def test_a_frame_that_cannot_be_read_goes_no_further_than_a_notice(tabs, text):
    tab = Tab(tabs, "s", Client())
    tab.receive(text)
    [told] = page.notices(tab.client.sent)
    assert tabs.commands.done == [] and "othing was sent" in told


def test_frames_past_the_sessions_rate_are_refused_and_told_once(tabs):
    tab, other = Tab(tabs, "s", Client()), Tab(tabs, "t", Client())
    for i in range(10):
        tab.receive(json.dumps({"lamp": str(i)}))
    assert len(tabs.commands.done) == 3
    assert page.notices(tab.client.sent) == ["Too many messages at once; slow down. More than 3 at a time, or 1 a second, "
                                   "are ignored (SESSION_RATE)."]
    tab.receive("not json")
    assert len(tab.client.sent) == 1, "an unreadable frame past the rate is not even read"
    other.receive(json.dumps({"msg": "hello"}))
    assert tabs.commands.done[-1][0] == "t", "other sessions are not held back"


def test_a_frame_the_web_could_not_handle_is_told_and_the_tab_goes_on(tabs, caplog):
    tab = Tab(tabs, "s", Client())
    tabs.commands.fail = True
    tab.receive(json.dumps({"msg": "hi"}))
    assert page.notices(tab.client.sent) == ["That message could not be handled; nothing was sent."]
    assert "could not be handled" in caplog.text
    tabs.commands.fail = False
    tab.receive(json.dumps({"msg": "again"}))
    assert tabs.commands.done[-1][2] == Command(Control.MSG, "again")
