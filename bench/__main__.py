"""make bench: what the worker → ZeroMQ → web → WebSocket relay costs, next to its floor.

Starts on loopback a fake Ollama that streams at a set rate (bench/fake_stream.py), the real web
and brain (the Procfile's commands) and many WebSocket clients with session cookies; prints a
table and writes BENCHMARKS.md.

    python -m bench                         # the defaults finish in a few minutes on 2 cores
    python -m bench --sessions 1 10 --rate 20 --chunks 40 --long 10
"""
import argparse
import asyncio
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import requests

from bench import pictures, prompt_cache, results
from bench.clients import Browser, Tally, bare_websocket_hop, bare_zmq_hop, direct_http, percentiles
from tests.system import ROOT, System, free_port

HZ = os.sysconf("SC_CLK_TCK")
# The bench opens sessions by the thousand, as only a script would: above the bound meant for scripts.
MANY_SESSIONS = {"NEW_SESSIONS_RATE": 10**6, "NEW_SESSIONS_BURST": 10**6}
SECTIONS = ["first-token", "prompt-cache", "scaling", "workers", "routing", "fan-out", "second-user", "many-sessions",
            "idle", "restart"]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ms(stats: dict) -> str:
    return f"{stats['p50']:.2f} / {stats['p99']:.2f} / {stats['max']:.1f}"


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows: list[tuple[str, str]] = []
        self.sections: list[str] = []
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-"))
        self.fake_port = free_port()
        self.fake = subprocess.Popen([sys.executable, "-m", "bench.fake_stream", "--port", str(self.fake_port),
                                      "--rate", str(args.rate), "--chunks", str(args.chunks)], cwd=ROOT,
                                     stdout=subprocess.DEVNULL)
        self.fake_url = f"http://127.0.0.1:{self.fake_port}"
        parallel = max(max(args.sessions), 8)
        self.system = System(self.workdir, self.fake_url, BRAIN_PARALLEL=parallel, LOG_LEVEL="WARNING", BUS_HEARTBEAT_S=1.0,
                             COMMENT_DELAY_S=60, **MANY_SESSIONS).start()
        self.system.wait_ready(60)

    @property
    def web_pid(self) -> int:
        return self.system.procs["web"].pid

    def brain_pid(self) -> int:
        return self.system.worker_pid()

    def worker_pids(self) -> list[int]:
        "Every ready brain worker (one, or several with `honcho start -c brain=N`)."
        workers = requests.get(self.system.url + "/api/status", timeout=10).json()["workers"]
        return [w["pid"] for w in workers.values() if w["ready"]]

    def say(self, text: str) -> None:
        print(text, flush=True)

    def close(self) -> None:
        self.system.stop_all()
        self.fake.terminate()
        self.fake.wait()

    async def floor(self) -> None:
        direct, ttft = await direct_http(self.fake_url, self.args.chunks, self.args.rate)
        ttfts = [ttft] + [(await direct_http(self.fake_url, 1, 50))[1] for _ in range(20)]
        self.direct = percentiles(direct.latencies)
        self.direct_ttft = percentiles(ttfts)
        self.zmq = percentiles(await bare_zmq_hop(2000, 0.001))
        self.ws = percentiles(await bare_websocket_hop(2000, 0.001))
        floor_p50 = self.direct["p50"] + self.zmq["p50"] + self.ws["p50"]
        self.section("Floor (same machine, same run)", [
            ("straight from the fake over HTTP, per chunk (ms p50/p99/max)", ms(self.direct)),
            ("one bare ZeroMQ hop (ms)", ms(self.zmq)),
            ("one bare WebSocket hop (ms)", ms(self.ws)),
            ("time to first token straight from the fake (ms)", ms(self.direct_ttft)),
            ("floor of the relay path, p50 (HTTP + ZeroMQ + WebSocket, ms)", f"{floor_p50:.2f}"),
        ])

    def section(self, title: str, rows: list[tuple[str, str]]) -> None:
        self.say(f"\n## {title}")
        width = max(len(r[0]) for r in rows)
        for name, value in rows:
            self.say(f"  {name.ljust(width)}  {value}")
        lines = [f"### {title}", "", "| measure | value |", "|---|---|"] + [f"| {n} | {v} |" for n, v in rows]
        self.sections.append("\n".join(lines))

    async def stream_many(self, sessions: int, tabs_per_session: int = 1) -> dict:
        "Each session asks for one reply at the same moment; every tab of it counts every chunk."
        browsers = await asyncio.gather(*[asyncio.to_thread(Browser, self.system.url) for _ in range(sessions)])
        tabs = [[await b.tab() for _ in range(tabs_per_session)] for b in browsers]
        web0, brain_pids = cpu_seconds(self.web_pid), self.worker_pids()
        brain0, t0 = sum(map(cpu_seconds, brain_pids)), time.monotonic()
        for group in tabs:
            await group[0].ask(self.args.chunks, self.args.rate)
            for other in group[1:]:
                other.watch(Tally(self.args.chunks))
        timeout = self.args.chunks / self.args.rate * 4 + 30
        await asyncio.gather(*[t.read_until_done(timeout) for group in tabs for t in group])
        wall = time.monotonic() - t0
        web_seconds = cpu_seconds(self.web_pid) - web0
        web_cpu = web_seconds / wall * 100
        brain_cpu = (sum(map(cpu_seconds, brain_pids)) - brain0) / wall * 100
        tallies = [t.tally for group in tabs for t in group]
        first = min(t.first_at for t in tallies if t.first_at)
        last = max(t.last_at for t in tallies)
        result = {
            "latency": percentiles([x for t in tallies for x in t.latencies]),
            "ttft": percentiles([(g[0].tally.first_at - g[0].sent_at) * 1000 for g in tabs if g[0].tally.first_at]),
            "chunks": sum(len(t.latencies) for t in tallies),
            "rate": sum(len(t.latencies) for t in tallies) / max(last - first, 1e-9),
            "lost": sum(t.lost for t in tallies) + sum(t.expected - t.next_seq for t in tallies),
            "reordered": sum(t.reordered for t in tallies),
            "incomplete": sum(1 for t in tallies if not t.final_ok),
            "web_cpu": web_cpu, "brain_cpu": brain_cpu,
            "web_us_per_chunk": web_seconds / max(1, sum(len(t.latencies) for t in tallies)) * 1e6,
            "web_rss": rss_mb(self.web_pid), "brain_rss": sum(map(rss_mb, brain_pids)),
        }
        for group in tabs:
            for t in group:
                await t.close()
        return result

    async def first_token(self) -> None:
        "Time to first token, one request at a time, through the system and straight from the fake."
        tab = await (await asyncio.to_thread(Browser, self.system.url)).tab()
        ttfts = []
        for _ in range(20):
            await tab.ask(2, 100)
            await tab.read_until_done(30)
            ttfts.append((tab.tally.first_at - tab.sent_at) * 1000)
        await tab.close()
        system = percentiles(ttfts)
        self.section("Time to first token (20 requests one after another)", [
            ("through the system (ms p50/p99/max)", ms(system)),
            ("straight from the fake over HTTP (ms p50/p99/max)", ms(self.direct_ttft)),
            ("added by the system at p50 (ms)", f"{system['p50'] - self.direct_ttft['p50']:.2f}"),
        ])

    async def scaling(self) -> None:
        rows, self.scaled = [], {}
        for n in self.args.sessions:
            self.say(f"... {n} sessions streaming {self.args.chunks} chunks at {self.args.rate:g}/s each")
            r = await self.stream_many(n)
            self.scaled[n] = r
            added = {k: r["latency"][k] - self.direct[k] for k in ("p50", "p99")}
            rows.append((f"{n} sessions: per-chunk latency ms p50/p99/max",
                         f"{ms(r['latency'])} (added {added['p50']:.2f} / {added['p99']:.2f}; "
                         f"×{r['latency']['p50'] / self.direct['p50']:.1f} at p50)"))
            rows.append((f"{n} sessions: delivered", f"{r['chunks']} chunks, {r['rate']:.0f} chunks/s, "
                         f"lost {r['lost']}, reordered {r['reordered']}, incomplete replies {r['incomplete']}"))
            rows.append((f"{n} sessions: time to first token ms p50/p99/max",
                         f"{ms(r['ttft'])} (added {r['ttft']['p50'] - self.direct_ttft['p50']:.2f} at p50)"))
            rows.append((f"{n} sessions: CPU % web / brain, RSS MB web / brain",
                         f"{r['web_cpu']:.0f} / {r['brain_cpu']:.0f}, {r['web_rss']:.0f} / {r['brain_rss']:.0f}"))
            rows.append((f"{n} sessions: web CPU per chunk delivered (µs)", f"{r['web_us_per_chunk']:.0f}"))
        self.section(f"Concurrent sessions ({self.args.chunks} chunks at {self.args.rate:g}/s each)", rows)

    async def workers(self) -> None:
        "The most concurrent sessions with one worker, then with two on this machine (honcho start -c brain=2)."
        n = max(self.args.sessions)
        scaled = getattr(self, "scaled", {})
        rows = []
        for count in (1, 2):
            if count == 2:
                self.system.start_copy("brain2", of="brain")
                await asyncio.to_thread(self.system.wait_status,
                                        lambda s: sum(w["ready"] for w in s["workers"].values()) == 2, 60)
            self.say(f"... {n} sessions with {count} worker{'s' if count > 1 else ''}")
            r = scaled[n] if count == 1 and n in scaled else await self.stream_many(n)
            rows.append((f"{count} worker{'s' if count > 1 else ''}: chunks/s, lost, reordered",
                         f"{r['rate']:.0f}, {r['lost']}, {r['reordered']} (incomplete replies {r['incomplete']})"))
            rows.append((f"{count} worker{'s' if count > 1 else ''}: per-chunk latency ms p50/p99/max", ms(r["latency"])))
            rows.append((f"{count} worker{'s' if count > 1 else ''}: CPU % web / brains, web CPU per chunk (µs)",
                         f"{r['web_cpu']:.0f} / {r['brain_cpu']:.0f}, {r['web_us_per_chunk']:.0f}"))
        self.system.stop("brain2")
        await asyncio.to_thread(self.system.wait_status, lambda s: len(s["workers"]) == 1, 60)
        offered = n * self.args.rate
        self.section(f"Workers on one machine: {n} concurrent sessions, {offered:,.0f} chunks/s offered", rows)

    async def routing(self) -> None:
        """Two workers of 4 slots and 12 sessions asking at once, 5 times: first-token time with
        load-aware routing and with rendezvous hashing alone (BUS_ROUTING=hash)."""
        rows = []
        for routing in ("load", "hash"):
            self.say(f"... 12 sessions at once on two workers of 4 slots, routing={routing}")
            workdir = Path(tempfile.mkdtemp(prefix=f"bench-routing-{routing}-"))
            system = System(workdir, self.fake_url, BRAIN_PARALLEL=4, BUS_ROUTING=routing, LOG_LEVEL="WARNING",
                            COMMENT_DELAY_S=60, **MANY_SESSIONS).start()
            try:
                system.start_copy("brain2", of="brain")
                await asyncio.to_thread(system.wait_status,
                                        lambda s: [w["ready"] for w in s["workers"].values()] == [True, True], 60)
                ttfts, spread = [], []
                for _ in range(5):
                    browsers = await asyncio.gather(*[asyncio.to_thread(Browser, system.url) for _ in range(12)])
                    tabs = [await b.tab() for b in browsers]
                    await asyncio.gather(*[t.ask(40, 20) for t in tabs])
                    await asyncio.gather(*[t.read_until_done(60) for t in tabs])
                    ttfts += [(t.tally.first_at - t.sent_at) * 1000 for t in tabs if t.tally.first_at]
                    await asyncio.gather(*[t.close() for t in tabs])
                stats = percentiles(ttfts)
                rows.append((f"routing={routing}: first token ms p50/p99/max ({len(ttfts)} replies of 2 s)", ms(stats)))
            finally:
                system.stop_all()
        self.section("Routing under load (two workers of 4 slots, 12 sessions asking at once, 5 rounds)", rows)

    async def fan_out(self) -> None:
        rows = []
        for tabs in self.args.tabs:
            self.say(f"... one session watched by {tabs} tabs")
            r = await self.stream_many(1, tabs)
            rows.append((f"{tabs} tabs: per-chunk latency ms p50/p99/max",
                         f"{ms(r['latency'])}; lost {r['lost']}, reordered {r['reordered']}"))
        self.section("Fan-out: one session, many tabs", rows)

    async def many_sessions(self) -> None:
        "Memory after many sessions have each chatted a little: it must not grow with every session ever seen."
        n, turns, width = self.args.many, self.args.turns, 50
        self.say(f"... {n} sessions chatting {turns} turns each, {width} at a time")
        web_before, brain_before, started = rss_mb(self.web_pid), rss_mb(self.brain_pid()), time.monotonic()

        async def one() -> None:
            tab = await (await asyncio.to_thread(Browser, self.system.url)).tab()
            for _ in range(turns):
                await tab.ask(2, 1000)
                await tab.read_until_done(60)
            await tab.close()

        for i in range(0, n, width):
            await asyncio.gather(*[one() for _ in range(min(width, n - i))])
        took = time.monotonic() - started
        await asyncio.sleep(2)
        self.section(f"Many sessions ({n:,} sessions, {turns} turns each)", [
            ("web RSS after them (MB)", f"{rss_mb(self.web_pid):.0f} (was {web_before:.0f})"),
            ("brain RSS after them (MB)", f"{rss_mb(self.brain_pid()):.0f} (was {brain_before:.0f})"),
            ("time taken (s)", f"{took:.0f} ({n * turns / took:.0f} replies/s)"),
        ])

    async def idle(self) -> None:
        n = self.args.idle
        self.say(f"... {n} idle clients")
        before = rss_mb(self.web_pid)
        browsers = await asyncio.gather(*[asyncio.to_thread(Browser, self.system.url) for _ in range(n)])
        tabs = []
        for i in range(0, n, 50):
            tabs += await asyncio.gather(*[b.tab() for b in browsers[i:i + 50]])
        await asyncio.sleep(2)
        after = rss_mb(self.web_pid)
        clients = requests.get(self.system.url + "/api/status", timeout=10).json()["clients"]
        await asyncio.gather(*[t.close() for t in tabs])
        self.section("Idle cost", [(f"web RSS with {clients} idle clients connected (MB)",
                                    f"{after:.0f} (was {before:.0f} before they connected)")])

    async def prompt_cache(self) -> None:
        a = self.args
        self.say(f"... first token against conversation length ({', '.join(map(str, a.lengths))} turns)")
        rows = await asyncio.to_thread(prompt_cache.run_with_fake, Path(tempfile.mkdtemp(prefix="bench-cache-")),
                                       a.lengths, a.repeats, a.typing_s, a.prompt_ms, a.token_ms)
        self.section(f"Prompt cache: first token against conversation length (fake engine: {a.prompt_ms:g} ms "
                     f"per prompt token evaluated, {a.token_ms:g} ms per token generated)", rows)
        if a.real_engine:
            self.say("... the same on llama.cpp with Gemma 3 270M")
            rows = await asyncio.to_thread(prompt_cache.run_with_llama, Path(tempfile.mkdtemp(prefix="bench-llama-")),
                                           a.lengths, a.repeats, a.typing_s)
            self.section("Prompt cache on a real engine (llama.cpp, Gemma 3 270M Q4_K_M, 8 tokens a reply)", rows)

    async def restart(self) -> None:
        self.say("... kill -9 of the brain")
        browser = await asyncio.to_thread(Browser, self.system.url)
        tab = await browser.tab()
        old = self.brain_pid()
        killed, killed_wall = time.monotonic(), time.time()
        os.kill(old, signal.SIGKILL)
        await tab.ask(5, 50)
        ready = None
        while ready is None and time.monotonic() - killed < 30:
            status = await asyncio.to_thread(requests.get, self.system.url + "/api/status", timeout=5)
            workers = status.json()["workers"]
            if status.json()["status"] == "ready" and old not in [w["pid"] for w in workers.values()]:
                ready = time.monotonic() - killed
            await asyncio.sleep(0.005)
        await tab.read_until_done(30)
        first = tab.tally.first_at - killed_wall if tab.tally.first_at else None
        await tab.close()
        self.section("Brain restart", [
            ("kill -9 → status ready again (s)", f"{ready:.2f}" if ready else "never"),
            ("kill -9 → first chunk of a message sent during the downtime (s)", f"{first:.2f}" if first else "never"),
            ("that message answered completely", str(tab.tally.final_ok)),
        ])

    async def second_user(self) -> None:
        long_chunks = int(self.args.long * self.args.rate)
        self.say(f"... user B during user A's {self.args.long:g}-second reply")
        a = await (await asyncio.to_thread(Browser, self.system.url)).tab()
        b = await (await asyncio.to_thread(Browser, self.system.url)).tab()
        baseline = await self.stream_many(1)
        await a.ask(long_chunks, self.args.rate)
        reading = asyncio.create_task(a.read_until_done(self.args.long * 3 + 30))
        await asyncio.sleep(min(2.0, self.args.long / 4))
        await b.ask(10, 50)
        await b.read_until_done(30)
        loads = []
        for _ in range(10):
            t = time.monotonic()
            await asyncio.to_thread(requests.get, self.system.url + "/", timeout=10)
            loads.append((time.monotonic() - t) * 1000)
        a_streaming = not reading.done()
        await reading
        self.section(f"A second user during a {self.args.long:g}-second reply", [
            ("B's time to first chunk while A streams (ms)", f"{(b.tally.first_at - b.sent_at) * 1000:.1f}"),
            ("time to first chunk with nobody else streaming (ms p50)", f"{baseline['ttft']['p50']:.1f}"),
            ("page load (GET /) while A streams, ms p50/p99/max", ms(percentiles(loads))),
            ("A was still streaming when B was done", str(a_streaming)),
            ("A's reply complete, lost / reordered", f"{a.tally.final_ok}, {a.tally.lost} / {a.tally.reordered}"),
        ])
        await a.close()
        await b.close()

    def write(self) -> None:
        mem = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines()
                    if l.startswith("model name")), platform.processor())
        head = [
            "# Benchmarks", "",
            f"Run by `make bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} cores "
            f"({cpu}), {int(mem.split()[1]) // 1024 // 1024} GiB RAM, Python {platform.python_version()}.",
            f"Command: `{' '.join(['python -m bench', *sys.argv[1:]])}` (flags: defaults unless given).", "",
            "Latencies are in milliseconds, as p50 / p99 / max. *Added* is the system's figure minus the same "
            "percentile read straight from the fake over HTTP in the same run. Every process (fake, web, brain, "
            "clients) shares the same cores, so the figures include their contention.", "", "",
        ]
        notes = Path(ROOT / "bench" / "NOTES.md")
        shown = pictures.draw(getattr(self, "scaled", {}), self.direct, self.direct_ttft, ROOT)
        body = "\n\n".join([*self.sections, *([pictures.markdown(shown)] if shown else []),
                             *filter(None, map(results.section, results.KEPT))])
        tail = ["", "", notes.read_text()] if notes.exists() else []
        (ROOT / "BENCHMARKS.md").write_text("\n".join(head) + body + "\n".join(tail) + "\n")
        self.say(f"\nwrote {ROOT / 'BENCHMARKS.md'}")


