"""Every message on the bus: its kind, fields, topic, encoding and validation.

A frame is two ZeroMQ parts: `[topic, json]`. The topic is derived from the message, so it can
never disagree with the payload:

- `brain.<worker>.<kind>`: the web addresses one brain worker (events, chat turns, and its verdict
  on each of the worker's claims). Each worker subscribes only to its own prefix.
- `web.<kind>`: everything a brain says (presence, acks, reply chunks, results).

Payloads are JSON objects with `v` (schema version) and `kind`. Decoding validates every field;
ids are restricted to a safe alphabet because the web puts them into HTML ids. Nothing on the bus
is ever unpickled.

docs/protocol.md is the protocol's specification: it has one table per kind (its heading names the
tag) and per structure used in a field, listing every field with its type and default. A field
added, removed or changed here needs its row there: tests/shared/test_protocol_spec.py compares
the two and names what differs.
"""
import hashlib
from enum import StrEnum
from typing import Annotated, Any, Union

import msgspec

SCHEMA_VERSION = 2
Id = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}\Z")]  # \Z: "$" lets a newline end it
MaybeId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{0,64}\Z")]  # "" for none
Seq = Annotated[int, msgspec.Meta(ge=0)]
Epoch = Annotated[int, msgspec.Meta(ge=0)]
Bytes = Annotated[int, msgspec.Meta(ge=0)]
Count = Annotated[int, msgspec.Meta(ge=0)]
MODEL_NAME = r"^[A-Za-z0-9_.:/-]{1,200}\Z"  # the characters of Ollama's model names (host/namespace/model:tag)
ModelName = Annotated[str, msgspec.Meta(pattern=MODEL_NAME)]


class FailCode(StrEnum):
    "Why a reply ended early: stable for programs (Failed.code); the message beside it is for people."
    STOPPED = "stopped"  # the user pressed Stop
    BUSY = "busy"  # the session has SESSION_MAX_PENDING jobs queued
    DUPLICATE = "duplicate"  # acted on already, before a restart
    NOT_RESUMED = "not_resumed"  # cut off with its brain, and the next one could not carry it on
    INTERNAL = "internal"
    OLLAMA_ERROR = "ollama_error"
    OLLAMA_DOWN = "ollama_down"
    MODEL_MISSING = "model_missing"
    OLLAMA_TIMEOUT = "ollama_timeout"
    OLLAMA_FAILED = "ollama_failed"
    NO_TOOLS = "no_tools"
    NO_SUCH_MODEL = "no_such_model"
    NO_NETWORK = "no_network"
    DISK_FULL = "disk_full"
    UNSENDABLE = "unsendable"  # the request to Ollama could not be written as JSON (NaN in a call's arguments, say)


class Reach(StrEnum):
    "What a brain knows of its Ollama."
    CHECKING = "checking"  # not checked yet
    DOWN = "down"
    UP = "up"


class PullOutcome(StrEnum):
    RUNNING = ""
    PULLED = "pulled"
    CANCELLED = "cancelled"
    FAILED = "failed"


class BadFrame(ValueError):
    "A frame that is not a valid message of this schema version; the text says why."


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    """Every message: its kind is the class's tag (the JSON `kind`), `v` the schema version, and
    `worker` the addressee of a message for a brain or the sender of one for the web. Only the
    classes given a `tag=` are kinds; the others (ToBrain, ToWeb, Verdict, Presence, About, ...)
    are families that share fields (docs/protocol.md §4)."""
    worker: Id
    v: int = SCHEMA_VERSION

    @property
    def kind(self) -> str:
        return self.__struct_config__.tag

    @property
    def topic(self) -> str:
        raise NotImplementedError


UNROUTED = "-"


class Prompt(msgspec.Struct, frozen=True):
    """What the app tells the model in every request: the system message and the tools it may call
    (Ollama's tool definitions). The web sends the same bytes each time, so the prompt cache holds."""
    system: str
    tools: list[dict[str, Any]] = []


class ToBrain(Message, frozen=True, kw_only=True):
    """Sent by the web to one brain worker; `id` is the message's own (claims, the outbox and the
    brain's duplicate filter go by it). The web's broker fills in `worker` and `epoch` when it
    routes the message: `epoch` numbers the session's assignment to that worker and changes
    whenever the session moves to another. The worker claims each message with `Ack` and acts on
    it only once the web answers `Grant` (a Chat or a Resume may start on trust before it, saving
    nothing and ending no round until the grant); `Revoke` means it is not (or no longer) the
    worker's."""
    worker: Id = UNROUTED
    session: Id
    id: Id
    epoch: Epoch = 0

    @property
    def topic(self) -> str:
        return f"{brain_topic(self.worker)}{self.kind}"

    @property
    def makes(self) -> str:
        "The reply this message has the brain make (ended by its Done or Failed), or \"\"."
        return ""


