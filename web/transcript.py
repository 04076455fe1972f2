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


@dataclass
class Line:
    """One line of a session's transcript.

    `key` is the line's own id in its session, on disk and on the page (`key_of`): a line keeps
    its place when its status changes. `request` is the chat message it belongs to: the user's
    message and the reply to it share one; a note carries the reply it is about. `asks` is the
    request of the user line a reply answers ("" for a comment the brain made by itself); `note`
    holds an error or the reply's stats; `seq` is the next chunk expected while a reply streams;
    `cards` are the actions the model took while making it."""
    id: int | None = None
    session: str = ""
    request: str = ""
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
        self.key = self.key or key_of(self.role, self.request, self.text)

    @property
    def live(self) -> bool:
        return self.status in LIVE


def key_of(role: str, request: str, text: str = "") -> str:
    """A line's id: `user-R` and `reply-R` for a message and its reply; a note about reply R is
    `note-R-` and a digest of its words, so two notes about one reply are two lines, and the same
    note told twice (a brain resending it) is one."""
    if role == Role.NOTE:
        return f"note-{request}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
    return f"{role}-{request}"
