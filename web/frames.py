"""The door for a tab's WebSocket frames: each is read here, once, and one that cannot be handled
(not text, too long, not JSON, nested too deep, a lone surrogate, not an object) is refused here
with the reason for the tab, never passed on to the bus or the store."""
import msgspec


class Unreadable(ValueError):
    "A frame refused at the door; the text is for the user."


def read_frame(text: str | None, max_chars: int) -> dict:
    "The form fields a frame carries (htmx-ext-ws sends them as one JSON object)."
    if text is None:
        raise Unreadable("That message could not be read (it was not text).")
    if len(text) > max_chars:
        raise Unreadable(f"That message is {len(text):,} characters long; a frame may be {max_chars:,} "
                         "(WS_MAX_FRAME_CHARS).")
    try:
        # msgspec, unlike json, refuses a lone surrogate (which nothing downstream could encode).
        data = msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        raise Unreadable("That message could not be read (it is not valid JSON text).") from None
    if not isinstance(data, dict):
        raise Unreadable("That message could not be read (it holds no form fields).")
    return data
