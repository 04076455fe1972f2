"A transcript line (web/transcript.py): its key, and which statuses are under way."
from web.transcript import LIVE, REGENERABLE, RETRYABLE, Line, Role, Status


def test_a_line_is_keyed_by_its_reply_and_role_and_keeps_it_whatever_its_status():
    line = Line(request="r1", role=Role.REPLY, status=Status.QUEUED)
    assert line.key == ("r1", "reply") and line.live
    line.status = Status.DONE
    assert line.key == ("r1", Role.REPLY) and not line.live


def test_every_status_is_either_under_way_or_ended_and_only_ended_ones_offer_retry_or_regenerate():
    assert LIVE | RETRYABLE | REGENERABLE | {Status.RETRIED} == set(Status)
    assert not LIVE & (RETRYABLE | REGENERABLE) and not RETRYABLE & REGENERABLE
    assert Line(role=Role.USER).status == Status.DONE, "a user's line is never under way"
