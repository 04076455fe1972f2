"""Flow control on the bus (brain/flow.py, web/credits.py): a worker sends chunks no further than
its window ahead of what the web has taken; what waits goes out, in order, as credit comes; the
web answers every heartbeat and every quarter window, and recounts at each heartbeat."""
from brain.flow import Window
from shared.messages import Chunk, Credit, Heartbeat
from web.credits import Credits


def test_a_window_closes_at_its_size_and_what_waits_goes_in_order_as_credit_comes():
    window, sent = Window(4), []
    for _ in range(4):
        window.counted()
    assert not window.open
    for key in ("a", "b", "a", "c"):
        window.when_open(hash(key), lambda key=key: (sent.append(key), window.counted()))
    window.credit(1)
    assert sent == ["a"], "one message's room: one sends, and the window closes again"
    window.credit(4)
    assert sent == ["a", "b", "c"], "one wait per key; the rest in order"
    window.credit(99)
    assert window.seen == window.sent == 7, "credit past what was sent counts for no more"


def heartbeat(worker="w1", sent=0):
    return Heartbeat(worker=worker, started=0.0, pid=1, model="m", parallel=4, sent=sent)


def chunk(worker="w1"):
    return Chunk(worker=worker, session="s", reply="r", seq=0, text="x")


def test_the_web_credits_each_heartbeat_and_every_quarter_window_and_recounts_at_heartbeats():
    credits = Credits(window=8)
    credits.took(chunk())
    assert credits.due() == [], "a worker not yet heard from is not counted"
    credits.took(heartbeat(sent=10))
    assert credits.due() == [Credit(worker="w1", seen=11)]
    credits.took(chunk())
    assert credits.due() == [], "less than a quarter window since"
    credits.took(chunk())
    assert credits.due() == [Credit(worker="w1", seen=13)]
    credits.took(heartbeat(sent=20))  # seven of its messages were lost on the way
    assert credits.due() == [Credit(worker="w1", seen=21)]
    credits.forget("w1")
    credits.took(chunk())
    assert credits.due() == []
