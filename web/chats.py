"""The web's conversations: each session's transcript and model choice, and every change of a
reply's status.

This is the one owner of that state. Frames from the tabs (chat, stop, retry, regenerate, reset,
model, undo, pull, cancel_pull, or any other control, told to the model as used) and messages from
the brain (ack, waiting, chunk, done, failed, note, tool_call, pull_progress) come in here (the
pulls' own state is web/pulls.py's); here it is decided what the broker sends (one message for one
user action), what the store keeps and what the tabs are shown (through the relay). A new tab takes its snapshot and joins the fan-out in one synchronous step, so it can
neither miss a fragment nor apply one twice.

Memory stays bounded: once more than MAX_SESSIONS are held, the least recently used session that
no tab has open and that has no reply under way is dropped, and read back from SQLite when it
returns.
"""
import asyncio
import json
import logging
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from fasthtml.common import to_xml

from shared.config import Settings
from shared.messages import (MODEL_NAME, AboutReply, Ack, AppEvent, CallTool, Chat, Chunk, Done, Failed, FailCode, Note,
                             Presence, PullProgress, Regenerate, Reset, Resume, Stop, ToBrain, ToolResult, ToWeb, Waiting,
                             digest, full_name)
from web.actions import Actions
from web.apps import App, Change, Refused as NotDone
from web.interactions import ws_heard
from web.broker import Broker, Refused
from web.clients import Client, Clients
from web.components import BrainStatus, Bubble, ModelPicker, PullPanel, Transcript, stats_note
from web.frames import Unreadable, read_frame
from web.limits import Rate, Verdict
from web.pulls import Pulls
from web.relay import Relay
from web.status import StatusBoard
from web.store import Store, StoreThread
from web.transcript import REGENERABLE, RETRYABLE, Line, Status

log = logging.getLogger("web.chats")
MAX_SESSIONS = 1000
KEPT_PER_SESSION = 200
DROPPED_REMEMBERED = 10_000
VALID_MODEL = re.compile(MODEL_NAME)


@dataclass
class Session:
    lines: OrderedDict[tuple[str, str], Line] = field(default_factory=OrderedDict)
    model: str = ""  # the chosen model; "" for the brain's default
    loaded: bool = False  # the transcript and choice on disk have been read in
    told: str = ""  # the digest of the app's state as last sent to the brain ("" not known: it states it whole)

    def reply(self, request: str) -> Line | None:
        return self.lines.get((request, "reply"))


