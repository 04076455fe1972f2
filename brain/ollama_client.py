"""The one boundary between the brain and Ollama's HTTP API (`POST /api/chat` and `POST /api/pull`,
streaming NDJSON).

Everything Ollama can do wrong is turned into an `OllamaError` whose text a person can act on;
nothing above this module sees `requests` or the wire format. A request that got no byte of an
answer is a `NoAnswer`: one request's failure, which says nothing certain of Ollama (only a health
check does, brain/ollama_watch.py).
"""
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import msgspec
import requests
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ProtocolError, ReadTimeoutError

from shared.messages import FailCode, Stats


class OllamaError(Exception):
    "Base class; `code` is stable for programs, the message is for people."
    code = FailCode.OLLAMA_ERROR


class NoAnswer(OllamaError):
    """Not a byte of an answer came: the connection closed before one (or, `OllamaUnavailable`,
    could not be made). The request may be asked again; whether Ollama is down, only a health
    check says."""
    code = FailCode.OLLAMA_FAILED


class OllamaUnavailable(NoAnswer):
    "Ollama could not be connected to."
    code = FailCode.OLLAMA_DOWN


class Unsendable(OllamaError):
    "The request cannot be written as JSON (NaN or Infinity, say): it is never sent, and asking again cannot help."
    code = FailCode.UNSENDABLE


class ModelNotFound(OllamaError):
    code = FailCode.MODEL_MISSING


class OllamaTimeout(OllamaError):
    code = FailCode.OLLAMA_TIMEOUT


class OllamaFailed(OllamaError):
    code = FailCode.OLLAMA_FAILED


class ToolsUnsupported(OllamaError):
    "The model cannot call tools (Ollama answers 400 '... does not support tools')."
    code = FailCode.NO_TOOLS


class NoSuchModel(OllamaError):
    "A pull of a name the registry does not have (or that is not a model name)."
    code = FailCode.NO_SUCH_MODEL


class RegistryUnreachable(OllamaError):
    "Ollama runs, but cannot reach the model registry to pull from it."
    code = FailCode.NO_NETWORK


class DiskFull(OllamaError):
    code = FailCode.DISK_FULL


class HungUp(OllamaError):
    "We ended the request ourselves (see `Hangup`)."
    code = FailCode.STOPPED


@dataclass(frozen=True)
class Delta:
    "A piece of the reply as it streams; thinking models send `thinking` with empty `content`."
    content: str = ""
    thinking: str = ""


class ToolCall(msgspec.Struct, frozen=True):
    """One function the model asks to call. Ollama sends every call of a message whole, in one
    chunk; `id` may be missing on older servers (the brain then makes one)."""
    name: str
    arguments: dict
    id: str = ""


class _Function(msgspec.Struct):
    name: str = ""
    arguments: dict | str = {}


class _Call(msgspec.Struct):
    function: _Function
    id: str = ""


class _Message(msgspec.Struct):
    content: str = ""
    thinking: str = ""
    tool_calls: list[_Call] = []


class _Line(Stats, frozen=True):
    "One NDJSON line; the stats fields are filled only on the done line."
    message: _Message | None = None
    done: bool = False
    error: str | None = None


_line = msgspec.json.Decoder(_Line)


@dataclass(frozen=True)
class PullStatus:
    """One line of a pull's progress: Ollama's `status`, and while a layer downloads its `digest`
    with `completed` of `total` bytes (Ollama omits them when 0)."""
    status: str
    digest: str = ""
    completed: int = 0
    total: int = 0


class _PullLine(msgspec.Struct):
    status: str = ""
    digest: str = ""
    total: int = 0
    completed: int = 0
    error: str | None = None


_pull_line = msgspec.json.Decoder(_PullLine)
# What Ollama says when it cannot reach the registry (Go's net errors, wrapped in its own text).
_OFFLINE = ("dial tcp", "no such host", "i/o timeout", "network is unreachable", "connection refused",
            "connection reset", "tls handshake", "context deadline exceeded", "server misbehaving")


