"""The bus without its sockets: what the web knows of the brains and of each message for them. It
is what the chat layer sends through (the ports of web/ports.py), and what the broker (web/broker.py,
the sockets) reports what it hears to; it calls neither of them back.

Three pieces that touch no socket judge it all: `Workers` (web/workers.py: which brains are alive
and ready, and `Credits`, how much of what each sent has been taken, so no brain runs more than
BUS_WINDOW messages ahead of the web) and `Dispatch` (web/dispatch.py: pending messages, owners and
epochs, claims, replies in flight). Dispatch decides what is to be sent; it goes out here, through
the `Outlet`.
"""
import logging
import time

import zmq

from shared.config import Settings
from shared.messages import About, Ack, Message, Presence, ToBrain, ToWeb, encode
from web.dispatch import Dispatch, Outbox, Owner
from web.ports import NotSent
from web.status import ChainStatus, chain_status
from web.workers import Credits, Workers

log = logging.getLogger("web.switchboard")


class Outlet:
    "Where the web's messages leave: the XPUB socket, once the broker has bound it."

    def __init__(self):
        self.socket: zmq.Socket | None = None

    def send(self, msg: Message) -> None:
        self.socket.send_multipart(encode(msg), copy=False)


class Switchboard:
    """The chat layer's `Bus` and `Brains` (web/ports.py), and what the broker tells of the brains.
    What the broker must pass on to its listener is returned, never told to it from here."""

    def __init__(self, settings: Settings, outbox: Outbox, outlet: Outlet, clock=time.monotonic):
        self.outlet = outlet
        self.workers = Workers(settings, clock)
        self.credits = Credits(settings.bus_window)
        self.dispatch = Dispatch(settings, outbox, self.workers, clock)

    def resume(self, pending: list[ToBrain], owners: dict[str, Owner] | None = None,
               granted: dict[str, Owner] | None = None) -> None:
        """Take back what the outbox held when the web last stopped (sent once a worker is ready),
        the assignments and the grants."""
        self.dispatch.resume(pending, owners or {}, granted)

    # The chat layer's ports.

    def submit(self, msg: ToBrain) -> bool:
        """Send `msg` to the worker that serves its session; False when it must wait for a worker.
        Raises NotSent, keeping nothing of it, for a message a brain would not take (checked here,
        where it enters the bus) or when its session has SESSION_MAX_PENDING messages waiting."""
        sends = self.dispatch.submit(msg)
        self._send(sends)
        return bool(sends)  # `msg` is among them whenever anything goes

    def offer(self, msg: ToBrain) -> bool | None:
        """Submit a message the app can do without (an interaction, say): a refusal is logged, not
        raised, and returns None; otherwise as `submit`."""
        try:
            return self.submit(msg)
        except NotSent as e:
            log.warning("did not send a %s of session %s: %s", msg.kind, msg.session[:8], e)
            return None

    def asking(self, reply: str) -> str | None:
        "The id of the pending message that asks for `reply` (no worker's claim on it granted yet), if any."
        return self.dispatch.pending.asking(reply)

    def made_by(self, worker: str, session: str, reply: str) -> None:
        "A worker began `reply` by itself (a comment): it is counted, and ended, as any reply under way."
        self.dispatch.made_by(worker, session, reply)

    def in_hand(self, reply: str) -> bool:
        "Whether a ready worker may still be making `reply` (a Stop can reach it); if not, no final will come."
        return self.dispatch.in_hand(reply)

    def withdraw(self, message: str) -> bool:
        """Take back a message no worker's claim on has been granted; False if one may be acting on
        it. A worker that claims it later has its claim revoked."""
        return self.dispatch.withdraw(message)

    @property
    def pending(self) -> dict[str, ToBrain]:
        return self.dispatch.pending.messages

    @property
    def models(self) -> list[str] | None:
        return self.workers.models

    def ready(self, worker: str) -> bool:
        return self.workers.ready(worker)

    def serving(self, session: str) -> Presence | None:
        "The ready worker that serves `session` (or would), as it last described itself."
        worker = self.dispatch.serving(session)
        return self.workers.presence(worker) if worker else None

    def status_of(self, session: str, model: str = "") -> tuple[ChainStatus, str]:
        "The status line of a session whose chosen model is `model` (\"\" for the default)."
        return chain_status(self.serving(session), self.workers.restarting, model)

    @property
    def status(self) -> ChainStatus:
        return self.status_of("")[0]

    # What the broker hears of the brains.

    def heard(self, msg: ToWeb) -> bool:
        """Any message of a worker: counted for its credit, and proof of its life. True when the
        worker was silent, and is back."""
        self.credits.took(msg)
        return self.workers.heard(msg.worker)

    def claimed(self, ack: Ack) -> bool:
        "The claim is granted or revoked; True when it is new (only then does the listener hear of it)."
        new, verdict = self.dispatch.claimed(ack)
        self.outlet.send(verdict)
        return new

    def from_holder(self, msg: About) -> bool:
        "Whether `msg` comes from its session's worker; if not, it is ignored and the sender told."
        heard, revoke = self.dispatch.from_holder(msg)
        if revoke is not None:
            self.outlet.send(revoke)
        return heard

    def present(self, presence: Presence) -> list[tuple[str, str]]:
        "The worker's presence is taken in; the (session, reply) of each reply whose final it has lost."
        self.workers.present(presence)
        return self.dispatch.lost_finals(presence)

    def subscribed(self, worker: str) -> None:
        self.workers.subscribed(worker)

    def said_goodbye(self) -> None:
        self.workers.said_goodbye()

    def forget(self, worker: str) -> bool:
        "The worker cannot speak again; False if it was not known."
        self.credits.forget(worker)
        if not self.workers.forget(worker):
            return False
        self.dispatch.release(worker)
        return True

    def overdue(self) -> list[str]:
        "The workers that have missed their heartbeats and are not yet known to be silent."
        return self.workers.overdue()

    def silence(self, worker: str) -> None:
        self.workers.silence(worker)

    def strays(self) -> list[tuple[str, str]]:
        "The (session, reply) of each reply under way on a worker the web has long not known, ended now."
        return self.dispatch.strays()

    def status_changed(self) -> bool:
        return self.workers.status_changed()

    # What goes out besides what the chat layer sends.

    def send_credits(self) -> None:
        for credit in self.credits.due():
            self.outlet.send(credit)

    def resend_unacked(self) -> None:
        self._send_or_drop(self.dispatch.resend_unacked())

    def reroute(self) -> None:
        "Send what waits on a worker that is not ready (never assigned, or gone)."
        self._send_or_drop(self.dispatch.reroute())

    def _send(self, sends: list[Message]) -> None:
        for msg in sends:
            self.outlet.send(msg)

    def _send_or_drop(self, sends: list[Message]) -> None:
        "One message that cannot be sent is dropped (and logged), never left to fail every later round."
        for msg in sends:
            try:
                self.outlet.send(msg)
            except Exception:
                if not isinstance(msg, ToBrain):
                    log.exception("could not send a %s to brain %s", msg.kind, msg.worker)
                    continue
                log.exception("dropped %s %s of session %s: it could not be sent", msg.kind, msg.id, msg.session[:8])
                self.dispatch.withdraw(msg.id)
