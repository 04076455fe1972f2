"""First-token time against conversation length: a plain chat turn, and a chat turn after a todo
change, sent at once (the change rides with it) or after a person's typing time (the brain has
warmed the prompt cache with the change meanwhile), through the whole system.

The engine behind it is the tests' fake Ollama with its prompt-cache model: it evaluates only what
follows the longest prefix a prompt shares with one of its slots, spending `prompt_ms` per token
evaluated and `token_ms` per token generated (the first one included). `--engine URL` points the
same measurement at a real server that speaks Ollama's API instead (see bench/llama_ollama.py).
"""
import statistics
import subprocess
import sys
import time

from bench.llama_ollama import GEMMA as MODEL
from tests.fake_ollama import FakeOllama, Plan
from tests.page import Tab, Visitor
from tests.system import ROOT, System, free_port


def first_token_ms(tab: Tab, send) -> float:
    "Send with `send()`, return the milliseconds until the reply's first words reach the tab."
    before = set(tab.reply_ids())
    started = time.monotonic()
    send()
    new = tab.wait(lambda t: [r for r in t.reply_ids() if r not in before and t.bubbles[r].text],
                   timeout=120, what="first words")
    elapsed = (time.monotonic() - started) * 1000
    tab.wait(lambda t: t.bubbles[new[-1]].status in ("done", "failed", "stopped"), timeout=120)
    return elapsed


def conversation_rows(url: str, lengths: list[int], repeats: int, typing_s: float,
                      fake: FakeOllama | None) -> list[tuple[str, str]]:
    rows = []
    visitor = Visitor(url)
    tab = visitor.open_tab()
    turns, todo = 0, 0

    def after_todo(gap: float):
        nonlocal todo
        todo += 1
        visitor.add_todo(f"errand number {todo}")
        time.sleep(gap)  # a person types their message after the click
        return first_token_ms(tab, lambda: tab.send("I added one; what now?"))

    try:
        for length in lengths:
            while turns < length:  # a conversation with a todo change every third turn
                if turns % 3 == 2:
                    todo += 1
                    visitor.add_todo(f"errand number {todo}")
                first_token_ms(tab, lambda n=turns: tab.send(f"turn {n}: what should I tackle next, and why?"))
                turns += 1
            plain, at_once, typed, cost = [], [], [], {}
            for _ in range(repeats):
                plain.append(first_token_ms(tab, lambda: tab.send("and what about after that?")))
                cost.setdefault("plain", fake.prompts[-1] if fake else None)
                at_once.append(after_todo(0))
                cost.setdefault("at once", fake.prompts[-1] if fake else None)
                typed.append(after_todo(typing_s))
                cost.setdefault("typed", fake.prompts[-1] if fake else None)
                turns += 3
            p, a, t = (statistics.median(x) for x in (plain, at_once, typed))
            evaluated = ""
            if fake:
                evaluated = "; prompt tokens evaluated / in the prompt: " + ", ".join(
                    f"{c.evaluated} / {c.tokens}" for c in cost.values())
            rows.append((f"at turn {length}: first token ms, plain turn / sent at once after a todo change / "
                         f"sent {typing_s:g} s after it (median of {repeats})",
                         f"{p:.0f} / {a:.0f} / {t:.0f} (×{a / p:.2f} / ×{t / p:.2f}{evaluated})"))
    finally:
        visitor.close()
    return rows


def run_with_fake(workdir, lengths: list[int], repeats: int, typing_s: float, prompt_ms: float,
                  token_ms: float) -> list[tuple[str, str]]:
    fake = FakeOllama(default=Plan(chunks=["Sure", ",", " fine", "."], delay=token_ms / 1000)).start()
    fake.prompt_s_per_token = prompt_ms / 1000
    system = System(workdir, fake.url, LOG_LEVEL="WARNING", COMMENT_DELAY_S=1.5).start()
    try:
        system.wait_ready(60)
        rows = conversation_rows(system.url, lengths, repeats, typing_s, fake)
        whole = fake.prompts[-1].tokens * prompt_ms
        rows.append(("for scale: evaluating the last prompt whole (ms)", f"{whole:.0f} ({fake.prompts[-1].tokens} tokens)"))
        return rows
    finally:
        system.stop_all()
        fake.stop()


def run_with_llama(workdir, lengths: list[int], repeats: int, typing_s: float) -> list[tuple[str, str]]:
    "The same rows on llama.cpp (bench/llama_ollama.py), started as a process of its own."
    port = free_port()
    engine = subprocess.Popen([sys.executable, "-m", "bench.llama_ollama", "--port", str(port)], cwd=ROOT,
                              stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    # Native calling, as these rows have always measured: a plain chat turn (MODEL_TOOL_MODE=auto would decide
    # first for this 270M model, and `make eval` measures that mode with a model that can follow it).
    system = System(workdir, url, LOG_LEVEL="WARNING", COMMENT_DELAY_S=1.5, OLLAMA_MODEL=MODEL,
                    MODEL_TOOL_MODE="native").start()
    try:
        system.wait_ready(120)
        return conversation_rows(system.url, lengths, repeats, typing_s, None)
    finally:
        system.stop_all()
        engine.terminate()
        engine.wait()
