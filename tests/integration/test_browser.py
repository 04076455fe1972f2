"""The page in a real browser (Debian's Chromium driven by Playwright) against the real processes.

Screenshots of the main states go to test-artifacts/ for a person to look at."""
import os
import re
import signal
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from apps.todo.store import Todo
from shared.messages import full_name
from tests.fake_ollama import Plan, PullPlan, words
from tests.replay import known_list
from tests.system import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="module")
def browser():
    assert Path(CHROMIUM).exists(), "Chromium is missing: `make test` installs it (apt-get install chromium)"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


class Watched:
    "A page plus everything it did that a person would not see: dialogs, requests, console errors."

    def __init__(self, page: Page):
        self.page, self.dialogs, self.requests, self.errors = page, [], [], []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))

    def shot(self, name: str) -> None:
        ARTIFACTS.mkdir(exist_ok=True)
        # caret="initial": hiding the caret leaves style="" on inputs, which htmx's settling then copies
        # into the page, where the CSP (style-src 'self') refuses it: an error no user would see.
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), caret="initial")


@pytest.fixture
def open_page(browser, system):
    contexts = []

    def open_(width: int = 1100) -> Watched:
        context = browser.new_context(viewport={"width": width, "height": 800})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        watched = Watched(page)
        page.goto(system.url)
        expect(page.locator("#brain-status")).to_have_text("brain ready")
        return watched

    yield open_
    for context in contexts:
        context.close()


def send(page: Page, text: str) -> None:
    page.fill("#msg", text)
    page.press("#msg", "Enter")


def replies(page: Page):
    return page.locator("#msg-list article.msg.reply")


def test_a_reply_grows_on_screen_and_ends_as_the_model_said(open_page, fake):
    chunks = words("Right. You typed a message into a todo app. Bold move, I must say, very bold indeed.")
    fake.plan(Plan(chunks=chunks, delay=0.08))
    w = open_page()
    w.shot("empty")
    send(w.page, "hello, todo app")

    expect(w.page.locator("#msg-list article.msg.user")).to_have_text("hello, todo app")
    expect(w.page.locator("#msg")).to_have_value("")
    assert w.page.evaluate("document.activeElement.id") == "msg", "the input keeps focus"
    visible = replies(w.page).first.locator(".md")
    seen = []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not seen[-1:] == ["".join(chunks).strip()]:
        text = visible.inner_text().strip()
        if text and text not in seen:
            seen.append(text)
            if len(seen) == 3:
                w.shot("streaming")
        time.sleep(0.03)
    assert len(seen) >= 4, f"the reply should appear in growing steps, saw {seen}"
    assert all(b.startswith(a.rstrip("▍")) for a, b in zip(seen, seen[1:], strict=False)), seen
    expect(replies(w.page).first).to_have_class(re.compile(r"\bdone\b"))
    assert "".join(chunks) == fake.replies[-1]
    expect(visible).to_have_text("".join(chunks).strip())  # rendered again from the final text
    assert not w.errors and not w.dialogs


def test_markdown_renders_as_formatting(open_page, fake):
    fake.plan(Plan(chunks=["Here is **the plan**:\n\n", "- first\n", "- second\n\n", "```\ncode here\n```\n"]))
    w = open_page()
    send(w.page, "plan?")
    md = replies(w.page).first.locator(".md")
    expect(md.locator("strong")).to_have_text("the plan")
    expect(md.locator("li")).to_have_count(2)
    expect(md.locator("pre code")).to_have_text("code here")


XSS = [
    "<script>window.__xss = 'script'; alert('script')</script>",
    "<img src=x onerror=\"window.__xss='img'; alert('img')\">",
    "[click me](javascript:window.__xss='link';alert('link'))",
    "<a hx-get=\"/api/status?xss=hxget\" hx-trigger=\"load\">htmx</a>",
    "<div data-hx-get=\"/api/status?xss=datahx\" data-hx-trigger=\"load\">data-htmx</div>",
    "<form ws-send hx-trigger=\"load\"><input name=msg value=\"xss-ws-send\"></form>",
    "![tracker](http://127.0.0.1:9/xss-image.png)",
    "<iframe src=\"javascript:alert('iframe')\"></iframe>",
    "<svg onload=\"alert('svg')\"></svg>",
]


