"""The one fake of the bus for the chat layer's tests: the ports of web/ports.py (`Bus`, `Brains`),
and the broker's lifecycle for create_app. tests/web/test_ports.py checks that it and the real
switchboard have the ports' methods, with the same parameters."""
import asyncio

from shared.messages import AppEvent
from web.ports import NotSent
from web.status import ChainStatus


class FakeBus:
    """What was submitted, and one ready brain. Knobs:
    - `hold`: what is submitted is sent but no brain has claimed it yet (it can be withdrawn);
    - `no_brain`: what is submitted waits for a brain (`submit` says False; it can be withdrawn);
    - `refuse`: `submit` raises NotSent with this text, keeping nothing;
    - `gone`: replies no ready brain has in hand (a Stop would reach no one);
    - `models`, `status`: what the brains list, and every session's status line."""

    def __init__(self, settings=None, listener=None, outbox=None):
        self.listener = listener
        self.sent, self.pending, self.made, self.gone = [], {}, [], set()
        self.hold, self.no_brain, self.refuse = False, False, ""
        self.models: list[str] | None = ["llama3.2:latest"]
        self.status = (ChainStatus.READY, "brain ready")
        self.workers = {}

    # The broker's lifecycle, as create_app drives it.
    def open(self): pass
    def resume(self, pending, owners, granted=None): pass
    async def run(self): await asyncio.Event().wait()

    # Bus
    def submit(self, msg) -> bool:
        if self.refuse:
            raise NotSent(self.refuse)
        self.sent.append(msg)
        if self.hold or self.no_brain:
            self.pending[msg.id] = msg
        return not self.no_brain

    def offer(self, msg) -> bool | None:
        try:
            return self.submit(msg)
        except NotSent:
            return None

    def asking(self, reply: str) -> str | None:
        return next((m.id for m in self.pending.values() if m.makes == reply), None)

    def withdraw(self, message: str) -> bool:
        return self.pending.pop(message, None) is not None

    def in_hand(self, reply: str) -> bool:
        return reply not in self.gone

    def made_by(self, worker: str, session: str, reply: str) -> None:
        self.made.append((worker, session, reply))

    # Brains
    def status_of(self, session: str, model: str = "") -> tuple[ChainStatus, str]:
        return self.status

    # For the tests' eyes only.
    def asked(self) -> list:
        "What was sent, but what the app tells of the user (app events)."
        return [m for m in self.sent if not isinstance(m, AppEvent)]

    def events(self) -> list:
        return [m for m in self.sent if isinstance(m, AppEvent)]
