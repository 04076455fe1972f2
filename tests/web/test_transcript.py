"A transcript line (web/transcript.py): its key, which statuses are under way, and a reply's life."
from hypothesis import given, strategies as st

from web.transcript import LIVE, MOVES, REGENERABLE, RETRYABLE, Line, Move, Role, Status


def test_a_line_is_keyed_by_its_reply_and_role_and_keeps_it_whatever_its_status():
    line = Line(reply="r1", role=Role.REPLY, status=Status.QUEUED)
    assert line.key == "reply-r1" and line.live
    line.status, line.text = Status.DONE, "said"
    assert line.key == "reply-r1" and not line.live
    assert Line(reply="r1", role=Role.USER).key == "user-r1"


def test_each_note_about_a_reply_is_a_line_of_its_own_and_the_same_note_twice_is_one():
    trimmed = Line(reply="r1", role=Role.NOTE, text="Old turns were set aside.")
    limit = Line(reply="r1", role=Role.NOTE, text="Tool round limit reached.")
    assert trimmed.key.startswith("note-r1-") and trimmed.key != limit.key
    assert Line(reply="r1", role=Role.NOTE, text="Old turns were set aside.").key == trimmed.key


def test_every_status_is_either_under_way_or_ended_and_only_ended_ones_offer_retry_or_regenerate():
    assert LIVE | RETRYABLE | REGENERABLE | {Status.RETRIED} == set(Status)
    assert not LIVE & (RETRYABLE | REGENERABLE) and not RETRYABLE & REGENERABLE
    assert Line(role=Role.USER).status == Status.DONE, "a user's line is never under way"


def test_a_reply_lines_life_is_one_table_and_every_status_can_be_reached():
    assert {to for _, to in MOVES.values()} | {Status.QUEUED} == set(Status)
    assert set(MOVES) == set(Move), "every move is in the table"


def test_what_a_brain_says_about_an_ended_reply_changes_nothing():
    "A late or repeated claim, wait, chunk or end finds the line past it."
    for ended in (Status.DONE, Status.STOPPED, Status.FAILED, Status.RETRIED):
        line = Line(reply="r1", role=Role.REPLY, status=ended, note="as it ended")
        for said in (Move.CLAIMED, Move.WAITING, Move.CHUNK, Move.DONE, Move.FAILED, Move.STOPPED, Move.INTERRUPTED):
            assert not line.move(said, "late"), (ended, said)
        assert (line.status, line.note) == (ended, "as it ended")


def test_the_user_moves_an_ended_reply_on_only_by_asking_again():
    done = Line(reply="r1", role=Role.REPLY, status=Status.DONE)
    assert not done.move(Move.RETRIED) and done.move(Move.REGENERATED, "") and done.status == Status.QUEUED
    assert done.move(Move.CLAIMED) and done.status == Status.THINKING and not done.move(Move.CLAIMED), "claimed once"
    failed = Line(reply="r2", role=Role.REPLY, status=Status.FAILED)
    assert not failed.move(Move.REGENERATED) and failed.move(Move.RETRIED) and failed.status == Status.RETRIED
    interrupted = Line(reply="r3", role=Role.REPLY, status=Status.INTERRUPTED)
    assert interrupted.move(Move.CHUNK) and interrupted.status == Status.STREAMING, "its brain was only slow"


@given(st.lists(st.sampled_from(list(Move)), max_size=30))
def test_any_moves_keep_a_line_in_its_life(moves):
    line = Line(reply="r1", role=Role.REPLY, status=Status.QUEUED)
    for move in moves:
        before, (sources, to) = line.status, MOVES[move]
        assert line.move(move) == (before in sources)
        assert line.status == (to if before in sources else before)
