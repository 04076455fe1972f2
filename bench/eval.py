"""`make eval`: the whole loop with a real small instruct model, scored the way a user would judge it.

It starts llama.cpp serving Qwen2.5-Coder 0.5B Instruct behind Ollama's API (bench/llama_ollama.py:
the GGUF's own chat template, tools included, calls parsed as Ollama parses them), then the real
web and brain, and plays scripted asks through a tab, each in a fresh browser session with the same
starting list: add, tick, untick, rename, delete, clear done, several changes in one message,
questions about the list, chit-chat, and comments on clicks. For each it reads what the user sees
(the reply as shown, the list after it) and counts: the asked change happened; a change nobody
asked for; raw call text shown; a reply that parrots the app's own reports; a question answered
with the right items. It prints a table per scenario and writes it into BENCHMARKS.md.

    python -m bench.eval [--only add tick] [--seed 0]     # make eval (opt-in: builds llama.cpp, fetches the model)
"""
import argparse
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bs4 import BeautifulSoup

from bench.llama_ollama import QWEN
from bench.results import splice
from tests.page import Visitor
from tests.system import ROOT, System, free_port

START = [("buy stamps", False), ("call the plumber", False), ("water the plants", True), ("book the dentist", False)]
RAW_CALL = re.compile(r'"(name|arguments|parameters)"\s*:|<tool_call>|```json|\btool_calls?\b', re.I)
PARROT = re.compile(r"\[app\]|\(app:|app note:|the user (added|marked|renamed|deleted|restored|used)", re.I)


@dataclass
class Ask:
    scenario: str
    text: str | None  # None: a click, and the model's comment on it
    added: list[str] = field(default_factory=list)  # words each new todo's title holds
    gone: list[str] = field(default_factory=list)  # words no title may hold after
    done: dict[str, bool] = field(default_factory=dict)  # a title's word -> its state after
    was: str | None = None  # a title that must be gone after (renamed)
    mentions: list[str] = field(default_factory=list)  # a question: words the answer holds
    click: tuple[str, str] | None = None  # (method, path word) for a comment scenario

    @property
    def changes(self) -> bool:
        return bool(self.added or self.gone or self.done or self.was)


ASKS = [
    Ask("add", "add oat milk to my list", added=["oat milk"]),
    Ask("add", "remind me to pick up the dry cleaning", added=["dry cleaning"]),
    Ask("add", "put 'renew passport' on the list", added=["passport"]),
    Ask("tick", "tick off the stamps", done={"stamps": True}),
    Ask("tick", "I called the plumber", done={"plumber": True}),
    Ask("tick", "mark 'book the dentist' as done", done={"dentist": True}),
    Ask("untick", "untick water the plants", done={"plants": False}),
    Ask("untick", "actually I haven't watered the plants yet", done={"plants": False}),
    Ask("untick", "mark the plants one as not done", done={"plants": False}),
    Ask("rename", "rename the plumber one to 'call the electrician'", added=["electrician"], gone=["plumber"]),
    Ask("rename", "change 'buy stamps' to 'buy 20 stamps'", added=["20 stamps"], was="buy stamps"),
    Ask("rename", "the dentist one should say 'book the dentist for Friday'", added=["friday"], was="book the dentist"),
    Ask("delete", "delete the dentist one", gone=["dentist"]),
    Ask("delete", "remove buy stamps from my list", gone=["stamps"]),
    Ask("delete", "I don't need to call the plumber any more, take it off", gone=["plumber"]),
    Ask("clear done", "clear the done ones", gone=["plants"]),
    Ask("clear done", "remove everything I've finished", gone=["plants"]),
    Ask("clear done", "clean up the completed todos", gone=["plants"]),
    Ask("several", "add bread and eggs", added=["bread", "eggs"]),
    Ask("several", "tick off the stamps and the plumber", done={"stamps": True, "plumber": True}),
    Ask("several", "add oat milk and delete the dentist one", added=["oat milk"], gone=["dentist"]),
    Ask("question", "what is on my list?", mentions=["stamps", "plumber", "plants", "dentist"]),
    Ask("question", "what's left to do?", mentions=["stamps", "plumber", "dentist"]),
    Ask("question", "which of my todos are done?", mentions=["plants"]),
    Ask("chit-chat", "hi! how is your day going?"),
    Ask("chit-chat", "thanks, you're the best"),
    Ask("chit-chat", "tell me a joke"),
    Ask("comment", None, click=("POST", "feed the cat")),
    Ask("comment", None, click=("toggle", "stamps")),
]


@dataclass
class Score:
    asked: int = 0
    changes: int = 0  # asks for a change
    happened: int = 0
    wrong: int = 0
    raw: int = 0
    parrot: int = 0
    questions: int = 0
    answered: int = 0
    seconds: float = 0.0

    def add(self, other: "Score") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


Todos = dict[str, tuple[str, bool]]  # by the todo's element id: (title, done)


def todos(visitor: Visitor) -> Todos:
    page = BeautifulSoup(visitor.http.get(visitor.base + "/", timeout=5).text, "html.parser")
    return {li["id"]: (li.find(class_="title").get_text(), "done" in li.get("class", [])) for li in page.select("#todo-list li")}