async def run(args) -> None:
    bench = Bench(args)
    try:
        await bench.floor()  # every other section compares with it
        steps = {"first-token": bench.first_token, "prompt-cache": bench.prompt_cache, "scaling": bench.scaling,
                 "workers": bench.workers, "routing": bench.routing,
                 "fan-out": bench.fan_out, "second-user": bench.second_user, "many-sessions": bench.many_sessions,
                 "idle": bench.idle,
                 "restart": bench.restart}
        skip = {"prompt-cache": not args.lengths, "fan-out": not args.tabs, "idle": not args.idle,
                "many-sessions": not args.many}
        for name in SECTIONS:
            if name in args.only and not skip.get(name):
                await steps[name]()
        if set(args.only) == set(SECTIONS):
            bench.write()
        else:
            bench.say("\n(a partial run: BENCHMARKS.md is left as it was)")
    finally:
        bench.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 10, 100, 500],
                        help="concurrent sessions to try, each streaming one reply")
    parser.add_argument("--rate", type=float, default=40.0, help="chunks per second of each reply")
    parser.add_argument("--chunks", type=int, default=200, help="chunks per reply")
    parser.add_argument("--tabs", type=int, nargs="*", default=[1, 10, 100], help="tabs watching one session")
    parser.add_argument("--idle", type=int, default=1000, help="idle clients for the memory figure (0: skip)")
    parser.add_argument("--long", type=float, default=30.0, help="seconds of user A's long reply")
    parser.add_argument("--lengths", type=int, nargs="*", default=[5, 15, 30],
                        help="conversation lengths (turns) for the prompt-cache rows (none: skip)")
    parser.add_argument("--repeats", type=int, default=7, help="measurements per prompt-cache row (their median)")
    parser.add_argument("--typing-s", type=float, default=1.0,
                        help="seconds between a todo click and the chat message after it (a person typing)")
    parser.add_argument("--prompt-ms", type=float, default=1.5, help="fake engine: ms per prompt token evaluated")
    parser.add_argument("--token-ms", type=float, default=25.0, help="fake engine: ms per token generated")
    parser.add_argument("--many", type=int, default=20_000, help="sessions for the memory row (0: skip)")
    parser.add_argument("--turns", type=int, default=2, help="turns each of those sessions chats")
    parser.add_argument("--real-engine", action="store_true",
                        help="also run the prompt-cache rows on llama.cpp (needs the llama extra: make bench-llama)")
    parser.add_argument("--only", nargs="*", choices=SECTIONS, default=SECTIONS, help="run only these sections")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the web and the clients hold many sockets
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
