"""The web's SQLite data (web/store.py): an outbox that never hands back what the bus cannot carry,
the sessions' assignments, and lines that keep their place. (The todo app's own tables are
apps/todo/store.py's: tests/apps/test_todo.py.)"""
from shared.messages import Chat, Prompt, Reset, encode
from web.store import Store
from web.transcript import Line

PROMPT = Prompt("Be brief.", [])


def test_the_outbox_drops_a_kept_message_bigger_than_a_frame(tmp_path):
    store = Store(tmp_path)
    big = Chat(session="s", id="m1", reply="r1", text="x" * 5000, prompt=PROMPT)
    small = Chat(session="s", id="m2", reply="r2", text="hi", prompt=PROMPT)
    for msg in (big, small):
        store.keep_pending(msg.id, *encode(msg))
    assert [m.id for m in store.pending(max_bytes=4096)] == ["m2"]
    assert [m.id for m in store.pending(max_bytes=1 << 20)] == ["m2"], "dropped for good"


def test_the_outbox_is_keyed_by_message_id_in_the_order_kept(tmp_path):
    store = Store(tmp_path)
    first, second = Reset(session="s", id="m1"), Chat(session="s", id="m2", reply="r2", text="hi", prompt=PROMPT)
    for msg in (first, second):
        store.keep_pending(msg.id, *encode(msg))
    assert [m.id for m in Store(tmp_path).pending(1 << 20)] == ["m1", "m2"], "read back after a restart"
    store.drop_pending("m1")
    assert store.pending(1 << 20) == [second]


def test_assignments_are_kept_and_released_by_worker(tmp_path):
    store = Store(tmp_path)
    store.assign("s1", "w1", 5)
    store.assign("s2", "w2", 6)
    store.assign("s1", "w2", 7)  # the session moved
    assert {(r.session, r.worker, r.epoch) for r in store.assignments()} == {("s1", "w2", 7), ("s2", "w2", 6)}
    store.release("w2")
    assert store.assignments() == []


def test_grants_are_kept_newest_last_and_only_as_many_as_remembered(tmp_path):
    store = Store(tmp_path)
    store.keep_pending("m1", *encode(Reset(worker="w1", session="s", id="m1")))
    assert [m.id for m in store.pending(1 << 20)] == ["m1"]
    for i in range(1, 5):
        store.keep_grant(f"m{i}", "w1", i, 3)
    assert [(g.id, g.worker, g.epoch) for g in store.granted()] == [("m2", "w1", 2), ("m3", "w1", 3), ("m4", "w1", 4)]
    assert store.pending(1 << 20) == [], "a granted message leaves the outbox"
    assert Store(tmp_path).granted()[-1].id == "m4", "kept across a restart"


def test_no_todo_tables_are_the_web_s_own(tmp_path):
    "The app makes its own tables: the web's store knows no app."
    store = Store(tmp_path)
    assert not [n for n in store.db.table_names() if "todo" in n]


def test_lines_kept_before_each_had_its_own_key_are_keyed_as_they_were(tmp_path):
    "A web.db from before: lines keyed by (session, request, role), one of them kept twice."
    import sqlite3
    old = sqlite3.connect(tmp_path / "web.db")
    old.execute("create table lines (id integer primary key, session text, request text, role text, text text, "
                "status text, note text, created float, thinking text, asks text, worker text, seq integer, cards text)")
    rows = [("s", "r1", "user", "hi"), ("s", "r1", "reply", "old state"), ("s", "r1", "note", "set aside"),
            ("s", "r1", "reply", "hello")]
    old.executemany("insert into lines (session, request, role, text) values (?, ?, ?, ?)", rows)
    old.commit()
    old.close()
    store = Store(tmp_path)
    assert [(l.key, l.text) for l in store.transcript("s")] == [
        ("user-r1", "hi"), ("note-r1", "set aside"), ("reply-r1", "hello")]
    store.keep_line(Line(session="s", reply="r1", role="note", text="another note"))
    assert len(store.transcript("s")) == 4


def test_a_line_kept_again_keeps_its_place(tmp_path):
    store = Store(tmp_path)
    store.keep_line(Line(session="s", reply="r1", role="reply", text="thinking"))
    store.keep_line(Line(session="s", reply="r2", role="user", text="next"))
    store.keep_line(Line(session="s", reply="r1", role="reply", text="done at last"))
    assert [(l.reply, l.text) for l in store.transcript("s")] == [("r1", "done at last"), ("r2", "next")]
    assert [l.reply for l in store.transcript("s", limit=1)] == ["r2"]
    store.clear_transcript("s")
    assert store.transcript("s") == []
