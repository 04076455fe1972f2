"The bus tail (shared/tail.py): one line per message, the fields that matter, ids cut short, bad frames said."
import time

from shared.tail import line

AT = time.mktime((2026, 12, 2, 9, 30, 5, 0, 0, -1)) + 0.25


def test_a_message_is_one_line_with_its_key_fields_and_ids_cut_short():
    shown = line(AT, "web.chunk", {"kind": "chunk", "worker": "w1", "session": "s" * 32, "reply": "r" * 32, "seq": 3,
                                   "epoch": 7, "text": "Hello"})
    assert shown == f"09:30:05.250 web.chunk session={'s' * 12} reply={'r' * 12} seq=3 worker=w1 text='Hello'"


def test_an_app_event_shows_what_the_user_did_and_a_long_text_is_cut():
    shown = line(AT, "brain.w1.app_event", {"kind": "app_event", "worker": "w1", "session": "s1", "id": "m1",
                                             "lines": ["added #1 'milk'"], "comment": True})
    assert "lines=[\"added #1 'milk'\"] comment=True" in shown and "\n" not in shown
    long = line(AT, "web.done", {"kind": "done", "worker": "w1", "text": "x" * 100})
    assert long.endswith(f"text='{'x' * 60}'…")


def test_a_bad_frame_says_why_instead_of_its_fields():
    assert line(AT, "web.chunk", None, "not a message: bad JSON") == "09:30:05.250 web.chunk !! not a message: bad JSON"
