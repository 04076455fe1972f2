"""What a tab's frame does: each is read once at the door (`read_frame`) into a typed frame; each
chat control becomes at most one bus message and the lines it changes (one user action, one bus
message); any other control of the page is told to the model as used. A frame that cannot be read,
or a message the bus refuses, changes nothing and the tab is told why.

`Commands` hands each frame to what handles it: `ChatControls` (a message, Stop, Retry,
Regenerate, New chat), `ModelControls` (the model picker and pulls), the tool calls (Undo)."""
import re
import uuid
from enum import StrEnum

import msgspec
from fasthtml.common import to_xml

from shared.config import Settings
from shared.messages import MODEL_NAME, Chat, Prompt, Regenerate, Reset, Stop, ToBrain, full_name
from web.app_events import AppEvents
from web.clients import Client
from web.components import Relay, notify
from web.interactions import ws_heard
from web.limits import data_full
from web.ports import Brains, Bus, NotSent
from web.pulls import Pulls
from web.sessions import Sessions
from web.tool_calls import ToolCalls
from web.transcript import Line, Move, REGENERABLE, RETRYABLE, Role, Status
from web.views import Views

VALID_MODEL = re.compile(MODEL_NAME)


# The door for a tab's WebSocket frames. One that cannot be handled (not text, too long, not JSON,
# nested too deep, a lone surrogate, not an object, a chat control whose value is no text) is
# refused here with the notice for the tab, never passed on to the bus or the store.

class Unreadable(ValueError):
    "A frame refused at the door; the text is the notice for the user."


class Control(StrEnum):
    "The chat's own controls. A frame that names several is the first of them, in this order."
    MSG = "msg"
    STOP = "stop"
    RETRY = "retry"
    REGENERATE = "regenerate"
    RESET = "reset"
    MODEL = "model"
    UNDO = "undo"
    PULL = "pull"
    CANCEL_PULL = "cancel_pull"


class Command(msgspec.Struct, frozen=True):
    "A chat control and its value: a message's text, a reply's or a call's id, a model's name."
    control: Control
    value: str


class Used(msgspec.Struct, frozen=True):
    "Any other control of the page: its form fields (and the HEADERS htmx adds), for the model to hear of."
    fields: dict


Frame = Command | Used


def read_frame(text: str | None, max_chars: int) -> Frame:
    "What a frame asks for (htmx-ext-ws sends the form fields as one JSON object)."
    if text is None:
        raise Unreadable("That message could not be read (it was not text). Nothing was sent.")
    if len(text) > max_chars:
        raise Unreadable(f"That message is {len(text):,} characters long; a frame may be {max_chars:,} "
                         "(WS_MAX_FRAME_CHARS). Nothing was sent.")
    try:
        # msgspec, unlike json, refuses a lone surrogate (which nothing downstream could encode).
        data = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        raise Unreadable("That message could not be read (it is not valid JSON text). Nothing was sent.") from None
    if not isinstance(data, dict):
        raise Unreadable("That message could not be read (it holds no form fields). Nothing was sent.")
    control = next((c for c in Control if c in data), None)
    if control is None:
        return Used(data)
    if not isinstance(data[control], str):  # {"msg": 5}: no page sends that
        raise Unreadable("That message could not be read; nothing was sent.")
    return Command(control, data[control])