def test_hostile_model_output_todo_titles_and_chat_text_stay_text(open_page, fake, system):
    fake.plan(Plan(chunks=[p + "\n\n" for p in XSS]))
    w = open_page()
    w.page.fill("#title", XSS[1])
    w.page.press("#title", "Enter")
    expect(w.page.locator("#todo-list li .title")).to_have_text(XSS[1])
    send(w.page, XSS[0])
    expect(replies(w.page).last).to_have_class(re.compile(r"\bdone\b"), timeout=20_000)
    w.page.wait_for_timeout(1000)  # anything that would fire on load has fired
    w.shot("hostile-output")

    assert w.dialogs == []
    assert w.page.evaluate("window.__xss") is None
    assert not [u for u in w.requests if "xss" in u], "the payloads made requests"
    assert not w.errors, w.errors
    md = replies(w.page).last.locator(".md")
    assert md.locator("script, img, iframe, svg, form, [onerror], [onload]").count() == 0
    assert md.locator("[hx-get], [data-hx-get], [ws-send]").count() == 0
    assert md.locator("a[href^='javascript']").count() == 0
    assert "window.__xss = 'script'" in w.page.locator("#msg-list article.msg.user").first.inner_text()
    sent = [r["messages"][-1]["content"] for r in fake.chat_requests()]
    assert "xss-ws-send" not in sent


@pytest.mark.env(COMMENT_DELAY_S=2)
def test_todos_through_the_page_reach_the_model_which_comments(open_page, fake):
    w = open_page()
    for title in ("feed the cat", "pay rent"):
        w.page.fill("#title", title)
        w.page.press("#title", "Enter")
    expect(w.page.locator("#todo-list li")).to_have_count(2)
    expect(w.page.locator("#title")).to_have_value("")
    w.page.locator("#todo-list li", has_text="feed the cat").locator("input[type=checkbox]").check()
    expect(w.page.locator("#todo-list li.done")).to_have_text(re.compile("feed the cat"))
    w.page.locator("#todo-list li", has_text="pay rent").locator("button.delete").click()
    expect(w.page.locator("#todo-list li")).to_have_count(1)

    expect(replies(w.page).first).to_have_class(re.compile(r"\bdone\b"))
    w.page.wait_for_timeout(2500)
    expect(replies(w.page)).to_have_count(1)  # one comment for the whole burst
    expect(replies(w.page).first.locator(".md")).to_have_text(fake.replies[-1].strip())
    messages = fake.chat_requests()[-1]["messages"]
    assert "marked #1 'feed the cat' done" in messages[-1]["content"]
    assert "deleted #2 'pay rent'" in messages[-1]["content"]
    assert known_list(messages) == [Todo(1, "feed the cat", True)]
    w.page.reload()
    expect(w.page.locator("#todo-list li.done")).to_have_text(re.compile("feed the cat"))


def test_the_page_stays_usable_while_the_brain_is_killed_and_answers_after(open_page, fake, system):
    w = open_page()
    system.stop("brain")
    expect(w.page.locator("#brain-status")).to_have_text(re.compile("offline|restarting"))
    w.page.fill("#title", "still works")
    w.page.press("#title", "Enter")
    expect(w.page.locator("#todo-list li")).to_have_count(1)
    send(w.page, "hello? anyone?")
    expect(replies(w.page).first).to_have_class(re.compile(r"\bqueued\b"))
    w.shot("brain-offline")

    system.start("brain")
    expect(w.page.locator("#brain-status")).to_have_text("brain ready")
    expect(replies(w.page).first).to_have_class(re.compile(r"\bdone\b"))
    assert [r["messages"][-1]["content"] for r in fake.chat_requests()] == ["hello? anyone?"]


