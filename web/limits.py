"""How fast the app may be made to work, and how much it may keep.

Per session (`Rate`): a token bucket per session, so one tab flooding frames or clicks is refused
(and told once) while every other session goes on as before.

For everyone together (`Bounds`): fresh session cookies are free, so the per-session bounds alone
would let a script make sessions by the hundred and change the app through each. New sessions and
the app's changes through its POST/DELETE routes each take from one bucket shared by all sessions,
and past DATA_MAX_MB of databases in DATA_DIR every change (the model's actions too) is refused
while reading goes on. A request another site makes (`Sec-Fetch-Site: cross-site`) takes no new
session from the bucket: it can write nothing (the origin check), and counted, a page anywhere on
the web could spend the bucket and keep new visitors out. Each refusal says which setting it met.
The defaults are far above what a person does (a person does not open 30 new sessions a minute),
so they only ever meet a script.

`before` runs in a thread pool and the model's actions on the store's thread, so the buckets lock.
"""
import functools
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from shared.config import Settings
from web.apps import App, Refused

REMEMBERED = 10_000  # sessions whose buckets are kept; a forgotten one starts full, as a new one does
DATABASES = ("web.db", "web.db-wal", "brain.db", "brain.db-wal")  # what grows in DATA_DIR (SQLite's -shm stays small)
TOO_MANY_REQUESTS, INSUFFICIENT_STORAGE = 429, 507
EVERYONE = ""  # the one key of a bound shared by all sessions


class Admission(Enum):
    TAKEN = "taken"
    REFUSED = "refused"  # the first refusal since the last taken: tell the user
    REFUSED_AGAIN = "refused again"  # told already: refuse without a word


class Rate:
    def __init__(self, per_s: float, burst: int, clock=time.monotonic):
        self.per_s, self.burst, self.clock = per_s, burst, clock
        self.buckets: OrderedDict[str, tuple[float, float, bool]] = OrderedDict()  # by session: tokens, when, told
        self.lock = threading.Lock()  # two requests of a session at once must not both find it full

    @property
    def refusal(self) -> str:
        "What a tab is told when a frame of it is refused."
        return (f"Too many messages at once; slow down. More than {self.burst} at a time, or {self.per_s:g} a second, "
                "are ignored (SESSION_RATE).")

    def take(self, session: str) -> Admission:
        with self.lock:
            now = self.clock()
            tokens, then, told = self.buckets.pop(session, (float(self.burst), now, False))
            tokens = min(float(self.burst), tokens + (now - then) * self.per_s)
            if tokens >= 1:
                verdict, tokens, told = Admission.TAKEN, tokens - 1, False
            else:
                verdict, told = (Admission.REFUSED_AGAIN if told else Admission.REFUSED), True
            self.buckets[session] = (tokens, now, told)
            while len(self.buckets) > REMEMBERED:
                self.buckets.popitem(last=False)
            return verdict


@dataclass(frozen=True)
class Refusal:
    status: int
    text: str


def data_bytes(data_dir: Path) -> int:
    "What DATA_DIR's databases take: a stat of each file (microseconds), not a walk of the directory."
    total = 0
    for name in DATABASES:
        try:
            total += (data_dir / name).stat().st_size
        except FileNotFoundError:
            pass  # not made yet, or the brain keeps its conversations in PostgreSQL
    return total


def data_full(settings: Settings) -> Refusal | None:
    "A refusal once DATA_DIR's databases reach DATA_MAX_MB: nothing more is written, everything stays readable."
    used = data_bytes(settings.data_dir)
    if used < settings.data_max_mb * 2**20:
        return None
    return Refusal(INSUFFICIENT_STORAGE, f"The app's data has reached {used / 2**20:,.0f} MB, its limit (DATA_MAX_MB): "
                                         "it takes no more changes or messages until room is made; reading still works.")


class Bounds:
    "What all sessions together may do."

    def __init__(self, settings: Settings, clock=time.monotonic):
        self.settings = settings
        # One bucket each, shared by everyone: a `Rate` with a single key.
        self.new_sessions = Rate(settings.new_sessions_rate / 60, settings.new_sessions_burst, clock)
        self.changes = Rate(settings.changes_rate, settings.changes_burst, clock)

    def new_session(self) -> Refusal | None:
        if self.new_sessions.take(EVERYONE) is Admission.TAKEN:
            return None
        return Refusal(TOO_MANY_REQUESTS, "Too many new visitors at once: the app opens at most "
                                          f"{self.settings.new_sessions_rate:g} new sessions a minute "
                                          "(NEW_SESSIONS_RATE). Please try again in a minute.")

    def change(self) -> Refusal | None:
        "A change to the app, from any session: refused when the data is full or everyone together goes too fast."
        if full := data_full(self.settings):
            return full
        if self.changes.take(EVERYONE) is Admission.TAKEN:
            return None
        return Refusal(TOO_MANY_REQUESTS, "The app is taking too many changes at once from all its sessions "
                                          f"(more than {self.settings.changes_rate:g} a second, CHANGES_RATE); "
                                          "try again in a moment.")

    def guard(self, app: App) -> App:
        """The app, with each of the model's actions refused past DATA_MAX_MB (told to the model and on
        its card). They do not take from CHANGES_RATE: a session's replies and their rounds of calls
        bound them already, and a script flooding the routes must not stop everyone's model acting."""
        def bounded(run):
            @functools.wraps(run)  # a failure is logged under the app's own function
            def run_bounded(session, arguments, asked=None):
                if refusal := data_full(self.settings):
                    raise Refused(refusal.text)
                return run(session, arguments, asked)
            return run_bounded
        return replace(app, actions=[replace(action, run=bounded(action.run)) for action in app.actions])