class Hangup:
    """Lets another thread end a request at once, even one still waiting for Ollama's first byte
    (a cold model load can take minutes): `fire()` shuts the request's socket down, which wakes the
    blocked read and tells Ollama the client has gone, so it stops."""

    def __init__(self):
        self._lock = threading.Lock()
        self._fired = threading.Event()
        self._conn: HTTPConnection | None = None

    @property
    def fired(self) -> bool:
        return self._fired.is_set()

    def fire(self) -> None:
        with self._lock:
            self._fired.set()
            self._shut()

    def _attach(self, conn: HTTPConnection) -> None:
        with self._lock:
            self._conn = conn
            self._shut()

    def _detach(self) -> None:
        with self._lock:
            self._conn = None

    def _shut(self) -> None:
        if self._fired.is_set() and self._conn is not None and self._conn.sock is not None:
            try:
                self._conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed


_calling = threading.local()  # the Hangup of the request this thread is making, if any


class _Hangable:
    "A urllib3 connection that registers with the calling thread's Hangup, once connected too."

    def connect(self):
        super().connect()
        self._register()

    def request(self, *args, **kwargs):
        self._register()
        return super().request(*args, **kwargs)

    def _register(self):
        hangup = getattr(_calling, "hangup", None)
        if hangup is not None:
            hangup._attach(self)


class _HangableHTTP(_Hangable, HTTPConnection):
    pass


class _HangableHTTPS(_Hangable, HTTPSConnection):
    pass


class _Pool(HTTPConnectionPool):
    ConnectionCls = _HangableHTTP


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HangableHTTPS


