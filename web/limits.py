"""How fast one session may make the app work: a token bucket per session, so one tab flooding
frames or clicks is refused (and told once) while every other session goes on as before."""
import time
from collections import OrderedDict
from enum import Enum

REMEMBERED = 10_000  # sessions whose buckets are kept; a forgotten one starts full, as a new one does


class Verdict(Enum):
    TAKEN = "taken"
    REFUSED = "refused"  # the first refusal since the last taken: tell the user
    REFUSED_AGAIN = "refused again"  # told already: refuse without a word


class Rate:
    def __init__(self, per_s: float, burst: int, clock=time.monotonic):
        self.per_s, self.burst, self.clock = per_s, burst, clock
        self.buckets: OrderedDict[str, tuple[float, float, bool]] = OrderedDict()  # by session: tokens, when, told

    def take(self, session: str) -> Verdict:
        now = self.clock()
        tokens, then, told = self.buckets.pop(session, (float(self.burst), now, False))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_s)
        if tokens >= 1:
            verdict, tokens, told = Verdict.TAKEN, tokens - 1, False
        else:
            verdict, told = (Verdict.REFUSED_AGAIN if told else Verdict.REFUSED), True
        self.buckets[session] = (tokens, now, told)
        while len(self.buckets) > REMEMBERED:
            self.buckets.popitem(last=False)
        return verdict
