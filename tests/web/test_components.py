"""What the tabs are sent (web/components.py): transcript lines rendered as htmx-ext-ws fragments
for every tab of a session (the `Relay`), and a notice for one tab, read back the way htmx-ext-ws
applies them (tests/page.py's Tab)."""
from tests.page import Tab
from web.components import Relay, notify
from web.transcript import Line, Status


class Clients:
    "Every tab of each session, as a page that applies what it is sent."

    def __init__(self, *sessions):
        self.tabs = {s: [Tab(ws=[]), Tab(ws=[])] for s in sessions}

    def send(self, session, html, but=""):
        for tab in self.tabs.get(session, ()):
            if not but or tab.id != but:
                tab._apply(html)


def reply(reply_id="r1", text="", status=Status.STREAMING, **kw):
    return Line(session="s", reply=reply_id, role="reply", text=text, status=status, **kw)


def test_new_lines_appear_at_the_end_in_every_tab_of_the_session_only():
    clients = Clients("s", "other")
    relay = Relay(clients)
    relay.append("s", Line(session="s", reply="r1", role="user", text="hi <b>there</b>"), reply())
    for tab in clients.tabs["s"]:
        assert list(tab.bubbles) == ["user-r1", "reply-r1"]
        assert tab.bubbles["user-r1"].text == "hi <b>there</b>", "shown as text, never as markup"
        assert tab.bubbles["reply-r1"].status == "streaming"
    assert all(tab.bubbles == {} for tab in clients.tabs["other"])


def test_streamed_words_and_thinking_are_appended_to_their_reply():
    clients = Clients("s")
    relay = Relay(clients)
    relay.append("s", reply(thinking="hmm"))
    relay.words("s", "r1", "Hello", "")
    relay.words("s", "r1", " <world>", " more")
    relay.words("s", "r1", "", "")
    tab = clients.tabs["s"][0]
    assert tab.bubbles["reply-r1"].text == "Hello <world>"
    assert tab.bubbles["reply-r1"].thinking == "hmm more"
    assert tab.appends == [("reply-r1", "Hello"), ("reply-r1", " <world>")], "nothing sent for no words"


def test_a_changed_line_is_replaced_where_it_stands():
    clients = Clients("s")
    relay = Relay(clients)
    relay.append("s", reply("r1", "first"), reply("r2", "second"))
    relay.show("s", reply("r1", "first, all of it", status=Status.DONE, note="3 tokens"))
    tab = clients.tabs["s"][0]
    assert list(tab.bubbles) == ["reply-r1", "reply-r2"]
    assert (tab.bubbles["reply-r1"].text, tab.bubbles["reply-r1"].status, tab.bubbles["reply-r1"].note) == (
        "first, all of it", "done", "3 tokens")


def test_the_whole_transcript_replaces_what_a_tab_showed():
    clients = Clients("s")
    relay = Relay(clients)
    relay.append("s", reply("old", "gone"))
    relay.transcript("s", [reply("a", "one", status=Status.DONE), reply("b", "two", status=Status.FAILED)])
    tab = clients.tabs["s"][1]
    assert [(k, b.text, b.status) for k, b in tab.bubbles.items()] == [("reply-a", "one", "done"), ("reply-b", "two", "failed")]


def test_a_change_to_the_app_has_every_tab_of_the_session_fetch_it_again_but_the_one_that_made_it():
    frames = []

    class Recorder:
        def send(self, session, html, but=""):
            frames.append((session, html, but))

    relay = Relay(Recorder())
    relay.refresh("s")
    relay.refresh("s", but="a" * 32)
    assert [(s, 'id="loop-refresh"' in html and 'hx-swap-oob="true"' in html, but) for s, html, but in frames] == [
        ("s", True, ""), ("s", True, "a" * 32)]


def test_a_notice_goes_to_one_tab():
    sent = []

    class Client:
        def send(self, html):
            sent.append(html)

    notify(Client(), "Too long: 8000 characters at most.")
    tab = Tab(ws=[])
    tab._apply(sent[0])
    assert tab.notice == "Too long: 8000 characters at most."
