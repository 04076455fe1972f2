"""A fake Ollama for the benchmark: streams many replies at once at a set rate, on asyncio.

Every chunk's content is a token `⟦seq:t⟧ ` where t is the wall-clock time (ns) at which the fake
wrote it, so a receiver anywhere on this machine can tell its latency and spot gaps or reordering.
The last user message may say `chunks=N rate=R` to shape that reply; otherwise the defaults apply.
The wire format is Ollama's: chunked NDJSON, a done line with stats, headers with the first line.

    python -m bench.fake_stream --port 11500 --rate 20 --chunks 40
"""
import argparse
import asyncio
import json
import re
import time

SHAPE = re.compile(r"chunks=(\d+) rate=(\d+(?:\.\d+)?)")
# What the brain checks before it calls Ollama ready (its version and its pulled models), and what it
# asks of the model once (its size, for MODEL_TOOL_MODE=auto): llama3.2's, so it calls tools natively.
ANSWERS = {"/api/version": b'{"version": "0.12.0"}',
           "/api/tags": b'{"models": [{"name": "llama3.2:latest", "model": "llama3.2:latest"}]}',
           "/api/show": b'{"details": {"family": "llama", "parameter_size": "3.2B"}, '
                        b'"model_info": {"general.parameter_count": 3212749888}}'}


def token(seq: int) -> str:
    return f"⟦{seq}:{time.time_ns()}⟧ "


def line(obj: dict) -> bytes:
    data = json.dumps(obj, ensure_ascii=False).encode() + b"\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


class FakeStream:
    def __init__(self, rate: float, chunks: int):
        self.rate, self.chunks = rate, chunks

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                method, path, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1)) if b"ength:" in head else 0
                body = json.loads(await reader.readexactly(length)) if length else {}
                if method == "POST" and path == "/api/chat":
                    await self.chat(body, writer)
                else:
                    payload = ANSWERS.get(path, b"Ollama is running")
                    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                                 % (len(payload), payload))
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def chat(self, body: dict, writer: asyncio.StreamWriter) -> None:
        last = next((m["content"] for m in reversed(body.get("messages", [])) if m["role"] == "user"), "")
        shape = SHAPE.search(last)
        chunks, rate = (int(shape[1]), float(shape[2])) if shape else (self.chunks, self.rate)
        model = body.get("model", "")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n"
        start = time.monotonic()
        for seq in range(chunks if body.get("messages") else 0):
            delta = {"model": model, "message": {"role": "assistant", "content": token(seq)}, "done": False}
            writer.write((head if seq == 0 else b"") + line(delta))
            await writer.drain()
            # Keep to the schedule rather than sleeping a fixed time, so load does not slow the rate.
            await asyncio.sleep(max(0.0, start + (seq + 1) / rate - time.monotonic()))
        done = {"model": model, "message": {"role": "assistant", "content": ""}, "done": True,
                "done_reason": "stop", "eval_count": chunks, "eval_duration": int(chunks / rate * 1e9)}
        writer.write((head if not chunks or not body.get("messages") else b"") + line(done) + b"0\r\n\r\n")
        await writer.drain()


async def serve(port: int, rate: float, chunks: int) -> None:
    server = await asyncio.start_server(FakeStream(rate, chunks).handle, "127.0.0.1", port, backlog=2048)
    print(f"fake stream on 127.0.0.1:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=11500)
    parser.add_argument("--rate", type=float, default=20.0, help="chunks per second per reply")
    parser.add_argument("--chunks", type=int, default=40, help="chunks per reply")
    args = parser.parse_args()
    try:
        asyncio.run(serve(args.port, args.rate, args.chunks))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
