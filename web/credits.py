"""The web's side of flow control (brain/flow.py): how many messages it has taken from each worker,
told back to the worker (`Credit`) once per wakeup of the bus loop, when a quarter window more has
been taken or a presence message has come. A worker counts its own messages (`Presence.sent`), so a
message lost on the way is counted right at the next heartbeat, and a worker never waits long for
a credit that would not come."""
from shared.messages import Credit, Presence, ToWeb


class Credits:
    def __init__(self, window: int):
        self.step = max(1, window // 4)
        self.taken: dict[str, int] = {}  # by worker: its messages taken, as it counts them
        self.told: dict[str, int] = {}  # by worker: the count last sent back to it (none: one is due)

    def took(self, msg: ToWeb) -> None:
        "Counted from a worker's presence on (before it, or after a goodbye, the count is unknown)."
        if isinstance(msg, Presence):
            self.taken[msg.worker] = msg.sent + 1
            self.told.pop(msg.worker, None)  # a heartbeat is answered whatever the count
        elif msg.worker in self.taken:
            self.taken[msg.worker] += 1

    def due(self) -> list[Credit]:
        "The credits to send now: to each worker with a quarter window taken since its last one."
        due = [w for w, n in self.taken.items() if w not in self.told or n - self.told[w] >= self.step]
        for worker in due:
            self.told[worker] = self.taken[worker]
        return [Credit(worker=w, seen=self.taken[w]) for w in due]

    def forget(self, worker: str) -> None:
        self.taken.pop(worker, None)
        self.told.pop(worker, None)
