"""One line of a session's transcript: the record kept in memory, on disk and in the export, and
the states a reply goes through."""
import hashlib
from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    "Whose line it is: what the user said, a reply (the model's), or a note about the conversation."
    USER = "user"
    REPLY = "reply"
    NOTE = "note"


class Status(StrEnum):
    "Where a line stands; a user or note line is always DONE."
    QUEUED = "queued"  # no brain has it yet
    THINKING = "thinking"  # a brain has it; no words yet
    WAITING = "waiting"  # the brain waits for Ollama to come back
    STREAMING = "streaming"
    DONE = "done"
    STOPPED = "stopped"  # the user pressed Stop; what came so far is kept
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # its brain went away mid-reply (it may still come back)
    RETRIED = "retried"  # failed, and asked again in a new line


LIVE = frozenset({Status.QUEUED, Status.THINKING, Status.WAITING, Status.STREAMING})
RETRYABLE = frozenset({Status.FAILED, Status.INTERRUPTED})
REGENERABLE = frozenset({Status.DONE, Status.STOPPED})


class Move(StrEnum):
    "What happens to a reply line: the brain's word on it, or the user's."
    CLAIMED = "claimed"  # a brain took its message
    WAITING = "waiting"  # its brain waits for Ollama
    CHUNK = "chunk"  # words came (an interrupted reply's brain was only slow: it carries on)
    DONE = "done"
    FAILED = "failed"  # by its brain, or because its end was lost
    STOPPED = "stopped"  # the user pressed Stop
    INTERRUPTED = "interrupted"  # its brain went away, or the web restarted, mid-reply
    RETRIED = "retried"  # asked again in a new line
    REGENERATED = "regenerated"  # asked again in the same line
    REQUEUED = "requeued"  # read back by a web that restarted while its message waits in the outbox


# A reply line's life in one table: each move, the statuses it may start from, and where it leads.
# What a brain says late, twice or out of order finds its line past it and changes nothing.
MOVES: dict[Move, tuple[frozenset[Status], Status]] = {
    Move.CLAIMED: (frozenset({Status.QUEUED}), Status.THINKING),
    Move.WAITING: (LIVE, Status.WAITING),
    Move.CHUNK: (LIVE | {Status.INTERRUPTED}, Status.STREAMING),
    Move.DONE: (LIVE | {Status.INTERRUPTED}, Status.DONE),
    Move.FAILED: (LIVE | {Status.INTERRUPTED}, Status.FAILED),
    Move.STOPPED: (LIVE | {Status.INTERRUPTED}, Status.STOPPED),
    Move.INTERRUPTED: (LIVE, Status.INTERRUPTED),
    Move.RETRIED: (RETRYABLE, Status.RETRIED),
    Move.REGENERATED: (REGENERABLE, Status.QUEUED),
    Move.REQUEUED: (LIVE, Status.QUEUED),
}


@dataclass
class Line:
    """One line of a session's transcript.

    `key` is the line's own id in its session, on disk and on the page (`key_of`): a line keeps
    its place when its status changes. `reply` is the id of the reply it belongs to, as the bus
    names it: the user's message and the reply to it share one; a note carries the reply it is
    about. `asks` is the `reply` of the user line a reply answers ("" for a comment the brain made
    by itself); `note` holds an error or the reply's stats; `seq` is the next chunk expected while
    a reply streams; `cards` are the actions the model took while making it."""
    id: int | None = None
    session: str = ""
    reply: str = ""
    role: str = ""  # a Role (the store gives it back as text)
    text: str = ""
    status: str = Status.DONE
    note: str = ""
    created: float = 0.0
    thinking: str = ""
    asks: str = ""
    worker: str = ""
    seq: int = 0
    cards: str = "[]"  # the model's actions in this reply (JSON: call, text, ok, undone), shown with an Undo
    key: str = ""

    def __post_init__(self):
        self.key = self.key or key_of(self.role, self.reply, self.text)

    @property
    def live(self) -> bool:
        return self.status in LIVE

    def can(self, move: Move) -> bool:
        return self.status in MOVES[move][0]

    def move(self, move: Move, note: str | None = None) -> bool:
        """Make `move` (with `note`, when given) if the line's life allows it from where it stands;
        False leaves the line as it was."""
        if not self.can(move):
            return False
        self.status = MOVES[move][1]
        if note is not None:
            self.note = note
        return True


def key_of(role: str, reply: str, text: str = "") -> str:
    """A line's id: `user-R` and `reply-R` for a message and its reply; a note about reply R is
    `note-R-` and a digest of its words, so two notes about one reply are two lines, and the same
    note told twice (a brain resending it) is one."""
    if role == Role.NOTE:
        return f"note-{reply}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return f"{role}-{reply}"
