"""One bounded map for both processes: sessions held in memory, ids remembered for a while.

Least recently used first out. An entry leaves only when `evictable(key, value)` allows it (a
session with an open tab or a reply under way stays, even past the limit), and `evicted(key,
value)` is told when one does, so its owner can let go of what hangs on it.
"""
from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, limit: int, evictable: Callable[[K, V], bool] = lambda k, v: True,
                 evicted: Callable[[K, V], None] = lambda k, v: None):
        self.limit, self.evictable, self.evicted = limit, evictable, evicted
        self.entries: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        "The entry, now the most recently used; None when it is not held."
        value = self.entries.get(key)
        if value is not None:
            self.entries.move_to_end(key)
        return value

    def peek(self, key: K) -> V | None:
        "The entry, leaving its place as it is."
        return self.entries.get(key)

    def put(self, key: K, value: V) -> V:
        self.entries[key] = value
        self.entries.move_to_end(key)
        self._evict(keep=key)
        return value

    def setdefault(self, key: K, make: Callable[[], V]) -> V:
        "The entry, made (and held) when it is not held yet."
        value = self.get(key)
        return self.put(key, make()) if value is None else value

    def pop(self, key: K) -> V | None:
        return self.entries.pop(key, None)

    def _evict(self, keep: K) -> None:
        excess = len(self.entries) - self.limit
        if excess <= 0:
            return
        leaving = []
        for key, value in self.entries.items():  # oldest first
            if len(leaving) == excess:
                break
            if key != keep and self.evictable(key, value):
                leaving.append(key)
        for key in leaving:
            self.evicted(key, self.entries.pop(key))

    def __contains__(self, key) -> bool:
        return key in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[K]:
        return iter(self.entries)

    def items(self):
        return self.entries.items()

    def values(self):
        return self.entries.values()