class OllamaClient:
    def __init__(self, base_url: str, connect_timeout: float = 3.0, read_timeout: float = 120.0,
                 parallel: int = 4):
        self.base_url = base_url.rstrip("/")
        # The read timeout is the longest silence allowed: it must cover a cold model load
        # before the first line as well as a stall between lines.
        self.timeout = (connect_timeout, read_timeout)
        self.http = requests.Session()
        # One kept-alive connection per stream that may run at once (and one for status checks),
        # so none is opened per reply.
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=parallel + 1)
        adapter.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _HTTPSPool}
        self.http.mount(self.base_url, adapter)

    def version(self) -> str:
        "Ollama's version; raises OllamaUnavailable when it does not answer."
        try:
            response = self.http.get(f"{self.base_url}/api/version", timeout=self.timeout)
            response.raise_for_status()
            return str(response.json().get("version", "?"))
        except (requests.exceptions.RequestException, ValueError):
            raise OllamaUnavailable(f"Can't reach Ollama at {self.base_url}. Is it running? "
                                    "Start it with `ollama serve`.") from None

    def models(self) -> list[str]:
        "The models Ollama has pulled (`/api/tags`)."
        try:
            response = self.http.get(f"{self.base_url}/api/tags", timeout=self.timeout)
            response.raise_for_status()
            return sorted(m["name"] for m in response.json().get("models", []))
        except (requests.exceptions.RequestException, ValueError, KeyError, TypeError):
            raise OllamaUnavailable(f"Can't list the models of Ollama at {self.base_url}.") from None

    def show(self, model: str) -> dict:
        "What Ollama says of a model (`/api/show`: its details, size, capabilities); OllamaError when it cannot say."
        response = self._post("/api/show", _encoded({"model": model}), None)
        try:
            if response.status_code != 200:
                raise _status_error(response, model)
            return response.json()
        except (requests.exceptions.RequestException, ValueError):
            raise OllamaFailed(f"Ollama did not say what '{model}' is (/api/show).") from None
        finally:
            response.close()

    def load(self, model: str, *, options: dict | None = None, keep_alive: str | None = None) -> None:
        """Load the model into memory now (an empty chat), so the first reply does not wait for it.
        Pass the options the chats will use: another `num_ctx` would make Ollama load it again."""
        for _ in self.chat(model, [], options=options, keep_alive=keep_alive):
            pass

    def chat(self, model: str, messages: list[dict], *, options: dict | None = None, tools: list[dict] | None = None,
             keep_alive: str | None = None, hangup: Hangup | None = None,
             format: dict | str | None = None) -> Iterator[Delta | list[ToolCall] | Stats]:
        """Stream a reply: yields `Delta`s (and a list of `ToolCall`s when the model calls tools),
        then one `Stats` when Ollama says done. `format` ("json" or a JSON schema) holds the text to it.

        Closing the generator closes the HTTP connection, which is how Ollama is told to stop;
        `hangup.fire()` does the same from another thread, even before the first byte.
        """
        body = {"model": model, "messages": messages, "stream": True}
        if tools:
            body["tools"] = tools
        if format:
            body["format"] = format
        if options:
            body["options"] = options
        if keep_alive:
            body["keep_alive"] = keep_alive
        yield from self._request("/api/chat", body, hangup, lambda response: self._reply(response, model))

    def pull(self, model: str, *, hangup: Hangup | None = None) -> Iterator[PullStatus]:
        """Pull a model into Ollama (`POST /api/pull`): yields each progress line until Ollama says
        "success"; raises an OllamaError saying what to do otherwise. Closing the generator, or
        `hangup.fire()`, ends the request, which makes Ollama stop the pull (it keeps what it has
        downloaded, so a pull started again resumes)."""
        yield from self._request("/api/pull", {"model": model, "stream": True}, hangup,
                                 lambda response: self._pull_lines(response, model, hangup))

    def _request(self, path: str, body: dict, hangup: Hangup | None, read: Callable[[requests.Response], Iterator]):
        "Send a streaming request and yield what `read` makes of the response."
        data = _encoded(body)
        _calling.hangup = hangup
        try:
            response = self._post(path, data, hangup)
            try:
                yield from read(response)
            finally:
                response.close()
        finally:
            if hangup is not None:
                hangup._detach()  # the connection goes back to the pool, for another request

    def _post(self, path: str, data: bytes, hangup: Hangup | None) -> requests.Response:
        try:
            return self.http.post(f"{self.base_url}{path}", data=data, headers=_JSON, stream=True, timeout=self.timeout)
        except requests.exceptions.ConnectTimeout:
            raise OllamaUnavailable(f"Ollama at {self.base_url} did not accept a connection within "
                                    f"{self.timeout[0]:g}s. Is it running? Start it with `ollama serve`.") from None
        except requests.exceptions.ReadTimeout:
            raise OllamaTimeout(f"Ollama did not start answering within {self.timeout[1]:g}s "
                                "(OLLAMA_READ_TIMEOUT_S).") from None
        except requests.exceptions.RequestException as e:
            if hangup is not None and hangup.fired:
                raise HungUp("The request was ended before Ollama answered.") from None
            if e.args and isinstance(e.args[0], ProtocolError):  # connected, then closed (or reset) before a byte
                raise NoAnswer(f"Ollama at {self.base_url} closed the connection before answering.") from None
            raise OllamaUnavailable(f"Can't reach Ollama at {self.base_url}. Is it running? "
                                    "Start it with `ollama serve`.") from None
        finally:
            _calling.hangup = None

    def _reply(self, response: requests.Response, model: str) -> Iterator[Delta | list[ToolCall] | Stats]:
        if response.status_code != 200:
            raise _status_error(response, model)
        try:
            for line in _ndjson(response, _line, "a chat chunk"):
                if line.error is not None:
                    raise OllamaFailed(f"Ollama reported an error mid-reply: {line.error}")
                if line.message and (line.message.content or line.message.thinking):
                    yield Delta(line.message.content, line.message.thinking)
                if line.message and line.message.tool_calls:
                    yield [ToolCall(c.function.name, call_arguments(c.function.arguments), c.id)
                           for c in line.message.tool_calls]
                if line.done:
                    yield Stats(**{f: getattr(line, f) for f in Stats.__struct_fields__})
                    # Read on to the end of the body, so the connection goes back to the pool
                    # instead of being closed (Ollama sends nothing after the done line).
                    for _ in response.iter_content(1024):
                        pass
                    return
        except requests.exceptions.RequestException as e:
            if _is_read_timeout(e):
                raise OllamaTimeout(f"Ollama stalled mid-reply: nothing for {self.timeout[1]:g}s "
                                    "(OLLAMA_READ_TIMEOUT_S).") from None
            raise OllamaFailed("The connection to Ollama broke mid-reply.") from None
        raise OllamaFailed("Ollama ended the reply without finishing it (no done line).")

    def _pull_lines(self, response: requests.Response, model: str, hangup: Hangup | None) -> Iterator[PullStatus]:
        if response.status_code != 200:
            raise _pull_error(model, _detail(response))
        try:
            for line in _ndjson(response, _pull_line, "pull progress"):
                if line.error is not None:
                    raise _pull_error(model, line.error)
                if line.status == "success":
                    for _ in response.iter_content(1024):
                        pass  # to the end of the body, so the connection goes back to the pool
                    return
                yield PullStatus(_one_line(line.status, 200), _one_line(line.digest, 80), max(line.completed, 0),
                                 max(line.total, 0))
        except requests.exceptions.RequestException as e:
            if hangup is not None and hangup.fired:
                raise HungUp(f"The pull of '{model}' was cancelled.") from None
            if _is_read_timeout(e):
                raise OllamaTimeout(f"Ollama went silent while pulling '{model}': nothing for {self.timeout[1]:g}s "
                                    "(OLLAMA_READ_TIMEOUT_S). Pull again to resume.") from None
            raise OllamaFailed(f"The connection to Ollama broke while pulling '{model}'. Pull again to resume.") from None
        raise OllamaFailed(f"Ollama ended the pull of '{model}' without saying it succeeded. Pull again to resume.")