def test_kill_9_mid_reply_is_finished_by_the_next_brain_in_the_same_bubble(open_page, fake, system):
    # No phrase repeats: a continuation that begins with what was shown is taken for a restart.
    text = " ".join(f"word{i}" for i in range(120))
    fake.plan(Plan(chunks=words(text), delay=0.05))
    w = open_page()
    send(w.page, "long one please")
    expect(replies(w.page).first).to_have_class(re.compile(r"\bstreaming\b"))
    os.kill(system.worker_pid(), signal.SIGKILL)
    expect(replies(w.page).first).to_have_class(re.compile(r"\bdone\b"), timeout=20_000)
    expect(replies(w.page)).to_have_count(1)
    expect(replies(w.page).first.locator(".body")).to_have_text(text)


def test_errors_are_readable_in_the_page(open_page, fake):
    fake.plan(Plan(status=500, error="CUDA out of memory"))
    w = open_page()
    send(w.page, "explode")
    expect(replies(w.page).first).to_have_class(re.compile(r"\bfailed\b"))
    expect(replies(w.page).first.locator(".note")).to_have_text("Ollama answered 500: CUDA out of memory")
    w.shot("error")


def test_two_browsers_never_see_each_others_chat(open_page, fake):
    a, b = open_page(), open_page()
    send(a.page, "secret from A")
    expect(replies(a.page).first).to_have_class(re.compile(r"\bdone\b"))
    send(b.page, "hello from B")
    expect(replies(b.page).first).to_have_class(re.compile(r"\bdone\b"))
    assert "secret from A" not in b.page.locator("#msg-list").inner_text()
    assert "hello from B" not in a.page.locator("#msg-list").inner_text()


def test_a_web_restart_reconnects_by_itself_with_the_transcript(open_page, fake, system):
    w = open_page()
    send(w.page, "before the restart")
    expect(replies(w.page).first).to_have_class(re.compile(r"\bdone\b"))
    system.stop("web")
    system.start("web")
    system.wait_ready()
    w.page.wait_for_timeout(500)
    send(w.page, "after the restart")  # htmx-ext-ws queues this until it has reconnected
    expect(replies(w.page)).to_have_count(2, timeout=30_000)
    expect(replies(w.page).last).to_have_class(re.compile(r"\bdone\b"))
    assert "before the restart" in w.page.locator("#msg-list").inner_text()


def test_a_todo_added_ticked_or_deleted_in_one_tab_shows_once_in_every_tab(open_page, system):
    w = open_page()
    other = w.page.context.new_page()  # a second tab of the same session
    other.goto(system.url)
    expect(other.locator("#brain-status")).to_have_text("brain ready")  # its WebSocket is open
    w.page.fill("#title", "feed the cat")
    w.page.press("#title", "Enter")
    expect(other.locator("#todo-list li")).to_have_text([re.compile("feed the cat")])
    other.locator("#todo-list li", has_text="feed the cat").locator("input[type=checkbox]").check()
    expect(w.page.locator("#todo-list li.done")).to_have_text([re.compile("feed the cat")])
    w.page.fill("#title", "pay rent")
    w.page.press("#title", "Enter")
    expect(other.locator("#todo-list li")).to_have_count(2)
    other.locator("#todo-list li", has_text="pay rent").locator("button.delete").click()
    for tab in (w.page, other):  # each change once: the tab that made it swapped in its own response only
        expect(tab.locator("#todo-list li")).to_have_text([re.compile("feed the cat")])


def test_new_chat_clears_the_conversation_for_every_tab(open_page, fake, browser, system):
    w = open_page()
    send(w.page, "remember the number 42")
    expect(replies(w.page).first).to_have_class(re.compile(r"\bdone\b"))
    second = w.page.context.new_page()
    second.goto(system.url)
    expect(second.locator("#msg-list article")).to_have_count(2)
    w.page.click("#new-chat")
    expect(w.page.locator("#msg-list article")).to_have_count(0)
    expect(second.locator("#msg-list article")).to_have_count(0)
    send(w.page, "what number?")
    expect(replies(w.page).first).to_have_class(re.compile(r"\bdone\b"))
    turns = [m["content"] for m in fake.chat_requests()[-1]["messages"][1:]]
    assert turns == ["what number?"]