class ToWeb(Message, frozen=True, kw_only=True):
    "Sent by a brain worker to the web."

    @property
    def topic(self) -> str:
        return f"web.{self.kind}"


class Verdict(Message, frozen=True, kw_only=True):
    """The web's answer to a worker's claim on `message` of `session` ("" when it is about the session
    as a whole: the worker spoke of a session it no longer holds)."""
    session: Id
    message: MaybeId
    epoch: Epoch

    @property
    def topic(self) -> str:
        return f"{brain_topic(self.worker)}{self.kind}"


class Grant(Verdict, frozen=True, kw_only=True, tag="grant"):
    "The message is the worker's, at `epoch`: act on it (once)."


class Credit(Message, frozen=True, kw_only=True, tag="credit"):
    """Flow control: the web has taken `seen` of the messages the worker has sent since it started
    (counted as the worker counts them in `Presence.sent`). While BUS_WINDOW or more of its
    messages are ahead of it, a worker sends no chunk: each reply holds its words until credit
    comes (brain/outlet.py); every other kind goes at once."""
    seen: Count

    @property
    def topic(self) -> str:
        return f"{brain_topic(self.worker)}{self.kind}"


class Revoke(Verdict, frozen=True, kw_only=True, tag="revoke"):
    """The message is not the worker's: drop it. `epoch` is the session's assignment now (0 when it
    has none); a worker that holds the session at another epoch has lost it: it stops what it does
    for the session and never saves it again."""


class Chat(ToBrain, frozen=True, kw_only=True, tag="chat"):
    """The user typed `text` in the chat: answer it as reply `reply`. `retry` re-asks a turn whose
    reply failed; `model` is the session's choice ("" for the brain's default)."""
    reply: Id
    text: str
    prompt: Prompt
    retry: bool = False
    model: str = ""

    @property
    def makes(self) -> str:
        return self.reply


class Stop(ToBrain, frozen=True, kw_only=True, tag="stop"):
    "The user pressed Stop: end reply `reply` now and keep what it said so far."
    reply: Id


class Regenerate(ToBrain, frozen=True, kw_only=True, tag="regenerate"):
    """Answer the last user turn again: `reply` (the newest reply) is dropped and streamed anew,
    with `model` (the session's choice; "" for the brain's default)."""
    reply: Id
    prompt: Prompt
    model: str = ""

    @property
    def makes(self) -> str:
        return self.reply


class Answered(msgspec.Struct, frozen=True, kw_only=True):
    """A tool call of a cut-off reply that the web answered (applied, or refused): call `call` of the
    tool `name` with `arguments`, as the brain sent it in `CallTool` (`at`, `index`), and `ok` and
    `text`, the action's own result (without the app's state)."""
    call: Id
    name: str
    arguments: dict[str, Any]
    ok: bool
    text: str
    at: Count = 0
    index: Count = 0


class Resume(ToBrain, frozen=True, kw_only=True, tag="resume"):
    """Carry on reply `reply`, cut off when its brain stopped (the user did not stop it): `text` and
    `thinking` are what reached the web, so the continuation starts right after them; `seq` is the
    next chunk number; `question` is the user text it answers ("" for a comment); `model` the
    session's choice. `calls` are the reply's tool calls the web answered, in order: the brain puts
    those its saved conversation lacks back in their place, so none is asked for or applied again."""
    reply: Id
    text: str
    prompt: Prompt
    thinking: str = ""
    seq: Seq = 0
    question: str = ""
    model: str = ""
    calls: list[Answered] = []

    @property
    def makes(self) -> str:
        return self.reply


class Reset(ToBrain, frozen=True, kw_only=True, tag="reset"):
    "New chat: forget the session's turns (the app's state stays) and drop its pending replies."


class AppEvent(ToBrain, frozen=True, kw_only=True, tag="app_event"):
    """Something the user did in the app, in the app's words: `lines` say what happened (\"added #3
    'milk'\"), `state` is the app's state after it as the model is told it (\"\" when it did not
    change). `since` is the `digest` of the state the web last sent this session's brain (\"\" when it
    does not know), so a brain whose state differs knows an event was lost on the way and states
    the whole state. With `comment` the model comments once the user pauses (a burst makes one
    comment); without, it hears of it with the next turn."""
    lines: list[str]
    prompt: Prompt
    state: str = ""
    since: str = ""
    comment: bool = False


