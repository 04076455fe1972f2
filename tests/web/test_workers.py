"""What the web knows of each worker, with a hand-turned clock: when it is ready, silent, back or
gone, which models it offers, when the status line has something new to say, and the credit each
is due (the web's side of flow control)."""
from shared.config import Settings
from shared.messages import Chunk, Credit, Heartbeat, Hello
from web.workers import RESTART_GRACE_S, Credits, Workers

UP = dict(ollama="up", ollama_url="http://127.0.0.1:11434")


def make(now):
    return Workers(Settings.from_env({"BUS_HEARTBEAT_S": "1"}), lambda: now[0])


def hello(worker, **kw):
    return Hello(worker=worker, started=0, pid=1, model="m", **({"parallel": 1} | UP | kw))


def beat(worker, **kw):
    return Heartbeat(worker=worker, started=0, pid=1, model="m", **({"parallel": 1} | UP | kw))


def test_a_worker_is_ready_only_once_subscribed_and_present():
    now = [0.0]
    workers = make(now)
    workers.present(hello("w1"))
    assert not workers.ready("w1") and workers.ready_ones() == [], "a hello alone: its SUB may not hear yet"
    workers.subscribed("w2")
    assert not workers.ready("w2") and "w2" in workers, "subscribed, but it has not said who it is"
    workers.subscribed("w1")
    assert workers.ready("w1") and workers.ready_ones() == ["w1"] and not workers.ready("nobody")


def test_a_worker_that_misses_three_beats_is_overdue_once_and_back_with_any_message():
    now = [0.0]
    workers = make(now)
    workers.subscribed("w1")
    workers.present(hello("w1"))
    now[0] = 2.99
    assert workers.overdue() == [] and workers.ready("w1")
    now[0] = 3.0
    assert workers.overdue() == ["w1"] and not workers.ready("w1")
    workers.silence("w1")
    assert workers.overdue() == [], "told once"
    assert "w1" in workers, "only silent: it may be stalled, so it is kept"
    assert workers.heard("w1") and workers.ready("w1"), "any message is proof of life"
    assert not workers.heard("w1"), "back once"
    now[0] = 5.5
    assert workers.ready("w1"), "alive from the last message heard, not the last heartbeat"


def test_what_a_worker_that_never_said_who_it_is_sends_proves_nothing():
    now = [0.0]
    workers = make(now)
    assert not workers.heard("stranger") and "stranger" not in workers
    workers.subscribed("w1")
    assert not workers.heard("w1") and not workers.ready("w1")


def test_a_forgotten_worker_is_gone_and_forgetting_it_again_says_so():
    now = [0.0]
    workers = make(now)
    workers.subscribed("w1")
    workers.present(hello("w1"))
    assert workers.forget("w1") and "w1" not in workers and not workers.ready("w1")
    assert not workers.forget("w1")


def test_the_models_are_those_the_ready_workers_listed():
    now = [0.0]
    workers = make(now)
    assert workers.models is None
    for w, models in (("w1", ["b:latest", "a:latest"]), ("w2", ["a:latest", "c:latest"]), ("w3", None)):
        workers.subscribed(w)
        workers.present(hello(w, models=models))
    assert workers.models == ["a:latest", "b:latest", "c:latest"]
    now[0] = 2.0
    workers.present(beat("w1", models=["b:latest"]))
    workers.present(beat("w3", models=None))
    now[0] = 3.5  # w2 has gone silent: what it listed no longer counts
    assert workers.models == ["b:latest"]
    workers.present(beat("w1", models=None))
    assert workers.models is None, "no ready worker has listed them"


def test_the_status_changes_once_per_change_of_what_it_shows():
    now = [0.0]
    workers = make(now)
    assert workers.status_changed(), "the first time, whatever it is"
    assert not workers.status_changed()
    workers.subscribed("w1")
    assert not workers.status_changed(), "not ready yet: nothing to show"
    workers.present(hello("w1"))
    assert workers.status_changed()
    now[0] = 1.0
    workers.present(beat("w1"))
    assert not workers.status_changed(), "a heartbeat that says the same"
    workers.present(beat("w1", busy=2))
    assert workers.status_changed()
    workers.present(beat("w1", busy=1))
    assert not workers.status_changed(), "busy is shown as busy or not, not how busy"
    workers.present(beat("w1", busy=1, loading="m"))
    assert workers.status_changed()


def test_after_a_goodbye_the_status_says_restarting_for_the_grace_only():
    now = [10.0]
    workers = make(now)
    workers.status_changed()
    workers.said_goodbye()
    assert workers.restarting and workers.status_changed()
    now[0] = 10.0 + RESTART_GRACE_S - 0.01
    assert workers.restarting and not workers.status_changed()
    now[0] = 10.0 + RESTART_GRACE_S
    assert not workers.restarting and workers.status_changed()


def test_the_web_credits_each_heartbeat_and_every_quarter_window_and_recounts_at_heartbeats():
    chunk = Chunk(worker="w1", session="s", reply="r", seq=0, text="x")
    credits = Credits(window=8)
    credits.took(chunk)
    assert credits.due() == [], "a worker not yet heard from is not counted"
    credits.took(beat("w1", sent=10))
    assert credits.due() == [Credit(worker="w1", seen=11)]
    credits.took(chunk)
    assert credits.due() == [], "less than a quarter window since"
    credits.took(chunk)
    assert credits.due() == [Credit(worker="w1", seen=13)]
    credits.took(beat("w1", sent=20))  # seven of its messages were lost on the way
    assert credits.due() == [Credit(worker="w1", seen=21)]
    credits.forget("w1")
    credits.took(chunk)
    assert credits.due() == []
