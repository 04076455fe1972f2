"""What the brain says on the bus about a reply: its chunks, numbered on from `Turn.sent`, notes,
waits, tool calls, and its one end (`Done` or `Failed`). Each message names the worker, the session,
the reply and the epoch the reply is made under, which the web checks against the session's holder."""
from collections.abc import Callable

from brain.conversations import Conversations
from brain.jobs import Turn
from shared.messages import CallTool, Chunk, Done, Failed, FailCode, Message, Note, Stats, Waiting


class ReplyBus:
    def __init__(self, send: Callable[[Message], None], worker: str, conversations: Conversations):
        self.send, self.worker, self.conversations = send, worker, conversations

    def _about(self, turn: Turn) -> dict:
        return dict(worker=self.worker, session=turn.session, reply=turn.reply, epoch=turn.epoch)

    def chunk(self, turn: Turn, text: str, thinking: str) -> None:
        self.send(Chunk(**self._about(turn), seq=turn.sent, text=text, thinking=thinking))
        turn.sent += 1

    def note(self, turn: Turn, text: str) -> None:
        self.send(Note(**self._about(turn), text=text))

    def waiting(self, turn: Turn, reason: str) -> None:
        self.send(Waiting(**self._about(turn), reason=reason))

    def call_tool(self, turn: Turn, call: str, name: str, arguments: dict) -> None:
        self.send(CallTool(**self._about(turn), call=call, name=name, arguments=arguments))

    def done(self, turn: Turn, text: str, thinking: str = "", stats: Stats = Stats()) -> None:
        self.send(Done(**self._about(turn), seq=turn.sent, text=text, thinking=thinking, stats=stats))

    def failed(self, turn: Turn, code: FailCode, error: str, text: str = "") -> None:
        "A turn not run yet (the brain's own has no epoch until then) speaks for the epoch our copy holds."
        held = self.conversations.held(turn.session)
        epoch = turn.epoch if turn.epoch is not None else held.epoch if held else 0
        self.send(Failed(**self._about(turn) | {"epoch": epoch}, seq=turn.sent, code=code, error=error, text=text))
