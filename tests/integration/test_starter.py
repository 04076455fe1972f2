"""Process-level, in a real browser: the plain FastHTML todo list with the model added
(apps/starter.py, docs/starter_plain.py plus the lines the README's tutorial shows), in two tabs
of one session, against the real web and brain processes and the fake Ollama.

A user's own change and the model's action both show in both tabs, and the model is told both:
the user's add from what the response swapped in, the action from its result."""
import re

import pytest
from playwright.sync_api import expect

from tests.fake_ollama import Plan, words
from tests.integration.test_browser import browser, open_page, replies, send  # noqa: F401 - fixtures

pytestmark = pytest.mark.env(APP="starter")


def items(page):
    return page.locator("#todo-list li")


def last_message(fake) -> str:
    return fake.chat_requests()[-1]["messages"][-1]["content"]


def test_a_users_change_and_the_models_action_show_in_both_tabs_and_the_model_is_told_both(open_page, fake, system):
    w = open_page()
    other = w.page.context.new_page()  # a second tab of the same session
    other.goto(system.url)
    expect(other.locator("#brain-status")).to_have_text("brain ready")  # its chat is there, its WebSocket open
    assert w.page.title() == "Todos" and "You are the assistant inside a todo list" in w.page.content()

    # The user's own add, through the app's plain FastHTML form: the other tab shows it too.
    w.page.fill("input[name=task]", "feed the cat")
    w.page.press("input[name=task]", "Enter")
    expect(items(w.page)).to_have_text([re.compile("feed the cat")])
    expect(items(other)).to_have_text([re.compile("feed the cat")])
    # No route told it: the model hears what the response swapped in, with the list after it, and comments.
    fake.wait(lambda f: f.chat_requests() and "feed the cat" in last_message(f))
    note = last_message(fake)
    assert note.startswith("App note: The user used the page (POST / task='feed the cat' into #todo-list → 200), "
                           "showing 'feed the cat ×'"), note
    assert '[{"id": 1, "task": "feed the cat", "done": null}]' in note, "the app's state, from `state=todos`"
    expect(replies(other)).to_have_count(1)  # the comment, in both tabs

    # The model's action, asked in the chat of the first tab: both tabs show it, with its card, and
    # what the user was typing in the other tab's form is still there.
    other.fill("input[name=task]", "half a thought")
    fake.plan(Plan(tool_calls=[{"name": "add_todo", "arguments": {"task": "pay rent"}}]),
              Plan(chunks=words("Rent, noted.")))
    send(w.page, "add pay rent to my list")
    for tab in (w.page, other):
        expect(items(tab)).to_have_text([re.compile("feed the cat"), re.compile("pay rent")])
        expect(tab.locator("#todo-list input:checked")).to_have_count(0)
    expect(other.locator("input[name=task]")).to_have_value("half a thought")
    card = replies(other).last.locator(".card")
    expect(card).to_have_text(re.compile(r'add_todo done: \{"id": 2, "task": "pay rent", "done": 0\}'))
    expect(replies(w.page).last.locator(".md")).to_have_text("Rent, noted.")
    w.shot("starter-model-acted")
    tool = fake.chat_requests()[-1]["messages"][-1]
    assert tool["role"] == "tool" and tool["tool_name"] == "add_todo" and '"task": "pay rent"' in tool["content"]
    tools = fake.chat_requests()[-1]["tools"]
    assert [t["function"]["name"] for t in tools] == ["add_todo"]
    assert tools[0]["function"]["parameters"]["properties"] == {"task": {"type": "string",
                                                                         "description": "what is to be done"}}

    # Undo from the other tab: gone from both, and the model is told as of any change the user makes.
    card.get_by_role("button", name="Undo").click()
    for tab in (w.page, other):
        expect(items(tab)).to_have_text([re.compile("feed the cat")])
    fake.wait(lambda f: "undid the model's add_todo" in last_message(f))
    w.page.reload()
    expect(items(w.page)).to_have_text([re.compile("feed the cat")])
    assert w.errors == [] and w.dialogs == []