_JSON = {"Content-Type": "application/json"}


def _encoded(body: dict) -> bytes:
    """The request's body, as `requests(json=...)` would write it, or `Unsendable`: Python's json
    writes NaN and Infinity, which are not JSON (a call written as text may hold them)."""
    try:
        return json.dumps(body, allow_nan=False).encode()
    except (ValueError, TypeError, RecursionError) as e:
        raise Unsendable(f"The request to Ollama could not be written as JSON ({e}), so it was not sent; "
                         "something in this conversation (a call's arguments, say) holds a value JSON cannot.") from None


def _ndjson(response: requests.Response, decoder: msgspec.json.Decoder, what: str) -> Iterator:
    "The body's lines, decoded; a line that is not `what` ends the stream with a clear error."
    for raw in response.iter_lines():
        if not raw.strip():
            continue
        try:
            line = decoder.decode(raw)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):  # msgspec raises the last past ~1000 levels
            raise OllamaFailed(f"Ollama sent a line that is not {what}: {_one_line(repr(raw[:80]))}") from None
        yield line


def _detail(response: requests.Response) -> str:
    "The {\"error\"} text of a refusal, or what else the body or the status line says."
    try:
        return str(response.json().get("error", "")) or response.reason
    except (ValueError, AttributeError):
        return response.text[:200] or response.reason


def _one_line(text: str, limit: int = 300) -> str:
    "Untrusted text for one line of a page: whitespace collapsed, bounded."
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _pull_error(model: str, detail: str) -> OllamaError:
    "What Ollama said went wrong in a pull, as an error naming what to do."
    said = _one_line(detail)
    low = said.lower()
    if "file does not exist" in low or "manifest unknown" in low or "not found" in low:
        return NoSuchModel(f"There is no model '{model}' to pull: check the name at ollama.com/library "
                           f"(Ollama said: {said}).")
    if "invalid model name" in low:
        return NoSuchModel(f"'{model}' is not a model name Ollama accepts (Ollama said: {said}).")
    if "no space left" in low:
        return DiskFull(f"Ollama's disk is full: free some space (or `ollama rm` a model you do not use), then pull "
                        f"again (Ollama said: {said}).")
    if any(sign in low for sign in _OFFLINE):
        return RegistryUnreachable(f"Ollama cannot reach the model registry: check the network, then pull again "
                                   f"(Ollama said: {said}).")
    return OllamaFailed(f"Ollama could not pull '{model}': {said}")


def _status_error(response: requests.Response, model: str) -> OllamaError:
    detail = _detail(response)
    if response.status_code == 404:
        return ModelNotFound(f"The model '{model}' is not pulled. Run `ollama pull {model}` "
                             f"(Ollama said: {detail}).")
    if response.status_code == 400 and "does not support tools" in detail:
        return ToolsUnsupported(f"The model '{model}' cannot act on the list (it does not support tools).")
    return OllamaFailed(f"Ollama answered {response.status_code}: {detail}")


def call_arguments(raw) -> dict:
    """A call's arguments as an object: Ollama sends one, some models' templates produce a JSON
    string instead, and a call written as text may give anything (none at all: no arguments)."""
    if isinstance(raw, dict):
        return raw
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return {}
    try:
        value = msgspec.json.decode(raw) if isinstance(raw, str) else raw
    except (msgspec.DecodeError, RecursionError):  # deep nesting raises RecursionError, not DecodeError
        value = None
    return value if isinstance(value, dict) else {"_unreadable": str(raw)[:200]}


def _is_read_timeout(error: Exception) -> bool:
    # requests wraps a mid-stream urllib3 ReadTimeoutError in a ConnectionError, not a ReadTimeout.
    return isinstance(error, requests.exceptions.ReadTimeout) or any(
        isinstance(arg, ReadTimeoutError) for arg in error.args)
