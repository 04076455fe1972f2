"Reading the bench's printed rows for the A/B comparison (bench/ab.py): the figure added by the system, at p50."
from bench.ab import figures, turns

PRINTED = """
## Time to first token (20 requests one after another)
  through the system (ms p50/p99/max)                6.65 / 8.49 / 8.5
  straight from the fake over HTTP (ms p50/p99/max)  2.03 / 3.08 / 3.1
  added by the system at p50 (ms)                    4.62

## Concurrent sessions (200 chunks at 40/s each)
  10 sessions: per-chunk latency ms p50/p99/max        1.85 / 6.26 / 17.6 (added 1.57 / 5.81; ×6.8 at p50)
  10 sessions: delivered                               2000 chunks, 401 chunks/s, lost 0, reordered 0
  10 sessions: time to first token ms p50/p99/max      37.44 / 37.56 / 37.6 (added 35.41 at p50)
"""


def test_only_the_figures_added_by_the_system_are_read():
    assert figures(PRINTED) == {"added by the system at p50 (ms)": 4.62,
                                "10 sessions: per-chunk latency ms p50/p99/max": 1.57,
                                "10 sessions: time to first token ms p50/p99/max": 35.41}


def test_each_tree_goes_first_every_other_round():
    assert [turns(n, "a", "b") for n in range(4)] == [("a", "b"), ("b", "a"), ("a", "b"), ("b", "a")]