def test_phone_width_keeps_everything_usable(open_page, fake):
    w = open_page(width=390)
    send(w.page, "tiny screen")
    expect(replies(w.page).first).to_have_class(re.compile(r"\bdone\b"))
    for selector in ("#title", "#msg", "#brain-status", "#new-chat"):
        box = w.page.locator(selector).bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390, selector
    w.shot("phone")


def test_a_refused_todo_keeps_its_text_and_says_why(open_page):
    w = open_page()
    w.page.evaluate("document.getElementById('title').removeAttribute('maxlength')")
    w.page.fill("#title", "x" * 501)
    w.page.press("#title", "Enter")
    expect(w.page.locator("#app-notice")).to_have_text("Not added: a title must be 1 to 500 characters.")
    expect(w.page.locator("#title")).to_have_value("x" * 501)
    expect(w.page.locator("#todo-list li")).to_have_count(0)


def test_thinking_is_folded_away_and_apart_from_the_answer(open_page, fake):
    fake.plan(Plan(thinking=["Let me think ", "about **this**."], chunks=["The **answer**."], delay=0.05))
    w = open_page()
    send(w.page, "think first")
    reply = replies(w.page).first
    expect(reply).to_have_class(re.compile(r"\bdone\b"))
    thinking = reply.locator("details.thinking")
    assert not thinking.evaluate("d => d.open"), "folded by default"
    thinking.locator("summary").click()
    expect(thinking.locator(".thinking-body")).to_have_text("Let me think about **this**.")
    expect(reply.locator(".md strong")).to_have_text("answer")
    assert "think" not in reply.locator(".md").inner_text()


def test_regenerate_shows_on_the_newest_reply_only_and_replaces_it(open_page, fake):
    w = open_page()
    for text in ("one", "two"):
        send(w.page, text)
        expect(replies(w.page).last).to_have_class(re.compile(r"\bdone\b"))
    expect(replies(w.page).first.get_by_role("button", name="Regenerate")).to_be_hidden()
    button = replies(w.page).last.get_by_role("button", name="Regenerate")
    expect(button).to_be_visible()
    before = replies(w.page).last.locator(".md").inner_text()
    button.click()
    expect(replies(w.page).last.locator(".md")).not_to_have_text(before)
    expect(replies(w.page).last).to_have_class(re.compile(r"\bdone\b"))
    expect(replies(w.page)).to_have_count(2)
    expect(replies(w.page).last.locator(".md")).to_have_text(fake.replies[-1].strip())


def test_ask_for_an_item_see_it_appear_undo_it_and_it_stays_gone_after_a_reload(open_page, fake):
    w = open_page()
    fake.plan(Plan(tool_calls=[{"name": "add_todo", "arguments": {"title": "oat milk"}}]),
              Plan(chunks=words("Oat milk, noted.")))
    w.page.fill("#msg", "add oat milk to my list")
    w.page.press("#msg", "Enter")
    expect(w.page.locator("#todo-list li", has_text="oat milk")).to_have_count(1)
    card = replies(w.page).first.locator(".card")
    expect(card).to_have_text(re.compile("Added #1 'oat milk'"))
    expect(replies(w.page).first.locator(".md")).to_have_text("Oat milk, noted.")
    w.shot("model-acted")
    card.get_by_role("button", name="Undo").click()
    expect(w.page.locator("#todo-list li")).to_have_count(0)
    expect(card).to_have_class(re.compile(r"\bundone\b"))
    w.page.reload()
    expect(w.page.locator("#brain-status")).to_have_text("brain ready")
    expect(w.page.locator("#todo-list li")).to_have_count(0)
    expect(replies(w.page).first.locator(".card")).to_have_class(re.compile(r"\bundone\b"))
    assert w.errors == [] and w.dialogs == []


