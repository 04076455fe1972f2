"""Process-level soak: several sessions chat steadily through the real web and brains while the
only brain is killed (SIGKILL) at random moments, and while one of two brains is frozen (SIGSTOP,
as a long GC pause or a swapping laptop would) for several heartbeats and resumed.

A session's user behaves as a person would: sends a message, waits for the answer, and would press
Retry if a reply failed. A reply cut off by a brain's death is carried on by the next brain from
what reached the page, so no Retry is ever needed. For every message it then checks:
- exactly one reply ends done, with the whole text the model wrote for it, once (never a Retry);
- no message is lost;
- Ollama answered it to the end no more often than the user attempted it (the fake counts them; a
  generation cut off by a kill is no answer, nor is one Ollama finished while its brain was frozen
  (the brain never read it: the next brain made the reply), and a request to continue a cut-off
  reply is counted apart, as `resumed`);
- the session's last request to Ollama holds every earlier message and answer once, in order.
"""
import os
import random
import signal
import threading
import time

import pytest
import requests

from tests.fake_ollama import Plan
from tests.page import Visitor

SESSIONS = 5
MESSAGES = 16  # per session, with kills
FROZEN_MESSAGES = 24  # per session, with freezes
KILLS = 6
# Both bounds together stay below pytest's 120 s timeout (pyproject.toml), with room for starting the app.
USERS_BOUND_S, TROUBLE_BOUND_S = 80.0, 15.0
THAW_S = 1.0
FINAL = ("done", "failed")  # "interrupted" only until the next brain carries the reply on


def converse(visitor: Visitor, name: str, count: int, log: dict, errors: list) -> None:
    "One user: `count` messages, each sent once the previous is answered, retried if it fails."
    think = random.Random(name)
    try:
        tab = visitor.open_tab()
        for i in range(count):
            text = f"{name} message {i}: how is it going?"
            time.sleep(think.uniform(0, 0.6))  # reading the answer, typing the next message
            tab.send(text)
            user = tab.wait(lambda t: next((k for k, b in t.bubbles.items() if b.role == "user" and b.text == text), None),
                            what=f"{text!r} shown")
            attempts = ["reply-" + user.removeprefix("user-")]
            while True:
                current = attempts[-1]
                tab.wait(lambda t: t.bubbles.get(current) and t.bubbles[current].status in FINAL, timeout=60,
                         what=f"an answer to {text!r}")
                if tab.bubbles[current].status == "done":
                    break
                print(f"{text!r} failed: {tab.bubbles[current].note!r}")  # shown when the test fails
                before = set(tab.reply_ids())
                tab.click("retry", current)
                # The brain may have been only stalled: the reply can still end done by itself.
                new = tab.wait(lambda t: (set(t.reply_ids()) - before) or t.bubbles[current].status == "done",
                               timeout=60, what=f"retry of {text!r}")
                if new is not True:
                    attempts.append(new.pop())
            log[text] = (tab, attempts)
    except Exception as e:  # noqa: BLE001 - reported by the test's own thread
        errors.append(e)


def ports_of(pid: int) -> set[int]:
    "The local TCP ports of a process's sockets (its connections to the fake Ollama among them)."
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with open(f"/proc/{pid}/net/{table}") as f:
            for row in f.readlines()[1:]:
                fields = row.split()
                if fields[9] in inodes:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def worker_pids(system) -> list[int]:
    workers = requests.get(f"{system.url}/api/status", timeout=2).json()["workers"]
    return [w["pid"] for w in workers.values() if w.get("pid")]


def soak(system, fake, count: int, trouble, frozen=()) -> dict:
    "Run the sessions while `trouble(stop_event)` misbehaves; returns the figures and checks every message."
    fake.default = Plan(delay=0.03)  # about 0.4 s a reply: kills and freezes land mid-reply too
    log, errors, visitors = {}, [], [Visitor(system.url) for _ in range(SESSIONS)]
    users = [threading.Thread(target=converse, args=(v, f"s{n}", count, log, errors)) for n, v in enumerate(visitors)]
    done = threading.Event()
    troublemaker = threading.Thread(target=trouble, args=(done,))
    for t in users:
        t.start()
    troublemaker.start()
    deadline = time.monotonic() + USERS_BOUND_S
    for t in users:
        t.join(max(0.0, deadline - time.monotonic()))
    done.set()
    troublemaker.join(TROUBLE_BOUND_S)
    try:
        assert not [f"s{n}" for n, t in enumerate(users) if t.is_alive()], f"every user ends within {USERS_BOUND_S} s"
        assert not errors, errors[0]
        return check(log, fake, count, frozen)
    finally:
        for v in visitors:
            v.close()


