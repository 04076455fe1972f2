"""The web's side of model pulls: which run, which sessions follow each, and where each stands.

One pull per model at a time: Pull pressed for a model that is being pulled already (in another tab
or another session) joins that pull instead of starting another. Each session is shown the pulls it
asked for, running or ended (its last few), so a status change or a reconnect does not lose an
error line. A pull whose brain went away, or whose end never arrived (the brain's heartbeat no
longer lists it), is ended here too: never a progress bar that waits for ever.

Each method that changes what a session is shown returns those sessions: who called it shows them.
"""
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from shared.messages import Ack, CancelPull, Presence, Pull, PullOutcome, PullProgress, full_name
from web.ports import Bus

SHOWN_PER_SESSION = 3
SESSIONS_REMEMBERED = 1000
LOST_AFTER_BEATS = 2


@dataclass
class PullView:
    "A pull as the page shows it; `session` is the one it was sent for (its worker pulls, a cancel goes there too)."
    pull: str  # the Pull message's id, which names the pull on the bus
    model: str
    session: str
    status: str = "waiting for the brain"
    digest: str = ""
    completed: int = 0
    total: int = 0
    outcome: PullOutcome = PullOutcome.RUNNING
    error: str = ""
    worker: str = ""
    updated: float = 0.0
    followers: set[str] = field(default_factory=set)  # the sessions shown it


class Pulls:
    def __init__(self, bus: Bus, heartbeat_s: float, clock=time.monotonic):
        self.bus, self.heartbeat_s, self.clock = bus, heartbeat_s, clock
        self.running: dict[str, PullView] = {}  # by the model's full name
        self.shown: OrderedDict[str, OrderedDict[str, PullView]] = OrderedDict()  # by session, then model

    def of(self, session: str) -> list[PullView]:
        return list(self.shown.get(session, {}).values())

    def pulling(self, model: str) -> bool:
        return full_name(model) in self.running

    def start(self, session: str, model: str) -> set[str]:
        "Pull `model` for `session`, or join the pull of it that runs."
        view = self.running.get(full_name(model))
        if view is None:
            pull = uuid.uuid4().hex
            self.bus.submit(Pull(session=session, id=pull, model=model))  # refused: nothing starts
            view = self.running[full_name(model)] = PullView(pull, model, session, updated=self.clock())
        self._show(session, view)
        return {session}

    def cancel(self, session: str, pull: str) -> set[str]:
        "End a pull the session follows; another session's pull is not its to end (nor, unseen, to know of)."
        view = self._find(pull)
        if view is None or session not in view.followers:
            return set()  # it ended meanwhile, or it is not the session's
        if self.bus.withdraw(pull):
            return self._end(view, PullOutcome.CANCELLED)
        self.bus.submit(CancelPull(session=view.session, id=uuid.uuid4().hex, pull=pull))
        return set()

    def acked(self, msg: Ack) -> None:
        view = self._find(msg.message)
        if view is not None:
            view.worker, view.updated = msg.worker, self.clock()

    def progress(self, msg: PullProgress) -> set[str]:
        view = self._find(msg.pull)
        if view is None:
            return set()  # ended here already, or sent before a web restart
        view.status, view.digest, view.completed, view.total = msg.status, msg.digest, msg.completed, msg.total
        view.worker, view.updated = msg.worker, self.clock()
        return self._end(view, msg.outcome, msg.error) if msg.outcome else set(view.followers)

    def lost(self, worker: str) -> set[str]:
        "The worker is gone: its pulls end (Ollama keeps what it downloaded, so pulling again resumes)."
        return set().union(*(self._end(view, PullOutcome.FAILED, f"The brain stopped during the pull of {view.model}; "
                                                                 "press Pull to resume it.")
                             for view in [v for v in self.running.values() if v.worker == worker]))

    def presence(self, msg: Presence) -> set[str]:
        """A pull its worker no longer lists whose end never came (lost on the bus): it ended, pulled
        if the model is listed now."""
        due = self.clock() - LOST_AFTER_BEATS * self.heartbeat_s
        changed = set()
        for view in [v for v in self.running.values() if v.worker == msg.worker]:
            if view.pull not in msg.pulling and view.updated < due:
                if full_name(view.model) in (msg.models or []):
                    changed |= self._end(view, PullOutcome.PULLED)
                else:
                    changed |= self._end(view, PullOutcome.FAILED,
                                         f"The end of the pull of {view.model} was lost; press Pull to go on.")
        return changed

    def _find(self, pull: str) -> PullView | None:
        return next((v for v in self.running.values() if v.pull == pull), None)

    def _show(self, session: str, view: PullView) -> None:
        shown = self.shown.setdefault(session, OrderedDict())
        self.shown.move_to_end(session)
        shown.pop(full_name(view.model), None)  # a new pull of a model replaces how the last one ended
        shown[full_name(view.model)] = view
        view.followers.add(session)
        for model, old in list(shown.items())[:max(0, len(shown) - SHOWN_PER_SESSION)]:
            if old.outcome:
                del shown[model]
        while len(self.shown) > SESSIONS_REMEMBERED:
            gone, views = self.shown.popitem(last=False)
            for v in views.values():
                v.followers.discard(gone)

    def _end(self, view: PullView, outcome: PullOutcome, error: str = "") -> set[str]:
        view.outcome, view.error = outcome, error
        self.running.pop(full_name(view.model), None)
        return set(view.followers)
