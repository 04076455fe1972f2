"""The status line: what stands between a session's next message and an answer, in words a user
can act on. It covers the whole chain (web → brain worker → Ollama → the session's model) and is
"ready" only when a message would be answered now.
"""
from collections.abc import Callable
from enum import StrEnum

from shared.messages import Presence, full_name


class ChainStatus(StrEnum):
    OFFLINE = "offline"  # no brain worker
    RESTARTING = "restarting"  # a worker said goodbye; a new one is on its way
    CHECKING = "checking"  # a worker is up but has not reached Ollama yet
    OLLAMA_DOWN = "ollama-down"
    NOT_PULLED = "not-pulled"  # the session's model is not in Ollama's list
    LOADING = "loading"
    BUSY = "busy"  # a worker is making a reply
    READY = "ready"


def chain_status(worker: Presence | None, restarting: bool, model: str) -> tuple[ChainStatus, str]:
    """The status of the worker that serves a session whose chosen model is `model` ("" for the
    worker's default), with the line to show."""
    if worker is None:
        return (ChainStatus.RESTARTING, "brain restarting…") if restarting else (ChainStatus.OFFLINE, "brain offline")
    model = model or worker.model
    if worker.ollama == "down":
        host = worker.ollama_url.split("://", 1)[-1]
        return ChainStatus.OLLAMA_DOWN, f"Ollama is not running at {host} — start it with `ollama serve`"
    if worker.ollama == "checking":
        return ChainStatus.CHECKING, "checking Ollama…"
    if worker.models is not None and full_name(model) not in worker.models:
        return ChainStatus.NOT_PULLED, f"{model} is not pulled — run `ollama pull {model}` (or pick another model)"
    if worker.loading:
        return ChainStatus.LOADING, f"loading {worker.loading}…"
    if worker.busy:
        return ChainStatus.BUSY, "brain thinking…"
    return ChainStatus.READY, "brain ready"


class StatusBoard:
    """Keeps the status line and the model picker of every open tab true: on any change of the
    workers or of Ollama, each session gets its own line (it depends on the session's model), and
    the picker too when Ollama's list of models changed."""

    def __init__(self, clients, line: Callable[[str], str], picker: Callable[[str], str],
                 models: Callable[[], list[str] | None]):
        self.clients, self.line, self.picker, self.models = clients, line, picker, models
        self.listed: list[str] | None = None

    def show(self, sessions: set[str]) -> None:
        "The status line (and with it the pull panel) of these sessions, say after their pulls changed."
        for session in sessions:
            self.clients.send(session, self.line(session))

    def changed(self) -> None:
        models = self.models()
        fresh, self.listed = models != self.listed, models
        for session in list(self.clients.by_session):
            self.clients.send(session, self.line(session) + (self.picker(session) if fresh else ""))
