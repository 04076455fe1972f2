"A transcript line (web/transcript.py): its key, and which statuses are under way."
from web.transcript import LIVE, REGENERABLE, RETRYABLE, Line, Role, Status


def test_a_line_is_keyed_by_its_reply_and_role_and_keeps_it_whatever_its_status():
    line = Line(request="r1", role=Role.REPLY, status=Status.QUEUED)
    assert line.key == "reply-r1" and line.live
    line.status, line.text = Status.DONE, "said"
    assert line.key == "reply-r1" and not line.live
    assert Line(request="r1", role=Role.USER).key == "user-r1"


def test_each_note_about_a_reply_is_a_line_of_its_own_and_the_same_note_twice_is_one():
    trimmed = Line(request="r1", role=Role.NOTE, text="Old turns were set aside.")
    limit = Line(request="r1", role=Role.NOTE, text="Tool round limit reached.")
    assert trimmed.key.startswith("note-r1-") and trimmed.key != limit.key
    assert Line(request="r1", role=Role.NOTE, text="Old turns were set aside.").key == trimmed.key


def test_every_status_is_either_under_way_or_ended_and_only_ended_ones_offer_retry_or_regenerate():
    assert LIVE | RETRYABLE | REGENERABLE | {Status.RETRIED} == set(Status)
    assert not LIVE & (RETRYABLE | REGENERABLE) and not RETRYABLE & REGENERABLE
    assert Line(role=Role.USER).status == Status.DONE, "a user's line is never under way"
