"""What the web knows of each brain worker (docs/protocol.md §6), with no socket in sight: the
broker reports what XPUB and the publishers say (through the switchboard), and the clock passed in
tells the time.

A worker is ready once its subscription has reached XPUB (so nothing sent to it is dropped by the
slow-joiner effect) and it has said hello or heartbeated within MISSED_BEATS intervals. One that
stops heartbeating is only silent: it may be stalled, so it stays known until its subscription
ends or it says goodbye, and is back the moment it says anything.

Each worker's credit is here too (`Credits`): the web's side of flow control (brain/outlet.py), how
many messages it has taken from each worker, told back to the worker (`Credit`) once per wakeup of
the bus loop, when a quarter window more has been taken or a presence message has come. A worker
counts its own messages (`Presence.sent`), so a message lost on the way is counted right at the
next heartbeat, and a worker never waits long for a credit that would not come.
"""
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shared.config import Settings
from shared.messages import Credit, Presence, ToWeb

MISSED_BEATS = 3
RESTART_GRACE_S = 15.0  # how long "restarting" may last after a clean goodbye before it is "offline"


@dataclass
class WorkerState:
    subscribed: bool = False
    presence: Presence | None = None
    last_seen: float = 0.0
    silent: bool = False  # judged lost for missing heartbeats, but still connected


class Workers:
    def __init__(self, settings: Settings, clock: Callable[[], float]):
        self.settings, self.clock = settings, clock
        self.states: dict[str, WorkerState] = {}
        self.restarting_until = 0.0
        self.shown: tuple = ()  # what the status depends on, as last announced

    def __contains__(self, worker: str) -> bool:
        return worker in self.states

    def items(self) -> Iterable[tuple[str, WorkerState]]:
        return self.states.items()

    def subscribed(self, worker: str) -> None:
        self.states.setdefault(worker, WorkerState()).subscribed = True

    def present(self, presence: Presence) -> None:
        state = self.states.setdefault(presence.worker, WorkerState())
        state.presence, state.last_seen = presence, self.clock()

    def heard(self, worker: str) -> bool:
        """Any message is proof of life, not only heartbeats (from a worker that has said who it
        is). True when the worker was silent, and is back."""
        state = self.states.get(worker)
        if state is None or state.presence is None:
            return False
        state.last_seen = self.clock()
        back, state.silent = state.silent, False
        return back

    def overdue(self) -> list[str]:
        "The workers that have missed their heartbeats and are not yet known to be silent."
        return [w for w, s in self.states.items() if s.presence and not s.silent and not self._alive(s)]

    def silence(self, worker: str) -> None:
        self.states[worker].silent = True

    def forget(self, worker: str) -> bool:
        "The worker cannot speak again (its subscription ended, or it said goodbye); False if it was not known."
        return self.states.pop(worker, None) is not None

    def said_goodbye(self) -> None:
        self.restarting_until = self.clock() + RESTART_GRACE_S

    @property
    def restarting(self) -> bool:
        return self.clock() < self.restarting_until

    def ready(self, worker: str) -> bool:
        "Whether `worker` is subscribed and heartbeating, so what is sent to it now reaches it."
        state = self.states.get(worker)
        return state is not None and self._ready(state)

    def ready_ones(self) -> list[str]:
        return [w for w, s in self.states.items() if self._ready(s)]

    def presence(self, worker: str) -> Presence | None:
        return self.states[worker].presence

    def _alive(self, state: WorkerState) -> bool:
        return state.presence is not None and self.clock() - state.last_seen < MISSED_BEATS * self.settings.heartbeat_s

    def _ready(self, state: WorkerState) -> bool:
        return state.subscribed and self._alive(state)

    @property
    def models(self) -> list[str] | None:
        "The models pulled into Ollama, as the ready workers last saw them; None until one has listed them."
        lists = [s.presence.models for s in self.states.values() if self._ready(s) and s.presence.models is not None]
        return sorted({m for models in lists for m in models}) if lists else None

    def status_changed(self) -> bool:
        "Whether anything a status line depends on has changed since this last said so."
        ready = sorted((w, s.presence.ollama, s.presence.loading, bool(s.presence.busy), s.presence.model,
                        tuple(s.presence.models or ()), s.presence.models is None)
                       for w, s in self.states.items() if self._ready(s))
        shown = (self.restarting, tuple(ready))
        changed, self.shown = shown != self.shown, shown
        return changed


class Credits:
    "How much of what each worker sent the web has taken, and the credits due to it (see the module's doc)."

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
