"""The door for a tab's WebSocket frames: each is read here, once, into a typed frame. One that
cannot be handled (not text, too long, not JSON, nested too deep, a lone surrogate, not an object,
a chat control whose value is no text) is refused here with the notice for the tab, never passed
on to the bus or the store."""
from enum import StrEnum

import msgspec


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
