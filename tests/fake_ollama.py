"""A fake Ollama HTTP server that speaks Ollama's documented wire format and misbehaves on demand.

- `POST /api/chat` streams `application/x-ndjson` with chunked transfer encoding, one JSON object
  per line; the last line has `"done": true`, `done_reason` and the stats (each may be omitted).
- No status line or header is sent before the first chunk is ready (a model load delays both).
- An unknown model gets 404 `{"error": "model 'NAME' not found"}`; other error statuses carry
  `{"error": ...}` too.
- A mid-stream failure is a `{"error": ...}` line with no done line after it.
- `options.num_predict` bounds the reply: past that many tokens it ends with `done_reason: "length"`.
- `messages: []` only loads the model: a single done line with `done_reason: "load"`.
- A final assistant message is continued, not answered (a prefill; its reply holds only the new
  text, as Ollama's does): the rest of the reply this fake generated that it begins; a reply the
  fake generated whole is ended at once, as a model's most likely next token after its own finished
  answer is its end of turn; any other text gets new words after it.
- `GET /` says "Ollama is running"; `/api/tags` and `/api/version` answer as Ollama does.
- `POST /api/show {"model"}` describes a pulled model as Ollama does (`details` with `family` and
  `parameter_size` such as "3.2B", `model_info` with `general.parameter_count`, `capabilities`);
  `sizes` sets a model's parameter count (default 3,212,749,888, llama3.2's). A model that is not
  pulled gets 404 `{"error": "model 'x' not found"}`.
- `POST /api/pull` streams progress as Ollama documents it: "pulling manifest", then per layer
  "pulling <12 hex>" lines with `digest`, `total` and `completed` (omitted while 0, as Go's
  omitempty does), "verifying sha256 digest", "writing manifest", "success"; the model then shows
  in `/api/tags`. A name the registry (`library`) lacks gets the error line after "pulling
  manifest"; a malformed name gets 400 "invalid model name". `PullPlan` sets the layers' sizes,
  the pace, and a fault (a break halfway, a full disk, no network).

It also models Ollama's prompt cache (see `PromptCache`): per model a few slots keep the tokens of
their last prompt and reply; a request evaluates only what follows the longest prefix it shares
with a slot, reports that as `prompt_eval_count`, and takes `prompt_s_per_token` for each. A change
of `num_ctx` reloads the model (its cache is lost), and a model not loaded yet takes `load_delay`.

Structured outputs (`format`), as Ollama's /api/chat takes them (docs/api.md "format: the format
to return a response in. Format can be `json` or a JSON schema"; ollama.com/blog/structured-outputs):
- `"json"` constrains the content to a JSON **object** (Ollama's `grammarJSON` has `root ::= object`);
  a schema object constrains it to that schema. `null` and `""` count as no format. The schema is
  not put in the prompt. A request without a format is answered exactly as before.
- The reply's content is JSON text streamed in several chunks (token-sized), then the usual done
  line. `Plan(json=value)` sets the value; else `Plan(chunks=...)` whose joined text is the JSON;
  else the fake makes a **minimal valid instance** of the schema (`{}` for "json"; per property its
  `default`, `const`, first `enum` value or first `anyOf`/`oneOf` branch; only the required
  properties; `minItems` items; 0 / "" / false / null, raised to `minimum`/`minLength`).
- Like llama.cpp's grammar, an object schema with `properties` and no `additionalProperties`
  admits no other property; a planned value is checked against that (with `jsonschema`).
- A plan that no grammar could produce is a test error, never invalid JSON: a planned value that
  does not satisfy the format, a schema the fake cannot make a value for (a `pattern` with no
  `enum`/`default`), or `tool_calls` planned under a format (the grammar leaves no room for a call
  tag; ollama#8095: with a format, no tool calls). The fake then records the reason in `errors`
  and answers 500 `{"error": "fake Ollama test error: ..."}`, which no real Ollama sends.
- `num_predict` still cuts the reply (`done_reason: "length"`), leaving truncated JSON, as Ollama's.
- Thinking (`Plan.thinking`) streams before the JSON: Ollama (>= 0.12.4, routes.go
  structuredOutputsState) lets a thinking model think unconstrained, then applies the format.
- A malformed format is refused as Ollama's runner refuses it (llm/server.go `Completion`), after
  the model is loaded and before the prompt is evaluated: not "json" and not an object gets
  `invalid format: "<raw JSON>"; expected "json" or a valid JSON Schema object`; a schema that
  llama.cpp's json-schema-to-grammar rejects gets `invalid JSON schema in format`. The fake rejects
  what that converter rejects (an unknown `type`, a `$ref` that is not local or does not resolve, a
  `pattern` not written `^...$`) and, stricter than Ollama, any schema its JSON-Schema metaschema
  rejects (llama.cpp ignores, e.g., a `required` that is not a list), so plans can be checked.
  Since Ollama 0.12.6 an error before the first chunk is an HTTP **500** with `{"error": ...}`
  (server/routes.go `streamResponse`; before, a 200 with the error line), as clients report
  (`<Response [500]> {"error":"invalid JSON schema in format"}`). A refused request takes no plan.
- Not modelled under a format: prefill (the JSON is the whole reply) and `stream: false`.
- `formats` records the format of each chat request that reached a model (None without one);
  `errors` the test errors above.

Tests queue `Plan`s to shape the next replies and read `requests`, `prompts`, `replies` and `hangups`;
`closing` names models whose every request is closed before a byte of an answer.
"""
import argparse
import json
import re
import select
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()  # Plan.json not given (None is JSON null)


