"The one bounded map (shared/lru.py): least recently used first out, entries in use stay, owners told."
from shared.lru import LRU


def test_the_least_recently_used_leaves_first():
    gone = []
    lru = LRU(2, evicted=lambda k, v: gone.append(k))
    lru.put("a", 1)
    lru.put("b", 2)
    lru.get("a")  # a is now the most recent
    lru.put("c", 3)
    assert list(lru) == ["a", "c"] and gone == ["b"]


def test_an_entry_in_use_stays_past_the_limit_and_leaves_once_it_may():
    busy = {"a"}
    lru = LRU(1, evictable=lambda k, v: k not in busy)
    lru.put("a", 1)
    lru.put("b", 2)
    assert list(lru) == ["a", "b"], "a is in use and b was just put: both stay"
    busy.clear()
    lru.put("c", 3)
    assert list(lru) == ["c"]


def test_peek_keeps_the_order_and_setdefault_makes_once():
    lru = LRU(2)
    lru.put("a", 1)
    lru.put("b", 2)
    assert lru.peek("a") == 1
    lru.put("c", 3)
    assert "a" not in lru and lru.setdefault("b", lambda: 99) == 2 and lru.setdefault("d", lambda: 4) == 4
    assert lru.pop("d") == 4 and lru.pop("d") is None and list(lru) == ["b"], "d pushed out c, the least recently used"