def check(log: dict, fake, count: int, frozen: list[tuple[set[int], float, float]] = ()) -> dict:
    """The figures; `frozen` holds each freeze: the brain's ports, when it stopped and when it went on."""
    asked = fake.chat_requests()
    # A brain that wakes goes on reading what Ollama sent meanwhile, then learns at its next word
    # that the session moved (a revoke): within a second, however loaded the machine.
    unread = {i for i, (port, at) in enumerate(fake.answered_to)
              if any(port in ports and start <= at <= end + THAW_S for ports, start, end in frozen)}

    def last_user(body):
        return next((m["content"] for m in reversed(body["messages"]) if m["role"] == "user"), None)

    def continues(body):
        return body["messages"][-1]["role"] == "assistant"

    figures = dict(messages=len(log), lost=SESSIONS * count - len(log), retries=0, doubled=0, broken=0, garbled=0,
                   resumed=sum(1 for body in asked if continues(body)), unread=len(unread))
    for text, (tab, attempts) in log.items():
        statuses = [tab.bubbles[a].status for a in attempts]
        assert statuses == ["retried"] * (len(attempts) - 1) + ["done"], (text, statuses)
        figures["retries"] += len(attempts) - 1
        made = sum(1 for i, body in enumerate(fake.answered)
                   if last_user(body) == text and not continues(body) and i not in unread)
        figures["doubled"] += max(0, made - len(attempts))
        if tab.bubbles[attempts[-1]].text not in fake.generated:  # a whole reply as the model wrote it, once
            figures["garbled"] += 1
            print(f"{text!r}: {tab.bubbles[attempts[-1]].text!r} is no reply the model wrote")
    for n in range(SESSIONS):
        texts = [f"s{n} message {i}: how is it going?" for i in range(count)]
        tab = log[texts[-1]][0]
        answers = [tab.bubbles[log[t][1][-1]].text for t in texts[:-1]]
        last = [body for body in asked if last_user(body) == texts[-1]][-1]["messages"]
        said = [m["content"] for m in last if m["role"] == "user" and not m["content"].startswith("App note:")]
        replied = [m["content"] for m in last if m["role"] == "assistant"]
        if said != texts or replied != answers:
            figures["broken"] += 1
            print(f"s{n}: context of the last request\n  users {said}\n  replies {replied}\n  expected {answers}")
    return figures


@pytest.mark.env(BRAIN_PARALLEL=4)
def test_soak_kill_9_of_the_only_brain_at_random_moments(system, fake):
    rng = random.Random(12)
    kills = []

    def kill(stop: threading.Event) -> None:
        # A few kills, each once the new worker has served for a moment (the supervisor waits
        # longer after each quick death, up to 5 s).
        while len(kills) < KILLS and not stop.is_set():
            system.wait_ready(30)
            if stop.wait(rng.uniform(0.3, 1.5)):
                return
            pids = worker_pids(system)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                kills.append(pids[0])

    figures = soak(system, fake, MESSAGES, kill)
    print(f"soak with kills: {figures}, kills {len(kills)}")
    assert len(kills) == KILLS, "the soak must have killed the brain while the users chatted"
    assert figures["resumed"], "replies were cut off and carried on"
    assert figures | dict(resumed=0, unread=0) == dict(messages=SESSIONS * MESSAGES, lost=0, retries=0, doubled=0, broken=0,
                                             garbled=0, resumed=0, unread=0)


@pytest.mark.env(BRAIN_PARALLEL=4)
def test_soak_two_brains_one_frozen_for_several_heartbeats_at_a_time(system, fake):
    system.start_copy("brain2", of="brain")
    system.wait_status(lambda s: [w["ready"] for w in s["workers"].values()] == [True, True])
    rng = random.Random(7)
    freezes = []

    def freeze(stop: threading.Event) -> None:
        while not stop.wait(rng.uniform(0.5, 1.5)):
            pid = rng.choice(worker_pids(system))
            os.kill(pid, signal.SIGSTOP)
            stopped, ports = time.monotonic(), ports_of(pid)
            time.sleep(rng.uniform(1.5, 3.0))  # 5 to 10 heartbeats of 0.3 s: judged lost after 3
            os.kill(pid, signal.SIGCONT)
            freezes.append((ports, stopped, time.monotonic()))
            system.wait_status(lambda s: [w["ready"] for w in s["workers"].values()] == [True, True], 30)

    figures = soak(system, fake, FROZEN_MESSAGES, freeze, freezes)
    web = system.log("web")
    fencing = {what: web.count(line) for what, line in (("moves", "moves from brain"), ("revoked", "revoked the claim"),
                                                         ("ignored", "no longer holds"))}
    print(f"soak with freezes: {figures}, freezes {len(freezes)}, {fencing}")
    assert len(freezes) >= 4, "the soak must have frozen a brain several times"
    assert fencing["moves"], "sessions did move while a brain was frozen"
    assert figures | dict(resumed=0, unread=0) == dict(messages=SESSIONS * FROZEN_MESSAGES, lost=0, retries=0, doubled=0,
                                             broken=0, garbled=0, resumed=0, unread=0)
