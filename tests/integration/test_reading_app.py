"""Process-level: the second app (APP=reading) end to end, on the same brain as the todo app.

The web serves the reading list (apps/reading, a plain FastHTML app with a Loop), a real brain
worker answers through the fake Ollama, and a user adds a book with the page's form, has the model
mark it read in a reply, and presses Undo; the tab is told each time to fetch the app's part of the
page again. The brain knows nothing of books: the persona, the tools and every word about the list
come from the app, through the web."""
import importlib
import json
import sys

import pytest
from bs4 import BeautifulSoup

from tests.fake_ollama import Plan
from web.loop import APP_NOTES, RESTRAINT

pytestmark = pytest.mark.env(APP="reading")


@pytest.fixture
def persona(tmp_path, monkeypatch):
    "The app's own persona: its module imported here too, with a data folder of its own."
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    monkeypatch.delitem(sys.modules, "apps.reading", raising=False)
    return importlib.import_module("apps.reading").PERSONA


def call(tool, **arguments):
    return Plan(tool_calls=[{"name": tool, "arguments": arguments}])


def test_add_a_book_have_the_model_mark_it_read_and_undo_it(system, visitor, fake, persona):
    page = BeautifulSoup(visitor.page.text, "html.parser")
    assert page.title.get_text() == "Reading list"
    assert page.select_one("#book-form input#book-title") and page.select_one("#book-form input#book-author")
    assert page.select("#book-list > li") == [] and not page.select("#todo-form, #todo-list"), "the reading app only"
    assert "You are the librarian inside a reading-list app" in visitor.page.text, "its persona on show"
    tab = visitor.open_tab()

    # The user adds a book with the form: the tab is told to refresh, and the model is told in an
    # app note, in the app's words (Loop.tell), and comments.
    bid = visitor.add_book("Dune", "Frank Herbert")
    tab.wait(lambda t: t.refreshes == 1, what="the tab told to fetch the list again")
    assert visitor.listed("book") == {bid: ("Dune", False)}
    [comment] = tab.wait(lambda t: t.finished(1), what="the librarian's comment on the new book")
    assert comment.status == "done" and comment.text == fake.replies[-1]
    first = fake.chat_requests()[-1]
    system_message = first["messages"][0]
    assert system_message["role"] == "system" and system_message["content"].startswith(persona), "not the todo app's"
    assert system_message["content"] == persona + APP_NOTES + RESTRAINT, "the layer adds what app notes are"
    assert [t["function"]["name"] for t in first["tools"]] == ["add_book", "mark_read", "remove_book"]
    assert first["messages"][-1] == {"role": "user", "content": f"App note: The user added #{bid} 'Dune' by Frank "
                                                                f"Herbert.\nThe reading list now:\n- [ ] #{bid} 'Dune' by "
                                                                "Frank Herbert"}

    # The model marks it read in its reply: applied once, the tab refreshed, a card, answered to the model.
    fake.plan(call("mark_read", id=bid, read=True), Plan(chunks=["About", " time."]))
    tab.send("I finally finished Dune")
    [reply] = tab.wait(lambda t: [r for r in t.reply_ids("done") if t.bubbles[r].text == "About time."],
                       what="the reply that acted")
    marked = "mark_read done: " + json.dumps({"id": bid, "title": "Dune", "author": "Frank Herbert", "read": True})
    assert tab.bubbles[reply].cards == [(marked, "Undo")]
    tab.wait(lambda t: t.refreshes == 2, what="the tab told to fetch the list again")
    assert visitor.listed("book") == {bid: ("Dune", True)}, "and on a reload"
    asked, answered = fake.chat_requests()[-2:]
    assert asked["messages"][1:] == [first["messages"][-1], {"role": "assistant", "content": comment.text},
                                     {"role": "user", "content": "I finally finished Dune"}], "the form told once"
    assert asked["tools"] == answered["tools"] == first["tools"], "the same tools in every request"
    assert answered["messages"][-1] == {"role": "tool", "tool_name": "mark_read", "content":
                                       f"{marked} The reading list now: - [x] #{bid} 'Dune' by Frank Herbert"}
    [made] = answered["messages"][-2]["tool_calls"]  # by the id the brain gave the call, the web's too

    # Undo: the book is unread again, everywhere, and the model is told as of any change the user makes.
    tab.undo(made["id"])
    tab.wait(lambda t: t.refreshes == 3, what="the tab told to fetch the list again")
    tab.wait(lambda t: t.bubbles[reply].cards == [(marked, "undone")], what="the card marked undone")
    assert visitor.listed("book") == {bid: ("Dune", False)}
    told = {"role": "user", "content": f"App note: The user undid the model's {marked.replace(' done: ', ' (', 1)})."}
    fake.wait(lambda f: f.chat_requests()[-1]["messages"][-1] == told)  # the model told of the undo
    tab.wait(lambda t: t.finished(3), what="its comment on the undo")
    assert fake.chat_requests()[-1]["messages"][0] == system_message
    assert len(fake.calls) == 1, "nothing else was called"