@dataclass
class Plan:
    "How the fake answers one /api/chat request. Defaults: a prompt, well-formed reply."
    chunks: list[str] | None = None  # None: a reply derived from the request
    delay: float = 0.0  # seconds to generate each chunk, the first one included
    first_byte_delay: float = 0.0  # silence before the status line, like a cold model load
    close: bool = False  # take the request, then close the connection before any byte (a runner that crashed)
    status: int = 200
    error: str = ""  # the {"error"} text for a non-200 status
    error_after: int | None = None  # after this many chunks: an {"error"} line, no done line
    garbage_after: int | None = None  # after this many chunks: a line that is not JSON
    garbage: bytes = b"<html>this is not json</html>"  # that line
    drop_after: int | None = None  # after this many chunks: close the connection mid-body
    stall_after: int | None = None  # after this many chunks: say nothing for `stall` seconds
    stall: float = 30.0
    stats: bool = True  # False: the done line omits every stat (they are omitempty)
    thinking: list[str] = field(default_factory=list)  # thinking chunks sent before the content
    tool_calls: list[dict] = field(default_factory=list)  # {"name", "arguments"[, "id"]}: sent whole, in one chunk, instead of text
    json: Any = UNSET  # the reply as a JSON value, streamed as JSON text in chunks: what `format` constrains (see above)


@dataclass
class PullPlan:
    "How the fake answers /api/pull: the layers' sizes, the progress lines per layer and their pace, a fault."
    layers: tuple[int, ...] = (40_000_000, 12_000, 480)
    steps: int = 4  # progress lines per layer after its first (completed 0) line
    delay: float = 0.01  # before each progress line
    fault: str = ""  # "break": the connection drops halfway; "disk_full" or "offline": Ollama's error line


PULL_FAULTS = {
    "disk_full": "write /root/.ollama/models/blobs/sha256-{digest}-partial-0: no space left on device",
    "offline": 'pull model manifest: Get "https://registry.ollama.ai/v2/library/{model}/manifests/latest": '
               "dial tcp: lookup registry.ollama.ai on 127.0.0.53:53: no such host",
}
LIBRARY = ("llama3.2:latest", "qwen3:4b", "qwen2.5:0.5b", "mistral:latest", "gemma3:270m")  # what the registry has
NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+){0,2}(:[\w][\w.-]{0,127})?$")  # Ollama's rule, roughly


TOKEN = re.compile(r"<\|[a-z]+\|>|\w+|[^\w\s]|\s+")


class FormatError(Exception):
    "A format Ollama refuses (500 before any chunk); str(e) is Ollama's error text."


class Unplannable(Exception):
    "A reply the format's grammar could not produce: a test error, not Ollama's."


def structured(body: dict) -> bool:
    "Whether a request sets a format (Ollama takes null and \"\" as not set)."
    return body.get("format") not in (None, "")


