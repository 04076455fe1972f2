"""A fake Ollama HTTP server that speaks Ollama's documented wire format and misbehaves on demand.

- `POST /api/chat` streams `application/x-ndjson` with chunked transfer encoding, one JSON object
  per line; the last line has `"done": true`, `done_reason` and the stats (each may be omitted).
- No status line or header is sent before the first chunk is ready (a model load delays both).
- An unknown model gets 404 `{"error": "model 'NAME' not found"}`; other error statuses carry
  `{"error": ...}` too.
- A mid-stream failure is a `{"error": ...}` line with no done line after it.
- `messages: []` only loads the model: a single done line with `done_reason: "load"`.
- `GET /` says "Ollama is running"; `/api/tags` and `/api/version` answer as Ollama does.

Tests queue `Plan`s to shape the next replies and read `requests`, `replies` and `hangups`.
"""
import argparse
import json
import re
import select
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Plan:
    "How the fake answers one /api/chat request. Defaults: a prompt, well-formed reply."
    chunks: list[str] | None = None  # None: a reply derived from the request
    delay: float = 0.0  # seconds between chunks
    first_byte_delay: float = 0.0  # silence before the status line, like a cold model load
    status: int = 200
    error: str = ""  # the {"error"} text for a non-200 status
    error_after: int | None = None  # after this many chunks: an {"error"} line, no done line
    garbage_after: int | None = None  # after this many chunks: a line that is not JSON
    drop_after: int | None = None  # after this many chunks: close the connection mid-body
    stall_after: int | None = None  # after this many chunks: say nothing for `stall` seconds
    stall: float = 30.0
    stats: bool = True  # False: the done line omits every stat (they are omitempty)
    thinking: list[str] = field(default_factory=list)  # thinking chunks sent before the content


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
        self.default = default or Plan()
        self.plans: deque[Plan] = deque()
        self.requests: list[dict] = []  # bodies of every /api/chat request, in arrival order
        self.replies: list[str] = []  # the content each completed /api/chat stream sent
        self.hangups: list[float] = []  # when a client closed a stream before it ended
        self.load_delay = 0.0  # how long a model load (a `messages: []` request) takes
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
        "The /api/chat requests that asked for a reply (warm-up loads excluded)."
        with self.lock:
            return [r for r in self.requests if r.get("messages")]

    def _record(self, attr: str, value) -> None:
        with self.changed:
            getattr(self, attr).append(value)
            self.changed.notify_all()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

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

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                if self.path != "/api/chat":
                    return self._send(404, b"404 page not found", "text/plain")
                with fake.lock:
                    plan = fake.plans.popleft() if fake.plans and body.get("messages") else fake.default
                fake._record("requests", body)
                model = body.get("model", "")
                time.sleep(plan.first_byte_delay if body.get("messages") else fake.load_delay)
                if (model if ":" in model else model + ":latest") not in fake.models:
                    return self._json(404, {"error": f"model '{model}' not found"})
                if plan.status != 200:
                    return self._json(plan.status, {"error": plan.error or "internal error"})
                if not body.get("messages"):
                    return self._stream(body, [], Plan(), reason="load")
                chunks = plan.chunks if plan.chunks is not None else words(fake.reply_for(body, len(fake.requests)))
                self._stream(body, chunks, plan)

            def _stream(self, body, chunks, plan, reason="stop"):
                model = body.get("model")
                try:
                    # The status line and headers go out with the first line, as Ollama's do.
                    first = True
                    for t in plan.thinking:
                        self._line({"model": model, "created_at": _now(),
                                    "message": {"role": "assistant", "content": "", "thinking": t}, "done": False},
                                   first)
                        first = False
                        time.sleep(plan.delay)
                    for i, text in enumerate(chunks):
                        if i == plan.error_after:
                            return self._end({"error": "an error was encountered while running the model"}, first)
                        if i == plan.garbage_after:
                            return self._end_raw(b"<html>this is not json</html>", first)
                        if i == plan.drop_after:
                            return self._drop(first)
                        if i == plan.stall_after:
                            return self._stall(plan.stall, first)
                        self._line({"model": model, "created_at": _now(),
                                    "message": {"role": "assistant", "content": text}, "done": False}, first)
                        first = False
                        time.sleep(plan.delay)
                    done = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                            "done": True, "done_reason": reason}
                    if plan.stats:
                        done |= {"total_duration": 5_000_000_000, "load_duration": 1_000_000,
                                 "prompt_eval_count": 10 * len(body.get("messages", [])),
                                 "prompt_eval_duration": 100_000_000, "eval_count": len(chunks),
                                 "eval_duration": 500_000_000}
                    self._end(done, first)
                    if reason == "stop":
                        fake._record("replies", "".join(chunks))
                except (BrokenPipeError, ConnectionResetError):
                    fake._record("hangups", time.monotonic())

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

            def _stall(self, seconds, first):
                if first:
                    self._headers()
                deadline = time.monotonic() + seconds
                while time.monotonic() < deadline:
                    time.sleep(0.05)
                    if self._peer_gone():
                        raise BrokenPipeError
                self.close_connection = True

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
