"""Benchmark clients: browser sessions over WebSocket that time every chunk they receive, and
the floor's clients (straight HTTP to the fake, one bare ZeroMQ hop, one bare WebSocket hop)."""
import asyncio
import json
import re
import statistics
import time
from dataclasses import dataclass, field

import requests
import websockets
import zmq
import zmq.asyncio

TOKEN = re.compile(r"⟦(\d+):(\d+)⟧")
DONE_ARTICLE = re.compile(r'<article[^>]*class="msg reply done"[^>]*>.*?</article>', re.S)
ARTICLE = re.compile(r"<article.*?</article>", re.S)


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": statistics.median(ordered), "p99": pick(0.99), "max": ordered[-1], "n": len(ordered)}


@dataclass
class Tally:
    "What one tab saw of the replies it was sent: per-chunk latency (ms), order, completeness."
    expected: int
    latencies: list[float] = field(default_factory=list)
    next_seq: int = 0
    lost: int = 0
    reordered: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    final_ok: bool | None = None

    def frame(self, text: str, now_ns: int) -> None:
        for done in DONE_ARTICLE.findall(text):
            self.final_ok = [int(s) for s, _ in TOKEN.findall(done)] == list(range(self.expected))
        # A bubble sent whole repaints the text so far: its old tokens are not news. An appended
        # token older than one already seen arrived out of order.
        for article in ARTICLE.findall(DONE_ARTICLE.sub("", text)):
            self.count(TOKEN.findall(article), now_ns, repaint=True)
        self.count(TOKEN.findall(ARTICLE.sub("", text)), now_ns, repaint=False)

    def count(self, tokens: list[tuple[str, str]], now_ns: int, repaint: bool) -> None:
        for seq, sent in tokens:
            seq = int(seq)
            if seq < self.next_seq:
                self.reordered += 0 if repaint else 1
                continue
            self.lost += seq - self.next_seq
            self.next_seq = seq + 1
            self.latencies.append((now_ns - int(sent)) / 1e6)
            self.first_at = self.first_at or now_ns / 1e9
            self.last_at = now_ns / 1e9


class Browser:
    "A browser session: its cookie (from a real page load) and any number of tabs."

    def __init__(self, base: str):
        self.base = base
        http = requests.Session()
        http.get(base + "/", timeout=30).raise_for_status()
        self.cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())

    async def tab(self) -> "Tab":
        ws = await websockets.connect(self.base.replace("http", "ws", 1) + "/ws", max_size=None,
                                      additional_headers={"Cookie": self.cookie, "Origin": self.base},
                                      open_timeout=60, ping_interval=None)
        await ws.recv()  # the transcript and status every tab gets first
        return Tab(ws)


class Tab:
    def __init__(self, ws):
        self.ws, self.tally, self.sent_at = ws, None, 0.0

    async def ask(self, chunks: int, rate: float) -> None:
        self.tally = Tally(chunks)
        self.sent_at = time.time()
        await self.ws.send(json.dumps({"msg": f"chunks={chunks} rate={rate}", "HEADERS": {}}))

    def watch(self, tally: Tally) -> None:
        "Count a reply asked for by another tab of the same session."
        self.tally = tally

    async def read_until_done(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.tally.final_ok is None and time.monotonic() < deadline:
            try:
                text = await asyncio.wait_for(self.ws.recv(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            self.tally.frame(text, time.time_ns())

    async def close(self) -> None:
        await self.ws.close()


async def direct_http(url: str, chunks: int, rate: float) -> tuple[Tally, float]:
    "The floor: one reply read straight from the fake, as the brain reads it. Returns (tally, TTFT ms)."
    tally = Tally(chunks)

    def read() -> float:
        started, first = time.time(), None
        body = {"model": "bench", "messages": [{"role": "user", "content": f"chunks={chunks} rate={rate}"}]}
        with requests.post(url + "/api/chat", json=body, stream=True, timeout=60) as r:
            for raw in r.iter_lines():
                now = time.time_ns()
                first = first or now / 1e9
                tally.frame(json.loads(raw)["message"]["content"], now)
        return (first - started) * 1000

    return tally, await asyncio.to_thread(read)


async def bare_zmq_hop(messages: int, gap: float) -> list[float]:
    ctx = zmq.asyncio.Context()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub.connect(f"tcp://127.0.0.1:{port}")
    sub.subscribe(b"")
    await asyncio.sleep(0.3)
    latencies = []

    async def receive():
        for _ in range(messages):
            sent = int((await sub.recv()).decode())
            latencies.append((time.time_ns() - sent) / 1e6)

    receiver = asyncio.create_task(receive())
    for _ in range(messages):
        await pub.send(str(time.time_ns()).encode())
        await asyncio.sleep(gap)
    await asyncio.wait_for(receiver, 10)
    ctx.destroy(linger=0)
    return latencies


async def bare_websocket_hop(messages: int, gap: float) -> list[float]:
    from websockets.asyncio.server import serve

    async def handler(ws):
        for _ in range(messages):
            await ws.send(str(time.time_ns()))
            await asyncio.sleep(gap)

    latencies = []
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with websockets.connect(f"ws://127.0.0.1:{port}") as ws:
            for _ in range(messages):
                sent = int(await ws.recv())
                latencies.append((time.time_ns() - sent) / 1e6)
    return latencies
