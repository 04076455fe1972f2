"""The web's SQLite data (web/store.py): todo ids of each session's own, and an outbox that never
hands back what the bus cannot carry."""
from shared.messages import Chat, encode
from web.store import Store


def test_todo_ids_count_from_1_in_each_session_and_are_never_reused_in_it(tmp_path):
    store = Store(tmp_path)
    assert [store.add_todo("a", t).id for t in ("one", "two")] == [1, 2]
    assert store.add_todo("b", "other").id == 1, "another session's todos do not show in the numbers"
    store.delete_todo("a", 2)
    assert store.add_todo("a", "three").id == 3
    assert store.toggle_todo("b", 3) is None and store.todo("a", 3).title == "three"


def test_a_deleted_todo_comes_back_with_its_id_whatever_another_session_did_meanwhile(tmp_path):
    store = Store(tmp_path)
    gone = store.add_todo("a", "water plants")
    store.delete_todo("a", gone.id)
    store.add_todo("b", "taxes")
    store.restore_todo("a", gone)
    assert store.todo_list("a") == [gone] and [t.title for t in store.todo_list("b")] == ["taxes"]


def test_ids_kept_from_before_stay_and_new_ones_follow_them(tmp_path):
    "A web.db from when ids were global: each session's todos keep their ids, the next is past them."
    store = Store(tmp_path)
    store.db.execute("drop table todos")
    store.db.execute("create table todos (id integer primary key, session text, title text, done integer)")
    store.db.execute("insert into todos values (7, 'a', 'old', 0), (9, 'b', 'other', 1)")
    store = Store(tmp_path)
    assert [t.id for t in store.todo_list("a")] == [7] and store.add_todo("a", "new").id == 8
    assert store.add_todo("c", "fresh").id == 1


def test_the_outbox_drops_a_kept_message_bigger_than_a_frame(tmp_path):
    store = Store(tmp_path)
    big, small = Chat(session="s", request="r1", text="x" * 5000), Chat(session="s", request="r2", text="hi")
    for msg in (big, small):
        store.keep_pending(msg.request, *encode(msg))
    assert [m.request for m in store.pending(max_bytes=4096)] == ["r2"]
    assert [m.request for m in store.pending(max_bytes=1 << 20)] == ["r2"], "dropped for good"