def choose_model(page: Page, model: str) -> None:
    "Name a model that is not in the picker, as a person does in the 'another model' field."
    page.fill("#model-form input", model)
    page.press("#model-form input", "Enter")
    expect(page.locator("#model-picker option:checked")).to_have_text(f"{full_name(model)} (not pulled)")


def pull_bar_value(page: Page) -> int:
    return int(page.locator("#pulls .pull.running progress").get_attribute("value") or 0)


def test_pull_a_model_from_the_page_every_tab_sees_the_bar_move_then_the_picker_has_it(open_page, fake):
    fake.pull_plan = PullPlan(layers=(1_900_000_000, 12_000, 480), steps=12, delay=0.1)
    w = open_page()
    choose_model(w.page, "qwen2.5:0.5b")
    expect(w.page.locator("#brain-status")).to_have_text(re.compile(r"qwen2\.5:0\.5b is not pulled"))
    other = w.page.context.new_page()  # a second tab of the same session
    other.goto(w.page.url)
    w.page.get_by_role("button", name="Pull qwen2.5:0.5b").click()

    detail = w.page.locator("#pulls .pull.running .detail")
    expect(detail).to_have_text(re.compile(r"^pulling [0-9a-f]{12} · \d+% · [\d.]+ [KMG]?B of 1\.9 GB$"))
    first = pull_bar_value(w.page)
    w.page.wait_for_function(f"() => +document.querySelector('#pulls progress')?.value > {first}")
    expect(other.locator("#pulls .pull.running progress")).to_be_visible()
    expect(other.get_by_role("button", name="Cancel")).to_be_visible()
    w.shot("pulling")

    expect(w.page.locator("#pulls")).to_have_text("qwen2.5:0.5b is pulled.", timeout=20_000)
    for page in (w.page, other):
        expect(page.locator("#model-picker option:checked")).to_have_text("qwen2.5:0.5b")
        expect(page.locator("#brain-status")).to_have_text(re.compile("brain ready|loading"))
    assert [p["model"] for p in fake.pulls] == ["qwen2.5:0.5b"], "one pull for both tabs"
    send(w.page, "hello, new model")
    expect(replies(w.page).last).to_have_class(re.compile(r"\bdone\b"))
    assert fake.chat_requests()[-1]["model"] == "qwen2.5:0.5b"
    assert w.errors == [] and w.dialogs == []


def test_cancel_a_pull_from_the_page(open_page, fake):
    fake.pull_plan = PullPlan(steps=100, delay=0.1)
    w = open_page()
    choose_model(w.page, "mistral")
    w.page.get_by_role("button", name="Pull mistral").click()
    expect(w.page.locator("#pulls .pull.running progress")).to_be_visible()
    w.page.get_by_role("button", name="Cancel").click()
    expect(w.page.locator("#pulls .pull")).to_have_text("The pull of mistral was cancelled.")
    fake.wait(lambda f: f.pull_hangups == ["mistral"])  # Ollama was told: the request was closed
    assert "mistral:latest" not in fake.models
    expect(w.page.locator("#model-picker option:checked")).to_have_text("mistral:latest (not pulled)")
    expect(w.page.get_by_role("button", name="Pull mistral")).to_be_visible()
    assert w.errors == []


def test_pulling_a_model_the_registry_lacks_says_so_in_one_line(open_page, fake):
    w = open_page()
    choose_model(w.page, "no-such-model")
    w.page.get_by_role("button", name="Pull no-such-model").click()
    error = w.page.locator("#pulls .pull.failed .error")
    expect(error).to_have_text("There is no model 'no-such-model' to pull: check the name at ollama.com/library "
                               "(Ollama said: pull model manifest: file does not exist).")
    assert "\n" not in error.inner_text(), "one line"
    w.shot("pull-failed")
    expect(w.page.get_by_role("button", name="Pull no-such-model")).to_be_visible()
    assert w.errors == []
