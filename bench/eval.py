"""`make eval`: the whole loop with a real small instruct model, scored the way a user would judge it.

It starts llama.cpp serving Qwen2.5-Coder 0.5B Instruct behind Ollama's API (bench/llama_ollama.py:
the GGUF's own chat template, tools included, calls parsed as Ollama parses them), then the real
web and brain, and plays scripted asks through a tab, each in a fresh browser session with the same
starting list: add, tick, untick, rename, delete, clear done, several changes in one message,
questions about the list, chit-chat, and comments on clicks. For each it reads what the user sees
(the reply as shown, the list after it) and counts: the asked change happened; a change nobody
asked for; raw call text shown; a reply that parrots the app's own reports; a question answered
with the right items; a reply that claims a change that was not made (`claims_change`).

Three sets, each with its own table: the tuned single asks (`ASKS`, the ones earlier sessions tuned
the prompts against; kept as they are so the figure stays comparable), a held-out set of single
asks in new phrasings (bench/eval_asks_heldout.py, never tuned against), and multi-turn sessions
(`SESSIONS`: many asks in a row in one tab, each judged by the same rules from the list just before
and after it).

    python -m bench.eval [--only add tick held-out session] [--seed 0]     # make eval (opt-in: builds llama.cpp, fetches the model)
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

from bench.llama_ollama import QWEN, QWEN_15
from bench.results import EVAL_SECTIONS, splice
from tests.page import Visitor
from tests.system import ROOT, System, free_port

START = [("buy stamps", False), ("call the plumber", False), ("water the plants", True), ("book the dentist", False)]
RAW_CALL = re.compile(r'"(name|arguments|parameters|calls)"\s*:|<tool_call>|```json|\btool_calls?\b', re.I)
PARROT = re.compile(r"\[app\]|\(app:|app note:|the user (added|marked|renamed|deleted|restored|used)", re.I)
# A reply that says it made a change: "I added …", "I've marked …", "Added #5 …" or "Marked …" opening a
# sentence, "… has been removed", "… is now done", "The todo list is now: …". See `claims_change`.
_VERBS = r"(?:added|marked|ticked|unticked|checked off|crossed off|renamed|changed|updated|edited|deleted|removed|cleared|put)"
CLAIM = re.compile(r"\bI(?:['’]ve| have)?(?: just| now| also| already)?\s+" + _VERBS + r"\b"
                   r"|(?:^|[.!?:,]\s*)" + _VERBS + r"\b"
                   r"|\b(?:has|have) (?:now )?been " + _VERBS + r"\b"
                   r"|\b(?:is|are) now (?:marked|ticked|done|not done|completed|called|named)\b", re.I | re.M)
RECITAL = re.compile(r"(?:\blist (?:is now|now (?:is|reads|looks like|has))|\bupdated (?:todo )?list)\b:?(.*)", re.I | re.S)


@dataclass
class Ask:
    scenario: str
    text: str | None  # None: a click, and the model's comment on it
    added: list[str] = field(default_factory=list)  # words each new todo's title holds
    gone: list[str] = field(default_factory=list)  # words no title may hold after ("@done": every todo done before)
    done: dict[str, bool] = field(default_factory=dict)  # a title's word -> its state after
    was: str | None = None  # a title that must be gone after (renamed)
    mentions: list[str] = field(default_factory=list)  # a question: words the answer holds ("@all", "@open",
    # "@done": the key word (the longest) of each such todo's title on the list before: for a session's questions)
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


# Multi-turn sessions: each is played in ONE browser session and tab, ask after ask, the conversation
# carrying on; every ask is judged by `judge` from the list just before and just after it, so an ask
# about a todo an earlier ask failed to make counts as missed. Written on 2026-12-06 together with the
# held-out set (bench/eval_asks_heldout.py) and, like it, not to be tuned against.
SESSIONS = {
    "session 1": [
        Ask("greeting", "hi there!"),
        Ask("add", "add oat milk to my list", added=["oat milk"]),
        Ask("tick", "tick off the stamps", done={"stamps": True}),
        Ask("question", "what's left to do?", mentions=["@open"]),
        Ask("rename", "rename the plumber one to 'call the electrician'", added=["electrician"], gone=["plumber"]),
        Ask("chit-chat", "thanks! you're quick today"),
        Ask("tick", "I bought the oat milk, tick it off", done={"oat milk": True}),
        Ask("delete", "delete the dentist one", gone=["dentist"]),
        Ask("clear done", "now clear the done ones", gone=["@done"]),
        Ask("question", "what is on my list now?", mentions=["@all"]),
        Ask("chit-chat", "bye, thanks for the help"),
    ],
    "session 2": [
        Ask("several", "add bread and eggs", added=["bread", "eggs"]),
        Ask("question", "which of my todos are done?", mentions=["@done"]),
        Ask("untick", "hmm, untick water the plants, they look dry again", done={"plants": False}),
        Ask("chit-chat", "tell me a joke"),
        Ask("rename", "change 'buy stamps' to 'buy 20 stamps'", added=["20 stamps"], was="buy stamps"),
        Ask("delete", "actually remove the eggs", gone=["eggs"]),
        Ask("several", "mark the bread and the plumber one as done", done={"bread": True, "plumber": True}),
        Ask("question", "what's left to do?", mentions=["@open"]),
        Ask("clear done", "remove everything I've finished", gone=["@done"]),
        Ask("add", "put 'renew passport' on the list", added=["passport"]),
        Ask("chit-chat", "that's all for today, thank you"),
    ],
}


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
    claimed: int = 0  # the reply claims a change that was not made (`claims_change`)
    marked: int = 0  # of those, the chat said under the reply that nothing was changed (brain/claims.py)
    seconds: float = 0.0
    first: float = 0.0  # seconds from the ask to the first thing the reply showed (words or a card)

    def add(self, other: "Score") -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


Todos = dict[str, tuple[str, bool]]  # by the todo's element id: (title, done)


def todos(visitor: Visitor) -> Todos:
    page = BeautifulSoup(visitor.http.get(visitor.base + "/", timeout=5).text, "html.parser")
    return {li["id"]: (li.find(class_="title").get_text(), "done" in li.get("class", [])) for li in page.select("#todo-list li")}


def _expand(words: list[str], before: Todos, key: bool = False) -> list[str]:
    "An ask's words with @all / @open / @done replaced by those todos' titles (`key`: each title's longest word)."
    picks = {"@all": lambda done: True, "@open": lambda done: not done, "@done": lambda done: done}
    out = []
    for w in words:
        if w in picks:
            titles = [t.lower() for t, done in before.values() if picks[w](done)]
            out += [max(t.split(), key=len) for t in titles] if key else titles
        else:
            out.append(w)
    return out


def claims_change(reply: str, before: Todos, after: Todos, cards: list[str] | tuple = ()) -> bool:
    """Does the reply say it changed the list? A past-tense change word about the list ("I added",
    "I've marked", "Added #5" or "Removed" opening a sentence, "has been deleted", "is now done"),
    or a recital of the list as it "now" is that differs from the real list after the ask (a title
    on it missing from the recital, or a title gone from it still recited). Words that repeat an
    action card of the reply word for word ("Deleted #4 'book the dentist'.") are the app's own
    report of a change it made, so they claim nothing more.

    Its limits, on purpose kept simple: it reads words, not meaning, so "I added it yesterday?" or
    a quoted "marked" would count, and a claim in other words ("Done!", "All set", "Sure, oat milk
    is on your list") would not; it does not check WHICH change a reply claims against which change
    was made (see `judge`: a claim counts only when the asked change did not happen or nothing
    changed at all), so "I added bread and eggs" when only bread was added counts, and so would a
    true "I deleted the dentist one" (not a card's words) beside a missed ask; and a recital is
    read only after "list is now" / "updated list" and compared by titles only, not by their done
    marks, so "Here's what is on your list now: oat milk, call the electrician" (invented) is missed."""
    for card in cards:
        reply = reply.replace(card, " ")
    if CLAIM.search(reply):
        return True
    recital = RECITAL.search(reply)
    if not recital:
        return False
    said = recital.group(1).lower()
    now = {t.lower() for t, _ in after.values()}
    return any(t not in said for t in now) or any(t.lower() in said for t, _ in before.values() if t.lower() not in now)


def judge(ask: Ask, before: Todos, after: Todos, reply: str, cards: list[str] | tuple = ()) -> tuple[Score, str]:
    """Score one ask from the list before and after it and the reply as shown; and a word on what happened.

    A change asked about a todo that was not on the list before (in a session, one an earlier ask
    failed to make) did not happen. A claim ("claimed but not done") is a reply that claims a change
    (`claims_change`, `cards`: the texts of the reply's action cards) when the asked change did not
    happen, or, for an ask for none, when nothing changed."""
    gone, mentions = _expand(ask.gone, before), _expand(ask.mentions, before, key=True)
    new = [title.lower() for tid, (title, _) in after.items() if tid not in before]
    retitled = new + [title.lower() for tid, (title, _) in after.items() if tid in before and before[tid][0] != title]
    titles = [title.lower() for title, _ in after.values()]
    meant = lambda words: {tid for tid, (title, _) in before.items() if any(w in title.lower() for w in words)}
    missing = [w for w in [*gone, *ask.done] if not meant([w])] + \
        ([ask.was] if ask.was and ask.was.lower() not in [t.lower() for t, _ in before.values()] else [])
    ok = (not missing
          and all(any(w in t for t in retitled) for w in ask.added)
          and not any(w in t for w in gone for t in titles)
          and (ask.was or "").lower() not in titles
          and all(tid in after and after[tid][1] == state for w, state in ask.done.items() for tid in meant([w])))
    kept = set(before) - meant([*gone, *ask.done, *([ask.was.lower()] if ask.was else [])])
    wrong = after != before if not ask.changes else any(after.get(tid) != before[tid] for tid in kept) or len(new) > len(ask.added)
    claimed = claims_change(reply, before, after, cards) and ((ask.changes and not ok) or after == before)
    s = Score(asked=1, changes=int(ask.changes), happened=int(ask.changes and ok), wrong=int(wrong),
              raw=int(bool(RAW_CALL.search(reply))), parrot=int(bool(PARROT.search(reply))),
              questions=int(bool(mentions)), answered=int(bool(mentions) and all(w in reply.lower() for w in mentions)),
              claimed=int(claimed))
    return s, (("ok" if ok or not ask.changes else "MISSED") + (" WRONG" if wrong else "") + (" CLAIMED" if claimed else "")
               + (f" (not on the list before: {', '.join(missing)})" if missing else ""))


def _start(url: str) -> tuple[Visitor, dict[str, int]]:
    "A fresh browser session holding the starting list."
    visitor = Visitor(url)
    ids = {}
    for title, done in START:
        ids[title] = visitor.add_todo(title)
        if done:
            visitor.htmx("POST", f"/todos/{ids[title]}/toggle").raise_for_status()
    return visitor, ids


def _log_line(label: str, ask: Ask, verdict: str, reply, after: Todos) -> str:
    shown = (f"status {reply.status}; " if reply.status != "done" else "") + \
        (f"note {reply.note[:120]!r}; " if not reply.text.strip() and not reply.cards else "")  # an empty reply: its size
    return (f"[{label}] {ask.text or 'click: ' + ' '.join(ask.click)!r} -> {verdict}; "
            f"cards {[c for c, _ in reply.cards]}; {shown}reply {reply.text[:160]!r}; list {list(after.values())}")


def play(url: str, ask: Ask, log, label: str | None = None) -> Score:
    visitor, ids = _start(url)
    try:
        tab = visitor.open_tab()
        before = todos(visitor)
        started = time.monotonic()
        if ask.text is not None:
            tab.send(ask.text)
            first = _until_shown(tab, 1, started)
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
        score, verdict = judge(ask, before, after, reply.text, [c for c, _ in reply.cards])
        score.seconds = time.monotonic() - started
        score.first = first if ask.text is not None else score.seconds
        score.marked = int(score.claimed and _marked(list(tab.bubbles.values())))
        log(_log_line(label or ask.scenario, ask, verdict + (" (marked)" if score.marked else ""), reply, after))
        return score
    finally:
        visitor.close()


def _marked(bubbles) -> bool:
    "Whether the chat said, under a reply among these, that it changed nothing it claimed (brain/claims.py)."
    return any(b.role == "note" and b.text.startswith("Nothing was changed") for b in bubbles)


def _until_shown(tab, n: int, started: float) -> float:
    "Seconds from `started` until the reply to the tab's n-th message shows something: words, a card, or its end."
    def shown(t):
        bubbles = list(t.bubbles.values())
        users = [i for i, b in enumerate(bubbles) if b.role == "user"]
        return len(users) >= n and any(b.role == "reply" and (b.text.strip() or b.cards or b.status in ("done", "failed"))
                                       for b in bubbles[users[n - 1] + 1:])
    tab.wait(shown, timeout=300, what=f"the reply to message {n} showing something")
    return time.monotonic() - started


def _answered(tab, n: int):
    "The final reply after the tab's n-th message of the user, once there is one."
    bubbles = list(tab.bubbles.values())
    users = [i for i, b in enumerate(bubbles) if b.role == "user"]
    if len(users) < n:
        return None
    return next((b for b in bubbles[users[n - 1] + 1:] if b.role == "reply" and b.status in ("done", "failed", "interrupted")), None)


def play_session(url: str, name: str, asks: list[Ask], log) -> Score:
    "Asks in a row in one browser session and tab, each judged from the list just before and after it."
    visitor, _ = _start(url)
    total = Score()
    try:
        tab = visitor.open_tab()
        for n, ask in enumerate(asks, 1):
            before = todos(visitor)
            started = time.monotonic()
            tab.send(ask.text)
            first = _until_shown(tab, n, started)
            reply = tab.wait(lambda t: _answered(t, n), timeout=300, what=f"the reply to ask {n}")
            after = todos(visitor)
            score, verdict = judge(ask, before, after, reply.text, [c for c, _ in reply.cards])
            score.seconds, score.first = time.monotonic() - started, first
            bubbles = list(tab.bubbles.values())
            score.marked = int(score.claimed and _marked(bubbles[[i for i, b in enumerate(bubbles) if b.role == "user"][n - 1]:]))
            log(_log_line(f"{name} #{n} {ask.scenario}", ask, verdict + (" (marked)" if score.marked else ""), reply, after))
            total.add(score)
        return total
    finally:
        visitor.close()


def table(scores: dict[str, Score], total_name: str = "all") -> list[str]:
    rows = ["| scenario | asks | asked change happened | wrong change made | raw call text shown | parrots the app | "
            "question answered with the right items | claimed but not done | of which marked | s to the first words or card | "
            "s per ask |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    total = Score()
    for name, s in [*scores.items(), (total_name, total)]:
        if s is not total:
            total.add(s)
        rows.append(f"| {name} | {s.asked} | {f'{s.happened}/{s.changes}' if s.changes else '–'} | {s.wrong} | {s.raw} | "
                    f"{s.parrot} | {f'{s.answered}/{s.questions}' if s.questions else '–'} | {s.claimed} | {s.marked} | "
                    f"{s.first / s.asked if s.asked else 0:.1f} | "
                    f"{s.seconds / s.asked if s.asked else 0:.1f} |")
    return rows


def held_out() -> list[Ask]:
    from bench.eval_asks_heldout import ASKS as HELD_OUT  # imported late: that file imports Ask from here
    return HELD_OUT


def select(only: list[str] | None) -> tuple[list[Ask], list[Ask], dict[str, list[Ask]]]:
    """What `--only` picks: tuned scenarios by name (add, tick, …); "held-out" (all of it) or
    "held-out:add"; "session" (all of them) or "session1" / "session-1". Nothing: everything."""
    if not only:
        return list(ASKS), held_out(), dict(SESSIONS)
    words = [w.lower() for w in only]
    tuned = [a for a in ASKS if a.scenario in words]
    held = [a for a in held_out() if "held-out" in words or f"held-out:{a.scenario}" in words]
    picked = {n for w in words if (m := re.fullmatch(r"session[ -]?(\d+)", w)) for n in [f"session {m.group(1)}"]}
    sessions = {name: asks for name, asks in SESSIONS.items() if "session" in words or name in picked}
    return tuned, held, sessions


MODES = {"native": "native tool calling (MODEL_TOOL_MODE=native)",
         "decide": "a decision held to the tools, then words (MODEL_TOOL_MODE=decide, what the default `auto` picks for this model)"}


def run_mode(port: int, model: str, mode: str, asks: list[Ask], held: list[Ask], sessions: dict[str, list[Ask]],
             log) -> list[tuple]:
    "Every ask against a fresh web and brain in `mode`: the three tables' (title, rows)."
    scores: dict[str, Score] = {}
    held_scores: dict[str, Score] = {}
    session_scores: dict[str, Score] = {}
    with tempfile.TemporaryDirectory() as tmp:
        system = System(Path(tmp), f"http://127.0.0.1:{port}", LOG_LEVEL="WARNING", OLLAMA_MODEL=model,
                        OLLAMA_NUM_CTX=4096, COMMENT_DELAY_S=1.5, BUS_HEARTBEAT_S=1, MODEL_TOOL_MODE=mode).start()
        try:
            system.wait_ready(300)
            for ask in asks:
                scores.setdefault(ask.scenario, Score()).add(play(system.url, ask, log, f"{mode}: {ask.scenario}"))
            for ask in held:
                held_scores.setdefault(ask.scenario, Score()).add(play(system.url, ask, log, f"{mode}: held-out: {ask.scenario}"))
            for name, session in sessions.items():
                session_scores[name] = play_session(system.url, name, session, lambda line: log(f"{mode}: {line}"))
        finally:
            system.stop_all()
    return [("Tuned single asks (the set earlier changes were tuned against)", table(scores) if scores else []),
            ("Held-out single asks (bench/eval_asks_heldout.py: new phrasings, never tuned against)",
             table({f"held-out: {k}": v for k, v in held_scores.items()}, "held-out: all") if held_scores else []),
            ("Multi-turn sessions (each in one tab, every ask judged from the list just before and after it)",
             table(session_scores, "all sessions") if session_scores else [])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="*",
                        help="scenarios to play: add, tick, …, held-out, held-out:add, session, session1 (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="the engine's sampling seed (Ollama's default sampling otherwise)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is")
    parser.add_argument("--mode", nargs="*", choices=list(MODES), default=list(MODES),
                        help="the brain's MODEL_TOOL_MODE, one run each (default: both)")
    parser.add_argument("--model", choices=[QWEN, QWEN_15], default=QWEN,
                        help="the GGUF served (bench/qwen_gguf.py); the 1.5B is 2-3 times slower")
    args = parser.parse_args()
    asks, held, sessions = select(args.only)
    port = free_port()
    engine = subprocess.Popen([sys.executable, "-m", "bench.llama_ollama", "--port", str(port), "--model", args.model,
                               "--num-ctx", "4096", "--max-tokens", "160", "--seed", str(args.seed)], cwd=ROOT)
    try:
        runs = {mode: run_mode(port, args.model, mode, asks, held, sessions, lambda line: print(line, flush=True))
                for mode in args.mode}
    finally:
        engine.terminate()
        engine.wait()
    for mode, parts in runs.items():
        for title, rows in parts:
            if rows:
                print(f"\n{MODES[mode]}: {title}\n" + "\n".join(rows))
    if not args.no_write and not args.only and set(args.mode) == set(MODES):
        write(args.model, args.seed, runs, held, sessions)


def write(model: str, seed: int, runs: dict[str, list[tuple]], held: list[Ask], sessions: dict[str, list[Ask]]) -> None:
    """BENCHMARKS.md's section for the model (the 0.5B's, with what was tried, bench/EVAL_NOTES.md;
    the 1.5B's of its own), from a run of every ask."""
    start = ", ".join(f"'{t}'{' (done)' if d else ''}" for t, d in START)
    modes = " and ".join(f"MODEL_TOOL_MODE={m}" for m in runs)
    splice(EVAL_SECTIONS[model], "\n".join([
        f"### Real-model evaluation (`make eval`: {model} under llama.cpp, {modes}, seed {seed}, "
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC)", "",
        "Each single ask in a fresh session with the list " + start + ". A *comment* is the model's reply to a click. "
        "*Claimed but not done*: the reply says it made a change (\"I added …\", \"Marked … as done\", "
        "\"The todo list is now: …\" "
        "reciting another list; words repeating the reply's own action card claim nothing more) while the asked change "
        "did not happen, or nothing changed at all (bench/eval.py `claims_change`); *of which marked*: the chat said "
        "under the reply that nothing was changed (brain/claims.py). *s to the first words or card*: from sending the "
        "ask to the first thing its reply showed, the decision included (this machine, 2 cores). "
        f"The held-out set: {len(held)} asks written once on 2026-12-06. Each session starts from the same list and "
        "plays its asks in a row in one tab: "
        + "; ".join(f"{name}: " + " / ".join(f"\"{a.text}\"" for a in session) for name, session in sessions.items())
        + ". An ask about a todo an earlier ask failed to make counts as missed.", "",
        *[line for mode, parts in runs.items() for title, rows in parts
          for line in (f"#### {MODES[mode]}: {title}", "", *rows, "")],
        (ROOT / "bench" / "EVAL_NOTES.md").read_text() if model == QWEN else ""]))


if __name__ == "__main__":
    main()