class Chats:
    def __init__(self, settings: Settings, store: Store, disk: StoreThread, clients: Clients, broker: Broker,
                 app: App, actions: Actions):
        self.settings, self.store, self.disk, self.clients, self.broker = settings, store, disk, clients, broker
        self.app, self.actions = app, actions
        self.prompt = app.prompt(settings)  # made once: the same bytes in every message
        self.tasks: set[asyncio.Task] = set()  # kept until done, so none is collected mid-way
        self.relay = Relay(clients)
        # The pull offer depends on what the status line does (the session's model, Ollama's list).
        self.board = StatusBoard(clients, lambda sid: to_xml(self.status_line(sid)) + to_xml(self.pull_panel(sid)),
                                 lambda sid: to_xml(self.picker(sid)), lambda: broker.models)
        self.pulls = Pulls(broker, settings.heartbeat_s, lambda sid: clients.send(sid, to_xml(self.pull_panel(sid))))
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.dropped: OrderedDict[str, None] = OrderedDict()  # replies of conversations reset since
        self.rate = Rate(settings.session_rate, settings.session_burst)  # frames here, changes in web/server.py
        self.handlers: dict[str, Callable[[str, Client, str], None]] = {
            "msg": self.chat, "stop": self.stop, "retry": self.retry, "regenerate": self.regenerate,
            "reset": self.reset, "model": self.choose_model, "undo": self.undo, "pull": self.pull,
            "cancel_pull": self.cancel_pull}

    # Sessions: in memory while in use, on disk always.

    def _session(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is None:
            session = self.sessions[sid] = Session()
            self._evict()
        else:
            self.sessions.move_to_end(sid)
        return session

    async def open(self, sid: str) -> Session:
        "The session with its transcript and model choice read in (once)."
        session = self._session(sid)
        if not session.loaded:
            lines = await self.disk.call(self.store.transcript, sid, KEPT_PER_SESSION)
            model = await self.disk.call(self.store.model_choice, sid)
            session = self._session(sid)  # it may have been dropped and made anew meanwhile
            if not session.loaded:
                # What arrived while reading (a reply streaming) wins over what the disk held.
                merged = OrderedDict((line.key, self._revived(line)) for line in lines if line.key not in session.lines)
                merged.update(session.lines)
                session.lines, session.model, session.loaded = merged, session.model or model, True
        return session

    def _revived(self, line: Line) -> Line:
        """A line left under way by a web that stopped: queued while its message waits in the
        outbox, otherwise interrupted (it carries on if its brain is still answering it)."""
        if line.live:
            if self.broker.asking(line.request):
                line.status = Status.QUEUED
            else:
                line.status, line.note = Status.INTERRUPTED, "Interrupted: the web restarted mid-reply."
        return line

    def _evict(self) -> None:
        while len(self.sessions) > MAX_SESSIONS:
            idle = next((sid for sid, s in self.sessions.items()
                         if not self.clients.by_session.get(sid) and not any(l.live for l in s.lines.values())), None)
            if idle is None:
                return
            del self.sessions[idle]

    def _add(self, sid: str, line: Line) -> Line:
        line.session = sid
        lines = self._session(sid).lines
        lines[line.key] = line
        while len(lines) > KEPT_PER_SESSION:
            lines.popitem(last=False)
        self._keep(line)
        return line

    def _keep(self, line: Line) -> None:
        self.disk.post(self.store.keep_line, replace(line))  # a copy: the line changes on, the write is later

    # What a tab is shown.

    def status_line(self, sid: str):
        return BrainStatus(*self.broker.status_of(sid, self._session(sid).model))

    def picker(self, sid: str):
        return ModelPicker(self.broker.models, self._session(sid).model or self.settings.model)

    def pull_panel(self, sid: str):
        "The offer to pull the session's model while Ollama lists it as not pulled, and the session's pulls."
        model, models = self._session(sid).model or self.settings.model, self.broker.models
        missing = models is not None and full_name(model) not in models and not self.pulls.pulling(model)
        return PullPanel(model if missing else None, self.pulls.of(sid))

    def bubbles(self, sid: str) -> list:
        return [Bubble(line) for line in self._session(sid).lines.values()]

    def snapshot(self, sid: str) -> str:
        "Everything a tab that (re)connects needs: the transcript, the status line, the picker."
        return (to_xml(Transcript(self.bubbles(sid))) + to_xml(self.status_line(sid)) + to_xml(self.picker(sid))
                + to_xml(self.pull_panel(sid)))

    # Frames from a tab.

    def frame(self, sid: str, client: Client, text: str | None) -> None:
        """A frame from htmx-ext-ws: the form fields as JSON. Its one known field says what to do.
        A frame past the session's rate, or one that cannot be read, goes no further than here."""
        verdict = self.rate.take(sid)
        if verdict is not Verdict.TAKEN:
            if verdict is Verdict.REFUSED:
                self.relay.notice(client, f"Too many messages at once; slow down. More than {self.settings.session_burst} "
                                          f"at a time, or {self.settings.session_rate:g} a second, are ignored (SESSION_RATE).")
            return
        try:
            data = read_frame(text, self.settings.ws_max_frame_chars)
        except Unreadable as e:
            return self.relay.notice(client, f"{e} Nothing was sent.")
        for name, handler in self.handlers.items():
            value = data.get(name)
            if isinstance(value, str):
                try:
                    return handler(sid, client, value)
                except Refused as e:
                    return self.relay.notice(client, f"Not sent: {e}.")
            if name in data:  # a chat control whose value is no text ({"msg": 5}): no page sends that
                return self.relay.notice(client, "That message could not be read; nothing was sent.")
        self.tell(sid, [ws_heard(data)])  # a control that is not the chat's: the model hears it was used

    def tell(self, sid: str, lines: list[str], state: str = "", comment: bool = False) -> None:
        "What the user did in the app, for the model (see `AppEvent`)."
        session = self._session(sid)
        self._state_sent(session, state, AppEvent(session=sid, id=uuid.uuid4().hex, lines=lines, state=state,
                                                  since=session.told, comment=comment, prompt=self.prompt))

    def _state_sent(self, session: Session, state: str, msg: ToBrain) -> None:
        "Send a message that carries the app's state; the brain is known to have it once the bus has taken it."
        if self.broker.offer(msg) is not None and state:
            session.told = digest(state)

    async def changed(self, sid: str, changes: list[Change]) -> None:
        "The user changed the app: the model is told what, with the state after it, and comments once the clicking pauses."
        if changes:
            self.tell(sid, [self.app.tell(c) for c in changes], await self.disk.call(self.app.state, sid), comment=True)

    def _submit(self, msg: ToBrain) -> Status:
        return Status.THINKING if self.broker.submit(msg) else Status.QUEUED

    def chat(self, sid: str, client: Client, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if len(text) > self.settings.max_chat_chars:
            return self.relay.notice(client, f"That message is {len(text):,} characters long; the limit is "
                                             f"{self.settings.max_chat_chars:,} (MAX_CHAT_CHARS). Nothing was sent.")
        under_way = sum(1 for line in self._session(sid).lines.values() if line.role == "reply" and line.live)
        if under_way >= self.settings.session_max_replies:
            return self.relay.notice(client, f"{under_way} replies are on their way already (SESSION_MAX_REPLIES); "
                                             "send this once one has come, or press Stop. Nothing was sent.")
        reply_id = uuid.uuid4().hex
        status = self._submit(Chat(session=sid, id=uuid.uuid4().hex, reply=reply_id, text=text, model=self._session(sid).model,
                                   prompt=self.prompt))
        user = self._add(sid, Line(request=reply_id, role="user", text=text))
        reply = self._add(sid, Line(request=reply_id, role="reply", status=status, asks=reply_id))
        self.relay.append(sid, user, reply)
        self.relay.notice(client, "")

    def stop(self, sid: str, client: Client, reply_id: str) -> None:
        reply = self._session(sid).reply(reply_id)
        if reply is None or not reply.live:
            return  # it ended meanwhile: nothing to stop
        asking = self.broker.asking(reply_id)
        if asking and self.broker.withdraw(asking):
            self._end(reply, Status.STOPPED, "Stopped before it was sent.")
        else:
            self.broker.submit(Stop(session=sid, id=uuid.uuid4().hex, reply=reply_id))

    def retry(self, sid: str, client: Client, request: str) -> None:
        """Ask a failed reply again, in a new line after the last. A reply to a message repeats the
        message; a comment the brain made by itself is made again, if it is the newest reply."""
        session = self._session(sid)
        failed = session.reply(request)
        if failed is None or failed.status not in RETRYABLE:
            return self.relay.notice(client, "There is nothing to retry there.")
        question = session.lines.get((failed.asks, "user")) if failed.asks else None
        if question is None and failed is not self._newest_reply(session):
            return self.relay.notice(client, "Only the newest comment can be asked again.")
        new = uuid.uuid4().hex
        if question is not None:
            status = self._submit(Chat(session=sid, id=uuid.uuid4().hex, reply=new, text=question.text, retry=True,
                                       model=session.model, prompt=self.prompt))
        else:
            status = self._submit(Regenerate(session=sid, id=uuid.uuid4().hex, reply=new, model=session.model,
                                             prompt=self.prompt))
        self._end(failed, Status.RETRIED, failed.note)
        self.relay.append(sid, self._add(sid, Line(request=new, role="reply", status=status, asks=failed.asks)))

    def regenerate(self, sid: str, client: Client, request: str) -> None:
        "Answer the newest reply's question again, streamed into the same line."
        session = self._session(sid)
        reply = session.reply(request)
        if reply is None or reply is not self._newest_reply(session) or reply.status not in REGENERABLE:
            return self.relay.notice(client, "Only the newest finished reply can be regenerated.")
        reply.status = self._submit(Regenerate(session=sid, id=uuid.uuid4().hex, reply=request, model=session.model,
                                               prompt=self.prompt))
        reply.text, reply.thinking, reply.note, reply.seq = "", "", "", 0
        self._keep(reply)
        self.relay.show(sid, reply)

    def reset(self, sid: str, client: Client, _: str) -> None:
        "New chat: an empty transcript for every tab; late words of the old replies are ignored."
        self.broker.submit(Reset(session=sid, id=uuid.uuid4().hex))
        session = self._session(sid)
        for request, _role in session.lines:
            self.dropped[request] = None
        while len(self.dropped) > DROPPED_REMEMBERED:
            self.dropped.popitem(last=False)
        session.lines = OrderedDict()
        self.disk.post(self.store.clear_transcript, sid)
        self.relay.transcript(sid, [])

    def choose_model(self, sid: str, client: Client, model: str) -> None:
        if not VALID_MODEL.match(model):
            return self.relay.notice(client, "That is not a model name.")
        models = self.broker.models  # None until a brain has listed them: the choice is taken on trust
        self._session(sid).model = model
        self.disk.post(self.store.choose_model, sid, model)
        self.clients.send(sid, to_xml(self.picker(sid)) + to_xml(self.status_line(sid)) + to_xml(self.pull_panel(sid)))
        missing = models is not None and full_name(model) not in models
        self.relay.notice(client, f"The model '{model}' is not pulled. Run `ollama pull {model}`, or press Pull."
                          if missing else "")

    def pull(self, sid: str, client: Client, model: str) -> None:
        "Pull a model into Ollama from the page; every tab of the session (and of any that joins) sees it go."
        if not VALID_MODEL.match(model):
            return self.relay.notice(client, "That is not a model name.")
        models = self.broker.models
        if models is not None and full_name(model) in models:
            return self.relay.notice(client, f"The model '{model}' is pulled already.")
        self.pulls.start(sid, model)
        self.relay.notice(client, "")

    def cancel_pull(self, sid: str, client: Client, request: str) -> None:
        self.pulls.cancel(request)

    def undo(self, sid: str, client: Client, call: str) -> None:
        "Revert one action the model took; the model is told, as of any change the user makes."
        self._spawn(self._undo(sid, client, call))

    async def _undo(self, sid: str, client: Client, call: str) -> None:
        try:
            row, changes = await self.disk.call(self.actions.undo, sid, call)
        except NotDone as e:
            return self.relay.notice(client, str(e))
        if row is None:
            return self.relay.notice(client, "There is nothing to undo there.")
        self._card(sid, row.reply, call, undone=True)
        self.relay.changes(sid, self.app.show(changes))
        await self.changed(sid, changes)

    def _spawn(self, work) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _card(self, sid: str, request: str, call: str, **fields) -> None:
        "Add or update the card of an action in its reply line."
        reply = self._session(sid).reply(request)
        if reply is None:
            return
        cards = json.loads(reply.cards)
        card = next((c for c in cards if c["call"] == call), None)
        if card is None:
            cards.append({"call": call} | fields)
        else:
            card.update(fields)
        reply.cards = json.dumps(cards)
        self._keep(reply)
        self.relay.show(sid, reply)

    @staticmethod
    def _newest_reply(session: Session) -> Line | None:
        return next((line for line in reversed(session.lines.values()) if line.role == "reply"), None)

    # Messages from the brain: the broker's listener.

    def brain_message(self, msg: ToWeb) -> None:
        if isinstance(msg, AboutReply) and msg.reply in self.dropped:
            return
        if isinstance(msg, Presence):
            return self.pulls.presence(msg)
        handler = {Chunk: self._chunk, Done: self._finish, Failed: self._finish, Ack: self._ack,
                   Waiting: self._waiting, Note: self._note, CallTool: self._call_tool,
                   PullProgress: self.pulls.progress}.get(type(msg))
        if handler:
            handler(msg)

    def brain_status(self, status) -> None:
        self.board.changed()

    def brain_lost(self, worker: str) -> None:
        """A brain went away: each reply it was making is carried on by the session's next brain
        from what reached the page (Ollama continues a final assistant message). Until that brain
        speaks the reply shows as interrupted, so Retry stays at hand should it never come."""
        self.pulls.lost(worker)
        for sid, session in self.sessions.items():
            for line in list(session.lines.values()):
                if line.worker == worker and line.status in (Status.THINKING, Status.WAITING, Status.STREAMING):
                    self._end(line, Status.INTERRUPTED, "Interrupted: the brain stopped mid-reply; carrying on with "
                                                        "the next one…")
                    question = session.lines.get((line.asks, "user"))
                    self.broker.offer(Resume(session=sid, id=uuid.uuid4().hex, reply=line.request, text=line.text,
                                             thinking=line.thinking, seq=line.seq, model=session.model,
                                             question=question.text if question else "", prompt=self.prompt))

    def reply_lost(self, session: str, reply_id: str) -> None:
        reply = self._session(session).reply(reply_id)
        if reply is not None and reply.live:
            self._end(reply, Status.FAILED, "The end of this reply was lost on its way from the brain (the web fell "
                                            "behind); what arrived is shown. Retry asks again.")

    def _ack(self, msg: Ack) -> None:
        self.pulls.acked(msg)
        reply = self._session(msg.session).reply(msg.reply) if msg.reply else None
        if reply is None:
            return
        reply.worker = msg.worker
        if reply.status == Status.QUEUED:
            reply.status = Status.THINKING
            self.relay.show(msg.session, reply)

    def _call_tool(self, msg: CallTool) -> None:
        self._spawn(self._act(msg))

    async def _act(self, msg: CallTool) -> None:
        "The model acts: applied once, shown as a card in its reply and in every tab, answered."
        row, changes = await self.disk.call(self.actions.act, msg.session, msg.reply, msg.call, msg.name, msg.arguments)
        self._card(msg.session, msg.reply, msg.call, text=row.text, ok=row.ok, undone=row.undone)
        self.relay.changes(msg.session, self.app.show(changes))
        state, brief = await self.disk.call(lambda: (self.app.state(msg.session), self.app.brief(msg.session)))
        self._state_sent(self._session(msg.session), state, ToolResult(
            session=msg.session, id=uuid.uuid4().hex, reply=msg.reply, call=msg.call, ok=row.ok, text=f"{row.text} {brief}",
            state=state))

    def _waiting(self, msg: Waiting) -> None:
        reply = self._session(msg.session).reply(msg.reply)
        if reply is not None and reply.live:
            reply.status, reply.note, reply.worker = Status.WAITING, msg.reason, msg.worker
            self.relay.show(msg.session, reply)

    def _note(self, msg: Note) -> None:
        self.relay.append(msg.session, self._add(msg.session, Line(request=msg.reply, role="note", text=msg.text)))

    def _chunk(self, msg: Chunk) -> None:
        reply = self._session(msg.session).reply(msg.reply)
        if reply is None:  # a reply the brain started by itself: a comment on app events
            reply = self._add(msg.session, Line(request=msg.reply, role="reply", status=Status.THINKING))
            self.relay.append(msg.session, reply)
        # An interrupted reply whose worker was only slow, not dead, carries on streaming.
        if not (reply.live or reply.status == Status.INTERRUPTED) or msg.seq < reply.seq:
            return  # late or repeated: the final text will settle it
        if msg.seq > reply.seq:
            log.warning("reply %s: chunks %d..%d lost; the final text will repair it", msg.reply, reply.seq, msg.seq - 1)
        reply.worker, reply.seq = msg.worker, msg.seq + 1
        first_thought = msg.thinking and not reply.thinking
        reply.text += msg.text
        reply.thinking += msg.thinking
        if reply.status != Status.STREAMING or first_thought:
            reply.status, reply.note = Status.STREAMING, ""
            self.relay.show(msg.session, reply)
        else:
            self.relay.words(msg.session, msg.reply, msg.text, msg.thinking)

    def _finish(self, msg: Done | Failed) -> None:
        session = self._session(msg.session)
        reply = session.reply(msg.reply)
        new = reply is None  # a comment that ended before its first words (a failure, say)
        if new:
            reply = Line(session=msg.session, request=msg.reply, role="reply")
        elif not (reply.live or reply.status == Status.INTERRUPTED):
            return  # already final; a duplicate
        reply.text, reply.worker = msg.text, msg.worker
        if isinstance(msg, Done):
            reply.thinking = msg.thinking or reply.thinking
            reply.status, reply.note = Status.DONE, stats_note(msg.stats)
        else:
            reply.status = Status.STOPPED if msg.code is FailCode.STOPPED else Status.FAILED
            reply.note = msg.error
        if new:
            self.relay.append(msg.session, self._add(msg.session, reply))
        else:
            self._keep(reply)
            self.relay.show(msg.session, reply)

    def _end(self, line: Line, status: Status, note: str) -> None:
        line.status, line.note = status, note
        self._keep(line)
        self.relay.show(line.session, line)
