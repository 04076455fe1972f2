"""Each session's rate (web/limits.py): a burst goes through, a flood is refused and told once,
the bucket refills with time, and one session's flood never touches another's."""
from web import limits
from web.limits import Rate, Verdict


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_a_burst_goes_through_then_a_flood_is_refused_and_told_once():
    clock = Clock()
    rate = Rate(per_s=2, burst=3, clock=clock)
    assert [rate.take("a") for _ in range(5)] == [Verdict.TAKEN] * 3 + [Verdict.REFUSED, Verdict.REFUSED_AGAIN]


def test_the_bucket_refills_at_the_rate_and_no_further_than_the_burst():
    clock = Clock()
    rate = Rate(per_s=2, burst=3, clock=clock)
    for _ in range(3):
        rate.take("a")
    clock.now += 0.5  # one token back
    assert rate.take("a") is Verdict.TAKEN and rate.take("a") is Verdict.REFUSED
    clock.now += 60  # a long pause fills the bucket to the burst, not beyond
    assert [rate.take("a") for _ in range(4)] == [Verdict.TAKEN] * 3 + [Verdict.REFUSED]


def test_being_told_again_starts_after_the_next_message_taken():
    clock = Clock()
    rate = Rate(per_s=1, burst=1, clock=clock)
    assert [rate.take("a"), rate.take("a"), rate.take("a")] == [Verdict.TAKEN, Verdict.REFUSED, Verdict.REFUSED_AGAIN]
    clock.now += 1
    assert [rate.take("a"), rate.take("a")] == [Verdict.TAKEN, Verdict.REFUSED]


def test_one_sessions_flood_leaves_the_others_alone():
    rate = Rate(per_s=1, burst=2, clock=Clock())
    for _ in range(50):
        rate.take("flood")
    assert rate.take("other") is Verdict.TAKEN


def test_the_buckets_kept_are_bounded_and_a_forgotten_session_starts_full(monkeypatch):
    monkeypatch.setattr(limits, "REMEMBERED", 3)
    rate = Rate(per_s=1, burst=1, clock=Clock())
    rate.take("a")
    for s in ("b", "c", "d"):
        rate.take(s)
    assert len(rate.buckets) == 3 and "a" not in rate.buckets
    assert rate.take("a") is Verdict.TAKEN
