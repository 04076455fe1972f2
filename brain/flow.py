"""Credit-based flow control on the way to the web (the ZeroMQ guide's credit-based flow control):
the worker counts the messages it sends, the web tells it how many it has taken (`Credit`), and
while more than BUS_WINDOW are on their way, a reply's new words wait and grow instead of going out
as more messages. Once the web catches up, each waiting reply sends what it holds as one chunk.

Only chunks wait: a reply's end, its tool calls, claims and heartbeats go out at once (there are a
few per reply), and a reply's held words are sent before its end (`Streams.flush(force=True)`). So
no word is dropped, the order holds, and the web's receive queue stays within the window plus a
few messages per live reply, however far the brains run ahead.
"""
from collections.abc import Callable


class Window:
    def __init__(self, size: int):
        self.size = size
        self.sent = 0  # messages sent since this worker started
        self.seen = 0  # of those, the web has taken this many (its last Credit)
        self.waiting: dict[int, Callable[[], None]] = {}  # by key: sends when the window opens, in order

    @property
    def open(self) -> bool:
        return self.sent - self.seen < self.size

    def counted(self) -> None:
        "One more message on its way."
        self.sent += 1

    def credit(self, seen: int) -> None:
        "The web has taken `seen` messages: what waited goes, while the window stays open."
        self.seen = max(self.seen, min(seen, self.sent))
        while self.waiting and self.open:
            send = self.waiting.pop(next(iter(self.waiting)))
            send()

    def when_open(self, key: int, send: Callable[[], None]) -> None:
        "Call `send` once the web has caught up; one call waits per key (a reply's next chunk)."
        self.waiting.setdefault(key, send)
