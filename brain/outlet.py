"""The brain's one way out onto the bus, and what it says there about replies.

`Outlet` is the PUB socket, once the node has connected it. A message bigger than a frame, which the
web would drop (and, past its margin, the connection with it), is refused there, in the log, and not
counted as sent.

`Window` is credit-based flow control on the way to the web (the ZeroMQ guide's): the worker counts
the messages it sends, the web tells it how many it has taken (`Credit`), and while more than
BUS_WINDOW are on their way, a reply's new words wait and grow instead of going out as more messages.
Once the web catches up, each waiting reply sends what it holds as one chunk. Only chunks wait: a
reply's end, its tool calls, claims and heartbeats go out at once (there are a few per reply), and a
reply's held words are sent before its end (`Streams.flush(force=True)`). So no word is dropped, the
order holds, and the web's receive queue stays within the window plus a few messages per live reply,
however far the brains run ahead.

`ReplyBus` says what a reply is: its chunks, numbered on from `Turn.out.sent`, notes, waits, tool
calls, and its one end (`Done` or `Failed`). Each message names the worker, the session, the reply and
the epoch the reply is made under, which the web checks against the session's holder. Nothing said
there is bigger than a bus frame (BUS_MAX_FRAME_BYTES): a chunk too big goes as several; an end too
big carries the start of the reply's text that fits and says so (the brain's conversation keeps the
whole reply); a tool call too big is not sent, and the model is told why."""
import logging
from collections.abc import Callable

import msgspec
import zmq

from brain.jobs import Turn
from shared.config import Settings
from shared.messages import CallTool, Chunk, Done, Failed, FailCode, Message, Note, Stats, Waiting, encode

log = logging.getLogger("brain")
ENVELOPE_BYTES = 1024  # a message's fields besides its texts, with room to spare
ESCAPED = 6  # the most bytes one character takes in JSON (\u001f)
SHORTENED = ("This reply is longer than one bus message may be (BUS_MAX_FRAME_BYTES = {max_bytes:,} bytes), so only "
             "its first {shown:,} of {whole:,} characters are shown here; the model's conversation holds all of it.")


class Window:
    def __init__(self, size: int):
        self.size = size
        self.sent = 0  # messages sent since this worker started
        self.seen = 0  # of those, the web has taken this many (its last Credit)
        self.waiting: dict[int, Callable[[], None]] = {}  # by key: sends when the window opens, in order

    @property
    def open(self) -> bool:
        return self.sent - self.seen < self.size

    def counted(self) -> None:
        "One more message on its way."
        self.sent += 1

    def credit(self, seen: int) -> None:
        "The web has taken `seen` messages: what waited goes, while the window stays open."
        self.seen = max(self.seen, min(seen, self.sent))
        while self.waiting and self.open:
            send = self.waiting.pop(next(iter(self.waiting)))
            send()

    def when_open(self, key: int, send: Callable[[], None]) -> None:
        "Call `send` once the web has caught up; one call waits per key (a reply's next chunk)."
        self.waiting.setdefault(key, send)


class Outlet:
    "What the node connects as its PUB socket; `window` counts what was sent, for flow control."

    def __init__(self, settings: Settings, window: Window):
        self.max_bytes, self.window = settings.max_frame_bytes, window
        self.socket: zmq.Socket | None = None

    def send(self, msg: Message) -> None:
        frames = encode(msg)
        if len(frames[1]) > self.max_bytes:
            log.error("did not send a %s message of %d bytes: a bus frame holds at most %d (BUS_MAX_FRAME_BYTES)",
                      msg.kind, len(frames[1]), self.max_bytes)
            return
        self.socket.send_multipart(frames, copy=False)
        self.window.counted()