def judge(ask: Ask, before: Todos, after: Todos, reply: str) -> tuple[Score, str]:
    "Score one ask from the list before and after it and the reply as shown; and a word on what happened."
    new = [title.lower() for tid, (title, _) in after.items() if tid not in before]
    retitled = new + [title.lower() for tid, (title, _) in after.items() if tid in before and before[tid][0] != title]
    titles = [title.lower() for title, _ in after.values()]
    meant = lambda words: {tid for tid, (title, _) in before.items() if any(w in title.lower() for w in words)}
    ok = (all(any(w in t for t in retitled) for w in ask.added)
          and not any(w in t for w in ask.gone for t in titles)
          and (ask.was or "").lower() not in titles
          and all(tid in after and after[tid][1] == state for w, state in ask.done.items() for tid in meant([w])))
    kept = set(before) - meant([*ask.gone, *ask.done, *([ask.was.lower()] if ask.was else [])])
    wrong = after != before if not ask.changes else any(after.get(tid) != before[tid] for tid in kept) or len(new) > len(ask.added)
    s = Score(asked=1, changes=int(ask.changes), happened=int(ask.changes and ok), wrong=int(wrong),
              raw=int(bool(RAW_CALL.search(reply))), parrot=int(bool(PARROT.search(reply))),
              questions=int(bool(ask.mentions)), answered=int(bool(ask.mentions) and all(w in reply.lower() for w in ask.mentions)))
    return s, ("ok" if ok or not ask.changes else "MISSED") + (" WRONG" if wrong else "")


def play(url: str, ask: Ask, log) -> Score:
    visitor = Visitor(url)
    try:
        ids = {}
        for title, done in START:
            ids[title] = visitor.add_todo(title)
            if done:
                visitor.htmx("POST", f"/todos/{ids[title]}/toggle").raise_for_status()
        tab = visitor.open_tab()
        before = todos(visitor)
        started = time.monotonic()
        if ask.text is not None:
            tab.send(ask.text)
        else:
            tab.wait(lambda t: t.finished(1), timeout=300, what="the comment on the starting list")
            method, word = ask.click
            tab.bubbles.clear()
            if method == "POST":
                visitor.add_todo(word)
            else:
                visitor.htmx("POST", f"/todos/{next(i for t, i in ids.items() if word in t)}/toggle").raise_for_status()
            before = todos(visitor)
        final = tab.wait(lambda t: t.finished(1), timeout=300, what="the reply")
        reply = final[-1]
        after = todos(visitor)
        score, verdict = judge(ask, before, after, reply.text)
        score.seconds = time.monotonic() - started
        log(f"[{ask.scenario}] {ask.text or 'click: ' + ' '.join(ask.click)!r} -> {verdict}; "
            f"cards {[c for c, _ in reply.cards]}; reply {reply.text[:160]!r}; list {list(after.values())}")
        return score
    finally:
        visitor.close()


def table(scores: dict[str, Score]) -> list[str]:
    rows = ["| scenario | asks | asked change happened | wrong change made | raw call text shown | parrots the app | "
            "question answered with the right items | s per ask |", "|---|---|---|---|---|---|---|---|"]
    total = Score()
    for name, s in [*scores.items(), ("all", total)]:
        if name != "all":
            total.add(s)
        rows.append(f"| {name} | {s.asked} | {f'{s.happened}/{s.changes}' if s.changes else '–'} | {s.wrong} | {s.raw} | "
                    f"{s.parrot} | {f'{s.answered}/{s.questions}' if s.questions else '–'} | {s.seconds / s.asked:.1f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*", help="scenarios to play (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="the engine's sampling seed (Ollama's default sampling otherwise)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    args = parser.parse_args()
    asks = [a for a in ASKS if not args.only or a.scenario in args.only]
    port = free_port()
    engine = subprocess.Popen([sys.executable, "-m", "bench.llama_ollama", "--port", str(port), "--model", QWEN,
                               "--num-ctx", "4096", "--max-tokens", "160", "--seed", str(args.seed)], cwd=ROOT)
    lines: list[str] = []

    def log(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    with tempfile.TemporaryDirectory() as tmp:
        system = System(Path(tmp), f"http://127.0.0.1:{port}", LOG_LEVEL="WARNING", OLLAMA_MODEL=QWEN,
                        OLLAMA_NUM_CTX=4096, COMMENT_DELAY_S=1.5, BUS_HEARTBEAT_S=1).start()
        scores: dict[str, Score] = {}
        try:
            system.wait_ready(300)
            for ask in asks:
                scores.setdefault(ask.scenario, Score()).add(play(system.url, ask, log))
        finally:
            system.stop_all()
            engine.terminate()
            engine.wait()
    rows = table(scores)
    print("\n".join(rows))
    if not args.no_write and not args.only:
        splice("eval", "\n".join([
            f"### Real-model evaluation (`make eval`: {QWEN} under llama.cpp, seed {args.seed}, "
            f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
            "Each ask in a fresh session with the list " + ", ".join(f"'{t}'{' (done)' if d else ''}" for t, d in START)
            + ". A *comment* is the model's reply to a click.", "", *rows, "",
            (ROOT / "bench" / "EVAL_NOTES.md").read_text()]))


if __name__ == "__main__":
    main()
