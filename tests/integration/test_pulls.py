"""Process-level: pulls through the real web, bus and brain against the fake Ollama. A pull that
breaks or whose brain dies ends in one line, both processes keep going, and pulling again works."""
import json
import os
import re
import signal

from bs4 import BeautifulSoup

from tests.fake_ollama import PullPlan


def pull_line(tab) -> str:
    "The text of the last pull the tab was shown, as a person reads it."
    for frame in reversed(tab.frames):
        for pulls in reversed(BeautifulSoup(frame, "html.parser").find_all(id="pulls")):  # a frame may carry several
            if pulls.find(class_="pull"):
                return pulls.find(class_="pull").get_text(" ", strip=True)
    return ""


def press_pull(tab, model: str) -> None:
    tab.send_raw(json.dumps({"pull": model, "HEADERS": {"HX-Request": "true"}}))


def test_a_pull_that_breaks_is_told_then_pulling_again_works_and_the_chat_still_answers(system, visitor, fake):
    tab = visitor.open_tab()
    fake.pull_plan = PullPlan(delay=0.01, fault="break")
    press_pull(tab, "qwen3:4b")
    tab.wait(lambda t: "broke" in pull_line(t), what="the broken pull told")
    assert pull_line(tab) == "The connection to Ollama broke while pulling 'qwen3:4b'. Pull again to resume."

    fake.pull_plan = PullPlan(delay=0.01)
    press_pull(tab, "qwen3:4b")
    tab.wait(lambda t: pull_line(t) == "qwen3:4b is pulled.", what="pulled")
    tab.wait(lambda t: "qwen3:4b" in t.picker, what="the picker updated")
    tab.send("still there?")
    assert tab.wait(lambda t: t.finished(1))[0].status == "done"


def test_a_pull_whose_brain_dies_ends_in_one_line_and_the_next_brain_pulls(system, visitor, fake):
    tab = visitor.open_tab()
    fake.pull_plan = PullPlan(steps=200, delay=0.05)
    press_pull(tab, "mistral")
    tab.wait(lambda t: re.match(r"Pulling mistral pulling [0-9a-f]{12}", pull_line(t)), what="the pull under way")
    os.kill(system.worker_pid(), signal.SIGKILL)
    tab.wait(lambda t: pull_line(t) == "The brain stopped during the pull of mistral; press Pull to resume it.",
             what="the pull ended with its brain")
    system.wait_ready()
    fake.pull_plan = PullPlan(delay=0.01)
    press_pull(tab, "mistral")
    tab.wait(lambda t: pull_line(t) == "mistral is pulled.", what="pulled by the new brain")
    assert "mistral:latest" in fake.models