def format_schema(fmt) -> dict:
    """The JSON schema a `format` stands for; FormatError with Ollama's message when Ollama
    refuses it. "json" and {} both mean any JSON object (llama.cpp: an empty schema is `object`)."""
    if fmt == "json" or fmt == {}:
        return {"type": "object"}
    if not isinstance(fmt, dict):
        raw = json.dumps(fmt)  # Go's %q of the raw bytes, for the bodies `requests` and json.dumps send
        raise FormatError(f'invalid format: {json.dumps(raw)}; expected "json" or a valid JSON Schema object')
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for
    try:
        validator_for(fmt).check_schema(fmt)
        _llama_cpp_accepts(fmt, fmt)
    except (SchemaError, ValueError) as e:
        raise FormatError("invalid JSON schema in format") from e
    return fmt


def _llama_cpp_accepts(node, root) -> None:
    "What llama.cpp's json-schema-to-grammar rejects beyond the metaschema: foreign or dangling $refs, unanchored patterns."
    if isinstance(node, list):
        for item in node:
            _llama_cpp_accepts(item, root)
        return
    if not isinstance(node, dict):
        return
    if isinstance(node.get("$ref"), str):
        _resolve(node["$ref"], root)
    if isinstance(node.get("pattern"), str) and not (node["pattern"].startswith("^") and node["pattern"].endswith("$")):
        raise ValueError("Pattern must start with '^' and end with '$'")
    for key, value in node.items():
        if key not in ("enum", "const", "default", "examples"):  # values, not schemas
            _llama_cpp_accepts(value, root)


def _resolve(ref: str, root: dict):
    if not ref.startswith("#"):
        raise ValueError(f"Unsupported ref: {ref}")
    target = root
    for part in filter(None, ref[1:].split("/")):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(target, dict) or part not in target:
            raise ValueError(f"Error resolving ref {ref}")
        target = target[part]
    return target