def digest(state: str) -> str:
    "A short fingerprint of an app's state, to tell whether two sides hold the same one."
    return hashlib.blake2b(state.encode(), digest_size=8).hexdigest()


class ToolResult(ToBrain, frozen=True, kw_only=True, tag="tool_result"):
    """What came of the model's tool call `call` in reply `reply`: `ok`, what the model is told (what
    was done, or why not), the app's state on one line (`brief`, told after it), and the app's whole
    state after it."""
    reply: Id
    call: Id
    ok: bool
    text: str
    state: str = ""
    brief: str = ""


class Pull(ToBrain, frozen=True, kw_only=True, tag="pull"):
    """Pull `model` into Ollama (a user asked, from the page); the worker answers with PullProgress
    about this pull (its `id`) until the pull ends."""
    model: ModelName


class CancelPull(ToBrain, frozen=True, kw_only=True, tag="cancel_pull"):
    "End the pull that Pull `pull` started, now; what Ollama has downloaded so far stays for next time."
    pull: Id


def full_name(model: str) -> str:
    "Ollama's own rule: a model named without a tag means its :latest (as `models` lists it)."
    return model if ":" in model else f"{model}:latest"


class Presence(ToWeb, frozen=True, kw_only=True):
    """A worker and what it knows of its Ollama: `ollama` is "checking" until the first check,
    then "up" or "down"; `models` is None until Ollama has listed them."""
    started: float
    pid: int
    model: str
    parallel: int
    busy: int = 0  # replies being made
    ollama: Reach = Reach.CHECKING
    ollama_url: str = ""
    version: str = ""
    loading: str = ""  # the model being loaded into Ollama, while it is
    models: list[str] | None = None
    sent: Count = 0  # messages it sent before this one, so the web can count them right (Credit) despite losses
    making: list[Id] = []  # the replies it has claimed, queued or is streaming, so a lost final shows
    pulling: list[Id] = []  # the pulls it has claimed or runs, so a pull whose end was lost shows


class Hello(Presence, frozen=True, kw_only=True, tag="hello"):
    "A worker has started and is subscribed to its own topic."


class Heartbeat(Presence, frozen=True, kw_only=True, tag="heartbeat"):
    "A worker is alive (sent every BUS_HEARTBEAT_S)."


class Bye(ToWeb, frozen=True, kw_only=True, tag="bye"):
    "A worker is shutting down cleanly."


class About(ToWeb, frozen=True, kw_only=True):
    """A brain's word on something of one session, under the session's assignment `epoch`; the
    web ignores it unless the worker holds the session at that epoch."""
    session: Id
    epoch: Epoch = 0


class Ack(About, frozen=True, kw_only=True, tag="ack"):
    """A worker claims `message` (sent to it at `epoch`); it waits for the web's Grant or Revoke.
    `reply` is the reply the message has it make ("" for none), so the web shows it is taken."""
    message: Id
    reply: MaybeId = ""


class AboutReply(About, frozen=True, kw_only=True):
    "About reply `reply`."
    reply: Id


class ReplyPart(AboutReply, frozen=True, kw_only=True):
    "A piece of a reply; `seq` counts the reply's chunk messages from 0, so a gap can be seen."
    seq: Seq


class Note(AboutReply, frozen=True, kw_only=True, tag="note"):
    "Something the user should know about their conversation, e.g. that old turns were set aside."
    text: str


class Waiting(AboutReply, frozen=True, kw_only=True, tag="waiting"):
    "A reply waits for Ollama, which cannot be reached; it starts as soon as Ollama is back."
    reason: str


class CallTool(AboutReply, frozen=True, kw_only=True, tag="tool_call"):
    """The model calls the app's tool `name` while making the reply; the web applies it at most once
    (by `call`, which the brain makes, never the model) and answers with ToolResult. `at` is where in
    the reply's text the call came (the length of what the reply had said), `index` its place in its
    round: what a `Resume` needs to put the call back where it was. A `decided` call is the brain's
    decision on what the user asked (MODEL_TOOL_MODE=decide), not a call the model made while
    replying: one the app refuses changed nothing and is not shown."""
    call: Id
    name: str
    arguments: dict[str, Any]
    at: Count = 0
    index: Count = 0
    decided: bool = False


