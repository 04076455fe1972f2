"""The conversation export (web/export.py): every line in order, who said it, when, in what state,
with its reasoning and its note; Markdown to read, JSON to process."""
import json
import re
import time

from web.export import to_json, to_markdown
from web.transcript import Line, Status

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC

LINES = [
    Line(reply="r1", role="user", text="what's left?", created=T0),
    Line(reply="r1", role="reply", text="Two **things**.", created=T0 + 2, note="12 tokens · 40 tok/s",
         thinking="count them\nthen answer"),
    Line(reply="r2", role="user", text="and now?", created=T0 + 60),
    Line(reply="r2", role="reply", text="Hal", status=Status.FAILED, created=T0 + 61, note="Ollama stopped"),
    Line(reply="n1", role="note", text="Older turns were set aside.", created=T0 + 62),
]


def test_markdown_has_every_line_in_order_with_speaker_time_state_reasoning_and_note(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")  # the times are UTC whatever the server's zone
    time.tzset()
    try:
        md = to_markdown(LINES, "Todo with attitude")
    finally:
        monkeypatch.undo()
        time.tzset()
    assert md.startswith("# Todo with attitude: conversation\n\nExported ")
    headings = re.findall(r"^## .*$", md, re.M)
    assert headings == ["## You, 2023-11-14 22:13:20 UTC", "## Assistant, 2023-11-14 22:13:22 UTC",
                        "## You, 2023-11-14 22:14:20 UTC", "## Assistant (failed), 2023-11-14 22:14:21 UTC",
                        "## Note, 2023-11-14 22:14:22 UTC"], "a done line is not marked; any other state is"
    answer = md.split("## Assistant, ")[1].split("## You")[0]
    assert "> *thinking:* count them\n> then answer\n" in answer, "reasoning quoted, every line of it"
    assert "Two **things**.\n" in answer and "_12 tokens · 40 tok/s_" in answer
    assert "_Ollama stopped_" in md
    assert md.index("what's left?") < md.index("Two **things**.") < md.index("and now?") < md.index("Hal")


def test_json_keeps_each_message_with_its_role_for_a_program():
    data = json.loads(to_json(LINES, "Todo with attitude"))
    assert data["app"] == "Todo with attitude"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", data["exported"])
    assert [(m["role"], m["text"], m["status"], m["reply"]) for m in data["messages"]] == [
        ("user", "what's left?", "done", "r1"), ("assistant", "Two **things**.", "done", "r1"),
        ("user", "and now?", "done", "r2"), ("assistant", "Hal", "failed", "r2"),
        ("note", "Older turns were set aside.", "done", "n1")]
    second = data["messages"][1]
    assert (second["time"], second["note"], second["thinking"]) == (
        "2023-11-14 22:13:22 UTC", "12 tokens · 40 tok/s", "count them\nthen answer")
    assert data["messages"][0]["thinking"] == ""
    assert [m["id"] for m in data["messages"][:2]] == ["user-r1", "reply-r1"], "each message its own id"


def test_text_outside_ascii_is_kept_as_written():
    line = Line(reply="r", role="user", text="café ☕ 日本", created=T0)
    assert "café ☕ 日本" in to_json([line], "Books") and "café ☕ 日本" in to_markdown([line], "Books")


def test_an_empty_conversation_exports_an_empty_list():
    assert json.loads(to_json([], "Books"))["messages"] == []
    assert "##" not in to_markdown([], "Books")


def test_the_export_is_headed_with_the_apps_title():
    assert to_markdown([], "Reading list").startswith("# Reading list: conversation\n")
    assert json.loads(to_json([], "Reading list"))["app"] == "Reading list"