def closed(schema):
    """The schema as llama.cpp's grammar reads it: an object with `properties` and no
    `additionalProperties` admits no other property (allOf branches are left as they are)."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    for key in ("properties", "$defs", "definitions", "patternProperties"):
        if isinstance(out.get(key), dict):
            out[key] = {name: closed(s) for name, s in out[key].items()}
    for key in ("items", "prefixItems", "additionalProperties", "anyOf", "oneOf", "not", "contains"):
        if key in out:
            out[key] = closed(out[key])
    types = out.get("type")
    if "properties" in out and "additionalProperties" not in out and types in (None, "object"):
        out["additionalProperties"] = False
    return out


def minimal(schema, root: dict, depth: int = 0):
    "The smallest value a grammar for `schema` admits (Unplannable when the fake cannot tell)."
    if depth > 32:
        raise Unplannable("the schema nests too deep for a minimal value")
    if schema is True or schema == {}:
        return {}
    if not isinstance(schema, dict):
        raise Unplannable(f"no value satisfies the schema {schema!r}")
    if "$ref" in schema:
        return minimal(_resolve(schema["$ref"], root), root, depth + 1)
    for key in ("default", "const"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            return minimal(schema[key][0], root, depth + 1)
    if schema.get("allOf"):
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if "$ref" in part else part
            merged["properties"] = merged.get("properties", {}) | part.get("properties", {})
            merged["required"] = [*merged.get("required", []), *part.get("required", [])]
            merged |= {k: v for k, v in part.items() if k not in ("properties", "required")}
        return minimal(merged, root, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "array" if "items" in schema or "prefixItems" in schema else "object"
    if kind == "object":
        props = schema.get("properties", {})
        return {name: minimal(props.get(name, {}), root, depth + 1) for name in schema.get("required", [])}
    if kind == "array":
        if isinstance(schema.get("prefixItems"), list):
            return [minimal(s, root, depth + 1) for s in schema["prefixItems"]]
        return [minimal(schema.get("items", {}), root, depth + 1) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        if "pattern" in schema:
            raise Unplannable(f"cannot make a string for the pattern {schema['pattern']!r}")
        return STRING_FORMATS.get(schema.get("format"), "x" * schema.get("minLength", 0))
    if kind in ("integer", "number"):
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is None and "exclusiveMinimum" in schema:
            low = schema["exclusiveMinimum"] + 1
        if high is None and "exclusiveMaximum" in schema:
            high = schema["exclusiveMaximum"] - 1
        value = low if low is not None and low > 0 else 0
        return high if high is not None and value > high else value
    return {"boolean": False, "null": None}[kind]


STRING_FORMATS = {"date": "2000-01-01", "time": "00:00:00Z", "date-time": "2000-01-01T00:00:00Z",
                  "uuid": "00000000-0000-0000-0000-000000000000", "email": "a@example.com"}


def structured_reply(fmt, plan: "Plan") -> list[str]:
    """The chunks of JSON text a reply constrained by `fmt` carries: the plan's value (in token-sized
    chunks), the plan's chunks as they are, or a minimal instance; Unplannable when a grammar for
    `fmt` could not have produced it."""
    schema = format_schema(fmt)
    if plan.tool_calls:
        raise Unplannable("tool_calls planned for a request with a format: its grammar admits no tool call")
    if plan.json is not UNSET:
        value, text = plan.json, json.dumps(plan.json)
    elif plan.chunks is not None:
        text = "".join(plan.chunks)
        try:
            value = json.loads(text)
        except ValueError:
            raise Unplannable(f"the planned chunks are not JSON: {text[:80]!r}") from None
    else:
        value = minimal(schema, schema)
        text = json.dumps(value)
    from jsonschema import ValidationError
    from jsonschema.validators import validator_for
    grammar = closed(schema)
    try:
        validator_for(grammar)(grammar).validate(value)
    except ValidationError as e:
        raise Unplannable(f"the planned reply {text[:80]} does not satisfy the format: {e.message}") from None
    return list(plan.chunks) if plan.json is UNSET and plan.chunks is not None else tokenize(text)


def tokenize(text: str) -> list[str]:
    "Word-sized tokens, about one per four characters of English, like a real tokenizer."
    return TOKEN.findall(text)


def render_prompt(body: dict) -> list[str]:
    """The tokens of a chat request as a chat template lays them out: tools first, then each
    message, then the start of the assistant's turn."""
    text = ""
    if body.get("tools"):
        text += "<|tools|>" + json.dumps(body["tools"], sort_keys=True) + "<|end|>"
    for m in body.get("messages", []):
        calls = json.dumps(m["tool_calls"], sort_keys=True) if m.get("tool_calls") else ""
        text += f"<|{m.get('role', '')}|>{m.get('tool_name', '')}{m.get('content', '')}{calls}<|end|>"
    if prefill(body) is not None:  # a final assistant message is left open, to be continued
        return tokenize(text.removesuffix("<|end|>"))
    return tokenize(text + "<|assistant|>")


def prefill(body: dict) -> str | None:
    "The text of a final assistant message, which Ollama continues instead of answering anew."
    last = (body.get("messages") or [{}])[-1]
    return last.get("content", "") if last.get("role") == "assistant" and not last.get("tool_calls") else None


@dataclass
class Prompt:
    "What one /api/chat request cost: its prompt's size and how much of it was evaluated (not cached)."
    model: str
    tokens: int
    evaluated: int
    slot: "Slot"


@dataclass
class Slot:
    tokens: list[str] = field(default_factory=list)
    busy: bool = False
    used: float = 0.0


def _predicts(body: dict) -> int | None:
    "The request's num_predict (the most tokens to generate), if it sets one."
    return (body.get("options") or {}).get("num_predict")


