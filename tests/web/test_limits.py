"""Each session's rate (web/limits.py): a burst goes through, a flood is refused and told once,
the bucket refills with time, and one session's flood never touches another's. The bounds on all
sessions together: new sessions, changes (the model's too) and the data on disk, each refused with
the setting it met."""
import pytest

from shared.config import Settings
from web import limits
from web.apps import Action, App, Outcome, Refused
from web.limits import Admission, Bounds, Rate, data_full


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_burst_goes_through_then_a_flood_is_refused_and_told_once():
    clock = Clock()
    rate = Rate(per_s=2, burst=3, clock=clock)
    assert [rate.take("a") for _ in range(5)] == [Admission.TAKEN] * 3 + [Admission.REFUSED, Admission.REFUSED_AGAIN]


def test_the_bucket_refills_at_the_rate_and_no_further_than_the_burst():
    clock = Clock()
    rate = Rate(per_s=2, burst=3, clock=clock)
    for _ in range(3):
        rate.take("a")
    clock.now += 0.5  # one token back
    assert rate.take("a") is Admission.TAKEN and rate.take("a") is Admission.REFUSED
    clock.now += 60  # a long pause fills the bucket to the burst, not beyond
    assert [rate.take("a") for _ in range(4)] == [Admission.TAKEN] * 3 + [Admission.REFUSED]


def test_being_told_again_starts_after_the_next_message_taken():
    clock = Clock()
    rate = Rate(per_s=1, burst=1, clock=clock)
    assert [rate.take("a"), rate.take("a"), rate.take("a")] == [Admission.TAKEN, Admission.REFUSED, Admission.REFUSED_AGAIN]
    clock.now += 1
    assert [rate.take("a"), rate.take("a")] == [Admission.TAKEN, Admission.REFUSED]


def test_one_sessions_flood_leaves_the_others_alone():
    rate = Rate(per_s=1, burst=2, clock=Clock())
    for _ in range(50):
        rate.take("flood")
    assert rate.take("other") is Admission.TAKEN


def test_the_buckets_kept_are_bounded_and_a_forgotten_session_starts_full(monkeypatch):
    monkeypatch.setattr(limits, "REMEMBERED", 3)
    rate = Rate(per_s=1, burst=1, clock=Clock())
    rate.take("a")
    for s in ("b", "c", "d"):
        rate.take(s)
    assert len(rate.buckets) == 3 and "a" not in rate.buckets
    assert rate.take("a") is Admission.TAKEN


def bounds(tmp_path, clock, **env) -> Bounds:
    return Bounds(Settings.from_env({"DATA_DIR": str(tmp_path), **env}), clock=clock)


def test_new_sessions_share_one_bucket_refilled_by_the_minute(tmp_path):
    clock = Clock()
    everyone = bounds(tmp_path, clock, NEW_SESSIONS_RATE="6", NEW_SESSIONS_BURST="2")
    assert [everyone.new_session() for _ in range(2)] == [None, None]
    refusal = everyone.new_session()
    assert refusal.status == 429 and "NEW_SESSIONS_RATE" in refusal.text
    clock.now += 10  # 6 a minute: one more after 10 s
    assert everyone.new_session() is None and everyone.new_session() is not None


def test_changes_from_all_sessions_share_one_bucket(tmp_path):
    clock = Clock()
    everyone = bounds(tmp_path, clock, CHANGES_RATE="1", CHANGES_BURST="3")
    assert [everyone.change() for _ in range(3)] == [None] * 3
    refusal = everyone.change()
    assert refusal.status == 429 and "CHANGES_RATE" in refusal.text
    clock.now += 1
    assert everyone.change() is None


def test_past_data_max_mb_every_change_is_refused_whatever_the_rate(tmp_path):
    everyone = bounds(tmp_path, Clock(), DATA_MAX_MB="1")
    (tmp_path / "web.db").write_bytes(b"x" * 600_000)
    assert everyone.change() is None and data_full(everyone.settings) is None
    (tmp_path / "brain.db-wal").write_bytes(b"x" * 600_000)  # the brain's conversations count too
    refusal = everyone.change()
    assert refusal.status == 507 and "DATA_MAX_MB" in refusal.text and "reading still works" in refusal.text
    assert data_full(everyone.settings) == refusal
    (tmp_path / "brain.db-wal").unlink()  # room made: changes go on
    assert everyone.change() is None


def test_the_models_actions_are_refused_past_the_data_bound_but_take_nothing_from_everyones_rate(tmp_path):
    everyone = bounds(tmp_path, Clock(), CHANGES_RATE="1", CHANGES_BURST="1", DATA_MAX_MB="1")
    done = []
    action = Action("add", "Add one.", dict, run=lambda session, arguments, asked: done.append(session) or Outcome("added"),
                    undo=lambda session, undo: [])
    app = App("t", "p", [action], state=str, brief=str, fasthtml=None)
    guarded = everyone.guard(app)
    assert everyone.change() is None and everyone.change() is not None, "the routes spent everyone's rate"
    assert guarded.action("add").run("s", {}).text == "added" and done == ["s"], "the model still acts"
    assert guarded.action("add").run.__qualname__ == action.run.__qualname__, "a failure is logged under the app's name"
    (tmp_path / "web.db").write_bytes(b"\0" * (1 << 20))
    with pytest.raises(Refused, match="DATA_MAX_MB"):
        guarded.action("add").run("s", {})
    assert done == ["s"] and guarded.actions[0].description == "Add one." and app.actions == [action]