class Stats(msgspec.Struct, frozen=True, omit_defaults=True):
    """Ollama's final-line stats; every field may be missing, and one that is None is left out of
    the payload. Durations are nanoseconds."""
    done_reason: str | None = None
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class Chunk(ReplyPart, frozen=True, kw_only=True, tag="chunk"):
    """The next piece of a streaming reply; `thinking` is what a thinking model reasons before (or
    beside) its answer."""
    text: str
    thinking: str = ""


class Done(ReplyPart, frozen=True, kw_only=True, tag="done"):
    "A reply is complete; `text` is the whole reply, so a receiver that missed chunks can repair."
    text: str
    thinking: str = ""
    stats: Stats = Stats()


class Failed(ReplyPart, frozen=True, kw_only=True, tag="failed"):
    "A reply ended early: `code` says why (STOPPED when the user asked), `error` is for people, `text` is what arrived."
    code: FailCode
    error: str
    text: str = ""


class PullProgress(About, frozen=True, kw_only=True, tag="pull_progress"):
    """How pull `pull` of `model` goes: `status` is Ollama's word for the step ("pulling manifest",
    "pulling 8d32a80bb199", "verifying sha256 digest", ...), `digest` the layer being fetched, and
    `completed` of `total` the bytes of the layers seen so far. `outcome` is RUNNING ("") while it
    runs, then how it ended (`error` says why it failed, in one line)."""
    pull: Id
    model: ModelName
    status: str = ""
    digest: str = ""
    completed: Bytes = 0
    total: Bytes = 0
    outcome: PullOutcome = PullOutcome.RUNNING
    error: str = ""


KINDS = (Chat, Stop, Regenerate, Resume, Reset, AppEvent, ToolResult, Pull, CancelPull, Grant, Revoke, Credit, Hello,
         Heartbeat, Bye, Ack, Note, Waiting, CallTool, Chunk, Done, Failed, PullProgress)
AnyMessage = Union[KINDS]  # type: ignore[valid-type]


class _Envelope(msgspec.Struct):
    v: int = 0
    kind: str = ""


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyMessage)
_envelope = msgspec.json.Decoder(_Envelope)


def brain_topic(worker: str) -> str:
    "The prefix a brain worker subscribes to."
    return f"brain.{worker}."


def encode(msg: Message) -> list[bytes]:
    return [msg.topic.encode(), _encoder.encode(msg)]


def encode_valid(msg: Message, max_bytes: int) -> list[bytes]:
    """Frames for `msg` that the receiver will take, or BadFrame with the reason: a message that
    cannot be encoded (a lone surrogate), that is bigger than a frame, or that the receiver's
    schema refuses (an int where a bool belongs). So a sender refuses a poison message itself,
    instead of passing on what would be refused, or crash, on the other side."""
    try:
        frames = encode(msg)
    except (UnicodeEncodeError, TypeError, OverflowError, ValueError) as e:
        raise BadFrame(f"a {msg.kind} message cannot be encoded: {e}") from None
    decode(frames, max_bytes)
    return frames


def decode(frames: list[bytes], max_bytes: int = 1 << 20) -> Message:
    "Turn received frames into a message, or raise BadFrame with a reason fit for a log line."
    if len(frames) != 2:
        raise BadFrame(f"expected 2 frames (topic, json), got {len(frames)}")
    topic, payload = frames
    if len(payload) > max_bytes:
        raise BadFrame(f"payload of {len(payload)} bytes exceeds {max_bytes}")
    try:
        msg = _decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as e:
        raise BadFrame(_why(payload, e)) from None
    if msg.v != SCHEMA_VERSION:
        raise BadFrame(f"unsupported schema version {msg.v} (this side speaks {SCHEMA_VERSION})")
    if topic != msg.topic.encode():
        raise BadFrame(f"topic {topic[:80]!r} does not match a {msg.kind} message ({msg.topic})")
    return msg


def _why(payload: bytes, error: Exception) -> str:
    "Name the version or kind problem when there is one, since that is what an operator must fix."
    try:
        env = _envelope.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return f"not a message: {error}"
    if env.v != SCHEMA_VERSION:
        return f"unsupported schema version {env.v} (this side speaks {SCHEMA_VERSION})"
    if env.kind not in {k.__struct_config__.tag for k in KINDS}:
        return f"unknown message kind {env.kind[:40]!r}"
    return f"invalid {env.kind} message: {error}"