def common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class PromptCache:
    """Ollama's runner: each loaded model has `slots` parallel slots (OLLAMA_NUM_PARALLEL), each
    holding the tokens of its last prompt plus the reply it generated. A request takes the free slot
    sharing the longest prefix with its prompt (else the least recently used) and evaluates only the
    rest. Loading with another `num_ctx` reloads the model, which empties its slots."""

    def __init__(self, slots: int = 4):
        self.slots = slots
        self.loaded: dict[str, tuple[int | None, list[Slot]]] = {}  # model -> (num_ctx, slots)
        self.loads: list[str] = []  # every load or reload, by model name

    def claim(self, model: str, num_ctx: int | None, tokens: list[str]) -> tuple[Prompt, bool]:
        "Returns the prompt's cost and whether the model had to be (re)loaded first."
        loaded = self.loaded.get(model)
        reload = loaded is None or loaded[0] != num_ctx
        if reload:
            self.loads.append(model)
            loaded = self.loaded[model] = (num_ctx, [Slot() for _ in range(self.slots)])
        free = [s for s in loaded[1] if not s.busy] or [Slot()]
        slot = max(free, key=lambda s: (common_prefix(s.tokens, tokens), -s.used))
        cached = min(common_prefix(slot.tokens, tokens), len(tokens) - 1)  # the last token is always evaluated
        slot.busy, slot.tokens = True, list(tokens)
        return Prompt(model, len(tokens), len(tokens) - cached, slot), reload

    def release(self, prompt: Prompt, reply: str, evaluated: bool = True) -> None:
        "A request ends; one the client left before its prompt was evaluated leaves only the cached part."
        if evaluated:
            prompt.slot.tokens += tokenize(reply)
        else:
            del prompt.slot.tokens[prompt.tokens - prompt.evaluated:]
        prompt.slot.busy, prompt.slot.used = False, time.monotonic()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0

    def process_request(self, request, client_address):
        self.connections += 1
        super().process_request(request, client_address)

    def handle_error(self, request, client_address):
        pass  # clients hang up on purpose (timeouts, Stop); that is not the fake's error


def words(text: str) -> list[str]:
    "Split text into token-like chunks that join back to exactly the text."
    return re.findall(r"\s*\S+", text) or [text]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