class ChatControls:
    "The chat's own controls: a message, Stop, Retry, Regenerate, New chat."

    def __init__(self, settings: Settings, sessions: Sessions, bus: Bus, relay: Relay, prompt: Prompt):
        self.settings, self.sessions, self.bus, self.relay, self.prompt = settings, sessions, bus, relay, prompt

    def _end(self, reply: Line, move: Move, note: str) -> None:
        "End a reply line for the user: kept once, shown once."
        if self.sessions.move(reply, move, note):
            self.relay.show(reply.session, reply)

    def _submit(self, msg: ToBrain) -> Status:
        return Status.THINKING if self.bus.submit(msg) else Status.QUEUED

    def chat(self, sid: str, client: Client, text: str) -> None:
        text = text.strip()
        if not text:
            return
        if len(text) > self.settings.max_chat_chars:
            return notify(client, f"That message is {len(text):,} characters long; the limit is "
                                  f"{self.settings.max_chat_chars:,} (MAX_CHAT_CHARS). Nothing was sent.")
        if full := data_full(self.settings):  # a message is written twice: its transcript and its conversation
            return notify(client, f"{full.text} Nothing was sent.")
        session = self.sessions.get(sid)
        under_way = sum(1 for line in session.lines.values() if line.role == Role.REPLY and line.live)
        if under_way >= self.settings.session_max_replies:
            return notify(client, f"{under_way} replies are on their way already (SESSION_MAX_REPLIES); "
                                  "send this once one has come, or press Stop. Nothing was sent.")
        reply_id = uuid.uuid4().hex
        status = self._submit(Chat(session=sid, id=uuid.uuid4().hex, reply=reply_id, text=text, model=session.model,
                                   prompt=self.prompt))
        user = self.sessions.add(sid, Line(reply=reply_id, role=Role.USER, text=text))
        reply = self.sessions.add(sid, Line(reply=reply_id, role=Role.REPLY, status=status, asks=reply_id))
        self.relay.append(sid, user, reply)
        notify(client, "")

    def stop(self, sid: str, client: Client, reply_id: str) -> None:
        reply = self.sessions.get(sid).reply(reply_id)
        if reply is None or not reply.live:
            return  # it ended meanwhile: nothing to stop
        asking = self.bus.asking(reply_id)
        if asking and self.bus.withdraw(asking):
            self._end(reply, Move.STOPPED, "Stopped before it was sent.")
        elif not asking and not self.bus.in_hand(reply_id):
            # No brain that could still end it (its brain is gone, or its end was lost on the way):
            # a Stop would reach no one, so it ends here, with what arrived.
            self._end(reply, Move.STOPPED, "Stopped. Its brain had already finished or gone away; what "
                                           "arrived is shown.")
        else:
            self.bus.submit(Stop(session=sid, id=uuid.uuid4().hex, reply=reply_id))

    def retry(self, sid: str, client: Client, reply_id: str) -> None:
        """Ask a failed reply again, in a new line after the last. A reply to a message repeats the
        message; a comment the brain made by itself is made again, if it is the newest reply."""
        session = self.sessions.get(sid)
        failed = session.reply(reply_id)
        if failed is None or failed.status not in RETRYABLE:
            return notify(client, "There is nothing to retry there.")
        question = session.question(failed.asks)
        if question is None and failed is not session.newest_reply():
            return notify(client, "Only the newest comment can be asked again.")
        new = uuid.uuid4().hex
        if question is not None:
            status = self._submit(Chat(session=sid, id=uuid.uuid4().hex, reply=new, text=question.text, retry=True,
                                       model=session.model, prompt=self.prompt))
        else:
            status = self._submit(Regenerate(session=sid, id=uuid.uuid4().hex, reply=new, model=session.model,
                                             prompt=self.prompt))
        self._end(failed, Move.RETRIED, failed.note)
        self.relay.append(sid, self.sessions.add(sid, Line(reply=new, role=Role.REPLY, status=status, asks=failed.asks)))

    def regenerate(self, sid: str, client: Client, reply_id: str) -> None:
        "Answer the newest reply's question again, streamed into the same line."
        session = self.sessions.get(sid)
        reply = session.reply(reply_id)
        if reply is None or reply is not session.newest_reply() or reply.status not in REGENERABLE:
            return notify(client, "Only the newest finished reply can be regenerated.")
        status = self._submit(Regenerate(session=sid, id=uuid.uuid4().hex, reply=reply_id, model=session.model,
                                         prompt=self.prompt))
        reply.move(Move.REGENERATED, "")
        if status == Status.THINKING:
            reply.move(Move.CLAIMED)  # a brain has it at once
        reply.text, reply.thinking, reply.seq = "", "", 0
        self.sessions.keep(reply)
        self.relay.show(sid, reply)

    def reset(self, sid: str, client: Client, _: str) -> None:
        "New chat: an empty transcript for every tab; late words of the old replies are ignored."
        self.bus.submit(Reset(session=sid, id=uuid.uuid4().hex))
        self.sessions.reset(sid)
        self.relay.transcript(sid, [])


class ModelControls:
    "The model picker, and pulls of a model into Ollama."

    def __init__(self, sessions: Sessions, brains: Brains, views: Views, relay: Relay, pulls: Pulls):
        self.sessions, self.brains, self.views, self.relay, self.pulls = sessions, brains, views, relay, pulls

    def choose_model(self, sid: str, client: Client, model: str) -> None:
        if not VALID_MODEL.match(model):
            return notify(client, "That is not a model name.")
        models = self.brains.models  # None until a brain has listed them: the choice is taken on trust
        self.sessions.choose(sid, model)
        self.relay.fragments(sid, self.views.model_chosen(sid))
        missing = models is not None and full_name(model) not in models
        notify(client, f"The model '{model}' is not pulled. Run `ollama pull {model}`, or press Pull."
               if missing else "")

    def pull(self, sid: str, client: Client, model: str) -> None:
        "Pull a model into Ollama from the page; every tab of the session (and of any that joins) sees it go."
        if not VALID_MODEL.match(model):
            return notify(client, "That is not a model name.")
        models = self.brains.models
        if models is not None and full_name(model) in models:
            return notify(client, f"The model '{model}' is pulled already.")
        self._show(self.pulls.start(sid, model))
        notify(client, "")

    def cancel_pull(self, sid: str, client: Client, pull: str) -> None:
        self._show(self.pulls.cancel(sid, pull))

    def _show(self, sessions: set[str]) -> None:
        "The pull panel of each session whose pulls changed."
        for session in sessions:
            self.relay.fragments(session, to_xml(self.views.pull_panel(session)))


class Commands:
    def __init__(self, chat: ChatControls, models: ModelControls, tools: ToolCalls, events: AppEvents):
        self.events = events
        self.handlers = {
            Control.MSG: chat.chat, Control.STOP: chat.stop, Control.RETRY: chat.retry,
            Control.REGENERATE: chat.regenerate, Control.RESET: chat.reset, Control.MODEL: models.choose_model,
            Control.UNDO: tools.undo, Control.PULL: models.pull, Control.CANCEL_PULL: models.cancel_pull}

    def do(self, sid: str, client: Client, frame: Frame) -> None:
        match frame:
            case Command(control, value):
                try:
                    self.handlers[control](sid, client, value)
                except NotSent as e:
                    notify(client, f"Not sent: {e}.")
            case Used(fields):
                self.events.tell(sid, [ws_heard(fields)])
