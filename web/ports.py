"""What the chat layer needs of the bus, and nothing more: the ports its modules are written
against. `web/switchboard.py` is the real bus behind both; the tests use one fake (tests/fake_bus.py),
checked against these."""
from typing import Protocol

from shared.messages import ToBrain
from web.status import ChainStatus


class NotSent(ValueError):
    "A message the bus will not take (it could not be delivered, or its session has too many waiting); the text says why."


class Bus(Protocol):
    "Messages to the brains, and what the web knows of the replies they ask for."

    def submit(self, msg: ToBrain) -> bool:
        "Send `msg`; False when it waits for a worker. Raises NotSent, keeping nothing of it."

    def offer(self, msg: ToBrain) -> bool | None:
        "As `submit`, for a message the app can do without: a refusal is logged and returns None."

    def asking(self, reply: str) -> str | None:
        "The id of the pending message that asks for `reply` (no worker's claim on it granted yet), if any."

    def withdraw(self, message: str) -> bool:
        "Take back a message no worker's claim on has been granted; False if one may be acting on it."

    def in_hand(self, reply: str) -> bool:
        "Whether a ready worker may still be making `reply` (a Stop can reach it)."

    def made_by(self, worker: str, session: str, reply: str) -> None:
        "A worker began `reply` by itself (a comment): counted, and ended, as any reply under way."


class Brains(Protocol):
    "A read-only view of the brains: what a status line and the model picker show."

    @property
    def models(self) -> list[str] | None:
        "The models Ollama has pulled, as the brains last listed them (None before any did)."

    def status_of(self, session: str, model: str = "") -> tuple[ChainStatus, str]:
        "The status line of a session whose chosen model is `model` (\"\" for the default)."


class BusAndBrains(Bus, Brains, Protocol):
    "Both ports, from one object: the switchboard (web/switchboard.py), or the tests' fake bus."