class FakeOllama:
    def __init__(self, models=("llama3.2:latest",), default: Plan | None = None, port: int = 0):
        self.models = list(models)
        self.library = set(LIBRARY)  # the names a pull finds in the registry
        self.pull_plan = PullPlan()
        self.pulls: list[dict] = []  # bodies of every /api/pull request
        self.pull_hangups: list[str] = []  # the models whose pull the client left before it ended
        self.without_tools: set[str] = set()  # models that answer 400 to a request with tools, as Ollama does
        self.sizes: dict[str, int] = {}  # parameters of a model, as /api/show gives them (default: llama3.2's)
        self.shown: list[str] = []  # the model of every /api/show request
        self.closing: set[str] = set()  # models whose every chat request is closed before any byte (see Plan.close)
        self.default = default or Plan()
        self.plans: deque[Plan] = deque()
        self.requests: list[dict] = []  # bodies of every /api/chat request, in arrival order
        self.formats: list = []  # the `format` of every /api/chat request that reached a model (None: none)
        self.errors: list[str] = []  # test errors: plans a real Ollama could not have answered (see Plan.json)
        self.replies: list[str] = []  # the content each completed /api/chat stream sent
        self.answered: list[dict] = []  # the bodies of the /api/chat requests answered to the end
        self.answered_to: list[tuple[int, float]] = []  # for each of them: the client's port, and when (monotonic)
        self.generated: list[str] = []  # the whole text each /api/chat reply was to be, sent in full or not
        self.hangups: list[float] = []  # when a client closed a stream before it ended
        self.calls: list[list[dict]] = []  # the tool calls each scripted call chunk sent
        self.prompts: list[Prompt] = []  # the cost of every chat request that asked for a reply
        self.warms: list[Prompt] = []  # the cost of every request for one token only (a cache warm-up)
        self.cache = PromptCache()
        self.load_delay = 0.0  # how long loading a model takes (before its first request, or a reload)
        self.prompt_s_per_token = 0.0  # prompt evaluation time per token not found in the cache
        self.lock = threading.RLock()  # wait() predicates may call chat_requests()
        self.changed = threading.Condition(self.lock)
        self.server = _Server(("127.0.0.1", port), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "FakeOllama":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def plan(self, *plans: Plan) -> None:
        with self.lock:
            self.plans.extend(plans)

    def continuation(self, said: str, body: dict) -> list[str]:
        """Prefill: the rest of the reply that `said` began (one this fake generated earlier), nothing
        when it is one the fake generated whole, else new words after it; the reply holds only the
        new text, as Ollama's does."""
        whole = next((t for t in reversed(self.generated) if t.startswith(said)), None)
        return words(whole[len(said):]) if whole is not None else words(" " + self.reply_for(body, len(self.requests)))

    def reply_for(self, body: dict, n: int) -> str:
        last = next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), "")
        return f"Reply {n}: noted, you said \"{last[:40]}\". Fascinating. Truly."

    def wait(self, predicate, timeout: float = 10.0):
        "Block until predicate(self) is truthy; returns its value."
        deadline = time.monotonic() + timeout
        with self.changed:
            while not (result := predicate(self)):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"fake Ollama: condition not met in {timeout}s; "
                                         f"{len(self.requests)} requests, {len(self.replies)} replies")
                self.changed.wait(left)
            return result

    def chat_requests(self) -> list[dict]:
        "The /api/chat requests that asked for a reply (model loads and one-token cache warm-ups excluded)."
        with self.lock:
            return [r for r in self.requests if r.get("messages") and _predicts(r) != 1]

    def _answered(self, body: dict, port: int) -> None:
        with self.changed:
            self.answered.append(body)
            self.answered_to.append((port, time.monotonic()))
            self.changed.notify_all()

    def _record(self, attr: str, value) -> None:
        with self.changed:
            getattr(self, attr).append(value)
            self.changed.notify_all()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Ollama's Go server sets TCP_NODELAY; with Nagle on, the chunked body's small last
            # writes would wait for the client's delayed ACK (about 40 ms), which Ollama never does.
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path == "/":
                    self._send(200, b"Ollama is running", "text/plain; charset=utf-8")
                elif self.path == "/api/tags":
                    models = [{"name": m, "model": m, "size": 1, "details": {}} for m in fake.models]
                    self._json(200, {"models": models})
                elif self.path == "/api/version":
                    self._json(200, {"version": "0.12.0"})
                else:
                    self._send(404, b"404 page not found", "text/plain")

            def _show(self, model):
                fake.shown.append(model)
                name = model if ":" in model else model + ":latest"
                if name not in fake.models:
                    return self._json(404, {"error": f"model '{model}' not found"})
                count = fake.sizes.get(model, fake.sizes.get(name, 3_212_749_888))
                size = f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.2f}M"
                self._json(200, {"modelfile": "", "parameters": "", "template": "{{ .Prompt }}",
                                 "details": {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                                             "parameter_size": size, "quantization_level": "Q4_K_M"},
                                 "model_info": {"general.architecture": "llama", "general.parameter_count": count},
                                 "capabilities": ["completion", "tools"], "modified_at": _now()})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path == "/api/pull":
                    return self._pull(body)
                if self.path == "/api/show":
                    return self._show(body.get("model", ""))
                if self.path != "/api/chat":
                    return self._send(404, b"404 page not found", "text/plain")
                model = body.get("model", "")
                if (model if ":" in model else model + ":latest") not in fake.models:
                    fake._record("requests", body)
                    return self._json(404, {"error": f"model '{model}' not found"})
                if model in fake.closing:
                    fake._record("requests", body)
                    return self._close()
                if body.get("tools") and model in fake.without_tools:
                    fake._record("requests", body)
                    return self._json(400, {"error": f"registry.ollama.ai/library/{model} does not support tools"})
                refused = None  # Ollama's runner refuses a malformed format once the model is loaded
                if structured(body) and body.get("messages"):
                    try:
                        format_schema(body["format"])
                    except FormatError as e:
                        refused = str(e)
                with fake.lock:
                    replying = body.get("messages") and _predicts(body) != 1 and not refused  # not a load, not a cache warm-up
                    plan = fake.plans.popleft() if fake.plans and replying else fake.default
                    prompt, load = fake.cache.claim(model, (body.get("options") or {}).get("num_ctx"),
                                                    render_prompt(body))
                    fake.requests.append(body)
                    fake.formats.append(body.get("format"))
                    if body.get("messages"):
                        (fake.warms if _predicts(body) == 1 else fake.prompts).append(prompt)
                    fake.changed.notify_all()
                reply, evaluated = "", False
                try:
                    if plan.close:
                        return self._close()
                    if refused:
                        if not self._wait(fake.load_delay if load else 0):
                            return fake._record("hangups", time.monotonic())
                        return self._json(500, {"error": refused})
                    # Ollama notices a client that hangs up while it loads or evaluates (499).
                    if not self._wait((fake.load_delay if load else 0) + plan.first_byte_delay
                                      + prompt.evaluated * fake.prompt_s_per_token):
                        return fake._record("hangups", time.monotonic())
                    evaluated = True
                    if plan.status != 200:
                        return self._json(plan.status, {"error": plan.error or "internal error"})
                    if not body.get("messages"):
                        return self._stream(body, [], Plan(), prompt, reason="load")
                    if structured(body):
                        try:
                            chunks = structured_reply(body["format"], plan)
                        except Unplannable as e:
                            fake._record("errors", str(e))
                            return self._json(500, {"error": f"fake Ollama test error: {e}"})
                    elif plan.json is not UNSET:  # a model may write JSON unasked; without a format nothing checks it
                        chunks = tokenize(json.dumps(plan.json))
                    else:
                        chunks = plan.chunks if plan.chunks is not None else words(fake.reply_for(body, len(fake.requests)))
                        if plan.chunks is None and (said := prefill(body)) is not None:
                            chunks = fake.continuation(said, body)
                    fake.generated.append("".join(chunks))
                    limit = _predicts(body)
                    if plan.tool_calls:
                        reply = self._calls(body, plan, prompt)
                    elif limit is not None and 0 < limit < len(chunks):  # a negative num_predict is no bound
                        reply = self._stream(body, chunks[:limit], Plan(delay=plan.delay), prompt, reason="length")
                    else:
                        reply = self._stream(body, chunks, plan, prompt)
                finally:
                    with fake.lock:
                        fake.cache.release(prompt, reply or "", evaluated)

            def _stream(self, body, chunks, plan, prompt, reason="stop") -> str:
                "Stream the reply; returns what was sent when the stream completed."
                model = body.get("model")
                try:
                    # The status line and headers go out with the first line, as Ollama's do.
                    first = True
                    # Each token takes `delay` to generate, the first one included.
                    for t in plan.thinking:
                        time.sleep(plan.delay)
                        self._line({"model": model, "created_at": _now(),
                                    "message": {"role": "assistant", "content": "", "thinking": t}, "done": False},
                                   first)
                        first = False
                    for i, text in enumerate(chunks):
                        if i == plan.error_after:
                            return self._end({"error": "an error was encountered while running the model"}, first)
                        if i == plan.garbage_after:
                            return self._end_raw(plan.garbage, first)
                        if i == plan.drop_after:
                            return self._drop(first)
                        if i == plan.stall_after:
                            return self._stall(plan.stall, first)
                        time.sleep(plan.delay)
                        self._line({"model": model, "created_at": _now(),
                                    "message": {"role": "assistant", "content": text}, "done": False}, first)
                        first = False
                    done = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                            "done": True, "done_reason": reason}
                    if plan.stats:
                        # A nominal 100 ms of prompt evaluation unless a prompt-time model is set.
                        prompt_ns = int(prompt.evaluated * fake.prompt_s_per_token * 1e9) or 100_000_000
                        done |= {"total_duration": 5_000_000_000, "load_duration": 1_000_000,
                                 "prompt_eval_count": prompt.evaluated, "prompt_eval_duration": prompt_ns,
                                 "eval_count": len(chunks), "eval_duration": 500_000_000}
                    if reason == "stop":  # before the done line, which a client may act on at once
                        fake._answered(body, self.client_address[1])
                        fake._record("replies", "".join(chunks))
                    self._end(done, first)
                    return "".join(chunks)
                except (BrokenPipeError, ConnectionResetError):
                    fake._record("hangups", time.monotonic())
                return ""

            def _pull(self, body):
                "Ollama's PullHandler: a malformed name is refused; anything else streams, errors included."
                fake._record("pulls", body)
                model = body.get("model") or body.get("name") or ""
                if not NAME.match(model):
                    return self._json(400, {"error": "invalid model name"})
                name, plan = model if ":" in model else f"{model}:latest", fake.pull_plan
                lines = [{"status": "pulling manifest"}]
                if name not in fake.library:
                    return self._pulled(model, lines, {"error": "pull model manifest: file does not exist"}, plan)
                for size in plan.layers:
                    digest = "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, f"{name}/{size}").hex * 2
                    for step in range(plan.steps + 1):
                        line = {"status": f"pulling {digest[7:19]}", "digest": digest, "total": size}
                        if step:
                            line["completed"] = size * step // plan.steps
                        lines.append(line)
                lines += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}]
                if plan.fault == "break":
                    return self._pulled(model, lines[:len(lines) // 2], "break", plan)
                if plan.fault:
                    error = PULL_FAULTS[plan.fault].format(digest=lines[-3]["digest"][7:], model=name.split(":")[0])
                    return self._pulled(model, lines[:len(lines) // 2], {"error": error}, plan)
                if self._pulled(model, lines, None, plan):
                    with fake.changed:
                        if name not in fake.models:
                            fake.models.append(name)
                        fake.changed.notify_all()
                    self._end({"status": "success"}, False)

            def _pulled(self, model, lines, end, plan) -> bool:
                """Stream progress lines at the plan's pace, then `end`: an error line, "break" (the
                connection drops) or None (the caller finishes). False if the client left."""
                try:
                    for i, line in enumerate(lines):
                        if i and not self._wait(plan.delay):
                            fake._record("pull_hangups", model)
                            return False
                        self._line(line, i == 0)
                    if end == "break":
                        self._drop(False)
                    elif end is not None:
                        self._end(end, False)
                    return True
                except (BrokenPipeError, ConnectionResetError):
                    fake._record("pull_hangups", model)
                    return False

            def _calls(self, body, plan, prompt) -> str:
                "A tool call comes whole in one chunk with empty content, then the done line (as Ollama's)."
                time.sleep(plan.delay)
                calls = [{"id": c.get("id") or f"call_{uuid.uuid4().hex[:8]}",
                          "function": {"index": i, "name": c["name"], "arguments": c["arguments"]}}
                         for i, c in enumerate(plan.tool_calls)]
                message = {"role": "assistant", "content": "", "tool_calls": calls}
                self._line({"model": body.get("model"), "created_at": _now(), "message": message, "done": False}, True)
                self._end({"model": body.get("model"), "created_at": _now(), "message": {"role": "assistant", "content": ""},
                           "done": True, "done_reason": "stop", "prompt_eval_count": prompt.evaluated,
                           "eval_count": 1}, False)
                fake._record("calls", calls)
                return json.dumps(calls)

            def _headers(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()

            def _write_chunk(self, data: bytes):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

            def _line(self, obj, first):
                if first:
                    self._headers()
                self._write_chunk(json.dumps(obj).encode() + b"\n")

            def _end(self, obj, first):
                self._line(obj, first)
                self._write_chunk(b"")

            def _end_raw(self, raw, first):
                if first:
                    self._headers()
                self._write_chunk(raw + b"\n")
                self._write_chunk(b"")

            def _drop(self, first):
                if first:
                    self._headers()
                self.wfile.write(b"ff\r\npartial")
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)

            def _close(self):
                "No status line, no byte: the connection just closes."
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)

            def _stall(self, seconds, first):
                if first:
                    self._headers()
                if not self._wait(seconds):
                    raise BrokenPipeError
                self.close_connection = True

            def _wait(self, seconds) -> bool:
                "Sleep, watching the client; False as soon as it hangs up."
                deadline = time.monotonic() + seconds
                while (left := deadline - time.monotonic()) > 0:
                    time.sleep(min(left, 0.02))
                    if self._peer_gone():
                        return False
                return True

            def _peer_gone(self) -> bool:
                "A closed peer reads as readable with nothing to read."
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and not self.connection.recv(1, socket.MSG_PEEK)

            def _json(self, status, obj):
                self._send(status, json.dumps(obj).encode(), "application/json; charset=utf-8")

            def _send(self, status, data, ctype):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


if __name__ == "__main__":
    # Stand-in for Ollama when trying the app by hand: `python -m tests.fake_ollama --delay 0.05`.
    parser = argparse.ArgumentParser(description="fake Ollama for trying the app without a model")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds between chunks")
    args = parser.parse_args()
    fake = FakeOllama(default=Plan(delay=args.delay), port=args.port)
    print(f"fake Ollama on {fake.url}", flush=True)
    fake.server.serve_forever()
