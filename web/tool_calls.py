"""The model's actions on the app: each call applied once, shown as a card in its reply and in every
tab, and answered with the app's state (web/app_events.py); a card's Undo reverts its action, and the model is told, as
of any change the user makes. The store's thread does the work, so it runs as a task of its own.

A call the brain decided on (MODEL_TOOL_MODE=decide) that the app refuses gets no card: it is the
brain's guess at what the user asked, not an action anyone took, and it changed nothing.

A card keeps what a `Resume` needs to put its call back where it was, should the reply's brain die
before it saved the round (`answered`): the call as the brain sent it, and the action's result."""
import asyncio
import json
from collections.abc import Callable

from shared.messages import Answered, CallTool
from web.actions import Actions
from web.app_events import AppEvents
from web.apps import Refused
from web.clients import Client
from web.components import Relay, notify
from web.sessions import Sessions
from web.store import StoreThread


class ToolCalls:
    def __init__(self, sessions: Sessions, relay: Relay, actions: Actions, disk: StoreThread, events: AppEvents):
        self.sessions, self.relay, self.actions, self.disk, self.events = sessions, relay, actions, disk, events
        self.tasks: set[asyncio.Task] = set()  # kept until done, so none is collected mid-way
        self.applying: dict[tuple[str, str], set[asyncio.Task]] = {}  # by (session, reply): its calls being applied

    def call(self, msg: CallTool) -> None:
        key = (msg.session, msg.reply)
        task = self._spawn(self._act(msg))
        self.applying.setdefault(key, set()).add(task)
        task.add_done_callback(lambda done: self._applied(key, done))

    def once_applied(self, session: str, reply: str, then: Callable[[], None]) -> None:
        """Run `then` once no call of the reply is being applied (now, when none is): a resume made
        while its call is half-way would carry it neither as applied nor as not, and it could be made twice."""
        tasks = self.applying.get((session, reply))
        if tasks:
            self._spawn(self._after(set(tasks), then))
        else:
            then()

    def _applied(self, key: tuple[str, str], task: asyncio.Task) -> None:
        tasks = self.applying.get(key, set())
        tasks.discard(task)
        if not tasks:
            self.applying.pop(key, None)

    async def _after(self, tasks: set[asyncio.Task], then: Callable[[], None]) -> None:
        await asyncio.wait(tasks)
        then()

    def _asked(self, sid: str, reply_id: str) -> str | None:
        "The user's message a reply answers; None when it answers none (a comment) or the web no longer holds it."
        session = self.sessions.get(sid)
        reply = session.reply(reply_id)
        asked = session.question(reply.asks) if reply is not None else None
        return asked.text if asked is not None else None

    def undo(self, sid: str, client: Client, call: str) -> None:
        self._spawn(self._undo(sid, client, call))

    async def _act(self, msg: CallTool) -> None:
        row, changes = await self.disk.call(self.actions.act, msg.session, msg.reply, msg.call, msg.name, msg.arguments,
                                            self._asked(msg.session, msg.reply))
        if row.ok or not msg.decided:  # a decision's refused guess changed nothing, and nobody took it: no card
            self._card(msg.session, msg.reply, msg.call, text=row.text, ok=row.ok, undone=row.undone, name=msg.name,
                       arguments=msg.arguments, at=msg.at, index=msg.index, undoable=self.actions.undoable(row.name))
        if changes:
            self.relay.refresh(msg.session)
        await self.events.answer(msg, row.ok, row.text)

    async def _undo(self, sid: str, client: Client, call: str) -> None:
        try:
            row, changes = await self.disk.call(self.actions.undo, sid, call)
        except Refused as e:
            return notify(client, str(e))
        if row is None:
            return notify(client, "There is nothing to undo there.")
        self._card(sid, row.reply, call, undone=True)
        if changes:
            self.relay.refresh(sid)
        await self.events.changed(sid, changes)

    def _card(self, sid: str, reply_id: str, call: str, **fields) -> None:
        "Add or update the card of an action in its reply line."
        reply = self.sessions.get(sid).reply(reply_id)
        if reply is None:
            return
        cards = json.loads(reply.cards)
        card = next((c for c in cards if c["call"] == call), None)
        if card is None:
            cards.append({"call": call} | fields)
        else:
            card.update(fields)
        reply.cards = json.dumps(cards)
        self.sessions.keep(reply)
        self.relay.show(sid, reply)

    def _spawn(self, work) -> asyncio.Task:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task


def answered(cards: str) -> list[Answered]:
    """A reply's calls the web answered, from its cards, as a `Resume` carries them (a card kept before
    cards held their call is left out)."""
    return [Answered(call=c["call"], name=c["name"], arguments=c["arguments"], ok=c["ok"], text=c["text"], at=c["at"],
                     index=c["index"]) for c in json.loads(cards or "[]") if "name" in c]