class ReplyBus:
    def __init__(self, outlet: Outlet, worker: str):
        self.send, self.window, self.max_bytes, self.worker = outlet.send, outlet.window, outlet.max_bytes, worker

    def held_back(self, turn: Turn, then: Callable[[], None]) -> bool:
        "While the web is a window behind, a reply's words wait: `then` is called once it has caught up."
        if self.window.open:
            return False
        self.window.when_open(id(turn), then)
        return True

    def _about(self, turn: Turn) -> dict:
        return dict(worker=self.worker, session=turn.session, reply=turn.reply, epoch=turn.epoch)

    def chunk(self, turn: Turn, text: str, thinking: str) -> None:
        last = turn.out.sent + len(text) + len(thinking)  # the highest seq a piece could have: measured with its digits
        pieces = self._pieces(lambda t, k: Chunk(**self._about(turn), seq=last, text=t, thinking=k), text, thinking)
        if len(pieces) > 1:
            log.info("reply %s: %d characters held back are more than a bus frame holds (BUS_MAX_FRAME_BYTES=%d); "
                     "sent as %d chunks", turn.reply, len(text) + len(thinking), self.max_bytes, len(pieces))
        for text_part, thinking_part in pieces:
            self.send(Chunk(**self._about(turn), seq=turn.out.sent, text=text_part, thinking=thinking_part))
            turn.out.sent += 1

    def note(self, turn: Turn, text: str) -> None:
        self.send(Note(**self._about(turn), text=text))

    def waiting(self, turn: Turn, reason: str) -> None:
        self.send(Waiting(**self._about(turn), reason=reason))

    def call_tool(self, turn: Turn, call: str, name: str, arguments: dict, at: int = 0, index: int = 0,
                  decided: bool = False) -> str:
        """Send the call to the web; "" when it went, else (it is too big for a frame, or cannot be
        written as JSON) what the model is told instead, and nothing is sent."""
        msg = CallTool(**self._about(turn), call=call, name=name, arguments=arguments, at=at, index=index, decided=decided)
        size = self._size(msg)
        if size is not None and size <= self.max_bytes:
            self.send(msg)
            return ""
        why = ("the call's arguments hold a value that JSON cannot carry" if size is None else
               f"the call's arguments are too large to send to the app ({size:,} bytes; a bus message holds at most "
               f"{self.max_bytes:,}, BUS_MAX_FRAME_BYTES)")
        log.warning("reply %s: the model's call %s of %s was not sent: %s", turn.reply, call, name, why)
        return f"Error: {why}, so it was not done." + (" Make the change in smaller steps." if size else "")

    def done(self, turn: Turn, text: str, thinking: str = "", stats: Stats = Stats()) -> None:
        def end(shown: str, thought: str = "") -> Done:
            return Done(**self._about(turn), seq=turn.out.sent, text=shown, thinking=thought, stats=stats)

        if self._fits(end(text, thinking)):
            return self.send(end(text, thinking))
        # Without its thinking, the web keeps the thinking the chunks brought; the text is what must arrive.
        msg, shown = self._cut(end, text)
        if shown < len(text):
            self.note(turn, self._shortened(turn, shown, len(text)))
        self.send(msg)

    def failed(self, turn: Turn, code: FailCode, error: str, text: str = "") -> None:
        "The turn's epoch must be known (the engine gives a turn not run yet the one its copy holds)."
        about = self._about(turn)

        def end(shown: str, why: str = error) -> Failed:
            return Failed(**about, seq=turn.out.sent, code=code, error=why, text=shown)

        if self._fits(end(text)):
            return self.send(end(text))
        # Cut to fit beside the longest the error can become (its numbers at their widest), then told exactly.
        widest = f"{error} {SHORTENED.format(max_bytes=self.max_bytes, shown=len(text), whole=len(text))}"
        shown = self._cut(lambda part: end(part, widest), text)[1]
        self.send(end(text[:shown], f"{error} {self._shortened(turn, shown, len(text))}"))

    def _shortened(self, turn: Turn, shown: int, whole: int) -> str:
        "What the chat is told of a reply whose end carries only its first `shown` characters; the log is told too."
        log.warning("reply %s: its %d characters are more than a bus frame holds (BUS_MAX_FRAME_BYTES=%d); its end "
                    "carries the first %d", turn.reply, whole, self.max_bytes, shown)
        return SHORTENED.format(max_bytes=self.max_bytes, shown=shown, whole=whole)

    def _pieces(self, make: Callable[[str, str], Chunk], text: str, thinking: str) -> list[tuple[str, str]]:
        "The chunk's text and thinking in pieces that fit a frame each (as `make` makes them), halved until they do."
        if len(text) + len(thinking) <= 1 or self._fits(make(text, thinking)):
            return [(text, thinking)]
        t, k = len(text) // 2, len(thinking) // 2
        halves = (*self._pieces(make, text[:t], thinking[:k]), *self._pieces(make, text[t:], thinking[k:]))
        return [piece for piece in halves if any(piece)]

    def _cut(self, make: Callable[[str], Message], text: str) -> tuple[Message, int]:
        "The message `make` gives with the longest start of `text` that fits a frame, and that start's length."
        if self._fits(make(text)):
            return make(text), len(text)
        low, high = 0, len(text)
        while low < high:
            mid = (low + high + 1) // 2
            if self._fits(make(text[:mid])):
                low = mid
            else:
                high = mid - 1
        return make(text[:low]), low

    def _fits(self, msg: Message) -> bool:
        texts = sum(len(getattr(msg, f)) for f in ("text", "thinking", "error") if isinstance(getattr(msg, f, None), str))
        if ESCAPED * texts + ENVELOPE_BYTES <= self.max_bytes:
            return True  # however its characters are escaped: not worth encoding it twice
        size = self._size(msg)
        return size is not None and size <= self.max_bytes

    @staticmethod
    def _size(msg: Message) -> int | None:
        "The bytes of `msg`'s payload, or None when it cannot be encoded."
        try:
            return len(encode(msg)[1])
        except (UnicodeEncodeError, TypeError, OverflowError, ValueError, msgspec.EncodeError):
            return None
