"""What the brain knows of Ollama (brain/ollama_watch.py), with a scripted Ollama: reachable or
not, its models, the default model loaded once each time Ollama comes up, every change announced
once, checks that come quickly while something is wrong, and a failed request that changes nothing
but what a check finds, however many ask at once."""
import asyncio
import time
from types import SimpleNamespace

import pytest

from brain import ollama_watch
from brain.ollama_client import OllamaFailed, OllamaUnavailable
from brain.ollama_watch import OllamaWatch, Reach
from tests.brain.test_engine import drained


class TurnedLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves on when the test turns it (`turn`), and otherwise, as a real
    clock does between two readings, by a nanosecond a reading: code that waits for less than the
    loop's clock resolution (a timer re-armed for what is left of a wait) is not stuck for ever."""

    def __init__(self):
        super().__init__()
        self.now = 0.0

    def time(self):
        self.now += 1e-9
        return self.now


async def turn(seconds):
    """Move the running TurnedLoop's clock on by `seconds`: each timer falls due in its turn, and
    what it sets off on the loop runs before the clock moves on."""
    loop = asyncio.get_running_loop()
    end = loop.now + seconds
    while True:
        await drained()
        due = min((h.when() for h in loop._scheduled if not h.cancelled()), default=end + 1)
        if due > end:
            break
        loop.now = max(loop.now, due)
    loop.now = max(loop.now, end)
    await drained()


@pytest.fixture
def turned(monkeypatch):
    "turned(main): run main() on a TurnedLoop, whose clock is the watch's too (its time.monotonic)."
    def run(main):
        loop = TurnedLoop()
        monkeypatch.setattr(ollama_watch, "time", SimpleNamespace(monotonic=loop.time))
        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            runner.run(main())
    return run


class FakeOllama:
    "Ollama as the watch sees it; `down` makes every call fail as an unreachable Ollama does."

    base_url = "http://127.0.0.1:11434"

    def __init__(self, models=("llama3.2:latest",)):
        self.down, self.tags, self.loads, self.load_fails, self.calls = False, list(models), [], 0, 0
        self.watch, self.slow = None, 0.0

    def version(self):
        self.calls += 1
        if self.slow:
            time.sleep(self.slow)
        if self.down:
            raise OllamaUnavailable("connection refused")
        return "0.9.0"

    def models(self):
        if self.down:
            raise OllamaUnavailable("connection refused")
        return list(self.tags)

    def load(self, model, *, options=None, keep_alive=None):
        self.loads.append((model, options, keep_alive, self.watch.loading))
        if self.load_fails:
            self.load_fails -= 1
            raise OllamaFailed("CUDA out of memory")


def make(client, check_s=2.0):
    said = []

    async def blocking(fn, *args, **kw):
        return fn(*args, **kw)

    watch = OllamaWatch(client, "llama3.2", {"num_ctx": 8192}, "30m", check_s, blocking,
                        changed=lambda: said.append((watch.reach, watch.loading, watch.models)))
    client.watch = watch
    return watch, said


def test_ollama_up_loads_the_default_model_once_with_the_chats_options_and_says_loading_meanwhile():
    async def main():
        client = FakeOllama()
        watch, said = make(client)
        assert watch.reach is Reach.CHECKING and not watch.up.is_set()
        await watch.check()
        assert (watch.reach, watch.version, watch.models, watch.up.is_set(), watch.wrong) == (
            Reach.UP, "0.9.0", ["llama3.2:latest"], True, False)
        assert client.loads == [("llama3.2", {"num_ctx": 8192}, "30m", "llama3.2")], "loading is shown while it loads"
        assert said == [(Reach.UP, "", ["llama3.2:latest"]), (Reach.UP, "llama3.2", ["llama3.2:latest"]),
                        (Reach.UP, "", ["llama3.2:latest"])]
        await watch.check()
        assert len(client.loads) == 1 and len(said) == 3, "nothing changed: no load, no announcement"
    asyncio.run(main())


def test_ollama_down_is_announced_once_and_when_it_comes_back_the_model_is_loaded_again():
    async def main():
        client = FakeOllama()
        watch, said = make(client)
        await watch.check()
        client.down = True
        await watch.check()
        await watch.check()
        assert (watch.reach, watch.up.is_set(), watch.wrong) == (Reach.DOWN, False, True)
        assert [s[0] for s in said].count(Reach.DOWN) == 1
        client.down = False
        await watch.check()
        assert watch.reach is Reach.UP and watch.up.is_set()
        assert len(client.loads) == 2, "Ollama may have restarted without the model"
    asyncio.run(main())


def test_a_default_model_not_pulled_is_not_loaded_and_counts_as_wrong_until_it_is():
    async def main():
        client = FakeOllama(models=["qwen3:4b"])
        watch, said = make(client)
        await watch.check()
        assert watch.reach is Reach.UP and watch.wrong and client.loads == []
        assert watch.pulled("qwen3:4b") and not watch.pulled("llama3.2")
        client.tags.append("llama3.2:latest")
        await watch.check()
        assert not watch.wrong and [l[0] for l in client.loads] == ["llama3.2"]
        assert said[1][2] == ["qwen3:4b", "llama3.2:latest"], "the new list is announced"
    asyncio.run(main())


def test_a_failed_load_is_tried_again_at_the_next_check():
    async def main():
        client = FakeOllama()
        client.load_fails = 1
        watch, said = make(client)
        await watch.check()
        assert watch.loading == "" and said[-1][1] == "", "no model left 'loading' after a failure"
        await watch.check()
        assert len(client.loads) == 2
        await watch.check()
        assert len(client.loads) == 2
    asyncio.run(main())


def test_a_failed_request_changes_nothing_unless_the_check_it_asks_for_finds_ollama_down(turned):
    async def main():
        client = FakeOllama()
        watch, said = make(client, check_s=0.2)
        await watch.check()
        await turn(0.2)
        announced = len(said)
        assert await watch.confirm() is Reach.UP and client.calls == 2, "checked, and found up"
        assert len(said) == announced and watch.up.is_set(), "nothing changed, nothing announced"
        await turn(0.2)
        client.down = True
        assert await watch.confirm() is Reach.DOWN and not watch.up.is_set()
        assert [s[0] for s in said].count(Reach.DOWN) == 1
    turned(main)


def test_requests_failing_together_share_one_check_and_a_recent_check_stands(turned):
    async def main():
        client = FakeOllama()
        watch, _ = make(client, check_s=0.3)
        client.slow = 0.05  # a check takes a while: those who ask meanwhile wait for it
        verdicts = await asyncio.gather(*(watch.confirm() for _ in range(50)))
        assert verdicts == [Reach.UP] * 50 and client.calls == 1
        for _ in range(50):
            assert await watch.confirm() is Reach.UP
        assert client.calls == 1, "a check less than OLLAMA_CHECK_S old stands"
        await turn(0.3)
        await watch.confirm()
        assert client.calls == 2
    turned(main)


def test_refresh_lists_the_models_now_and_a_failure_keeps_the_list():
    async def main():
        client = FakeOllama()
        watch, said = make(client)
        await watch.check()
        client.tags.append("qwen3:4b")
        before = len(said)
        await watch.refresh()
        assert watch.models == ["llama3.2:latest", "qwen3:4b"] and len(said) == before + 1
        await watch.refresh()
        assert len(said) == before + 1, "the same list is not announced again"
        client.down = True
        await watch.refresh()
        assert watch.models == ["llama3.2:latest", "qwen3:4b"]
    asyncio.run(main())


def test_news_wakes_whoever_waits_for_it_and_a_refreshed_list_is_told_before_the_caller_goes_on():
    "A pull's end must not reach the page before the list that has the pulled model (brain/pulls.py)."
    async def main():
        client = FakeOllama()
        watch = OllamaWatch(client, "llama3.2", {}, "30m", 2.0, lambda fn, *a, **kw: asyncio.sleep(0, fn(*a, **kw)))
        client.watch = watch
        await watch.check()
        told = []

        async def announcing():  # as the node's does
            while True:
                await watch.news.wait()
                watch.news.clear()
                told.append(list(watch.models))
        node = asyncio.create_task(announcing())
        await asyncio.sleep(0)
        told.clear()
        client.tags.append("qwen3:4b")
        await watch.refresh()
        told.append("the pull's end")
        assert told == [["llama3.2:latest", "qwen3:4b"], "the pull's end"]
        node.cancel()
    asyncio.run(main())


@pytest.fixture
def slow_refresh(monkeypatch):
    monkeypatch.setattr(ollama_watch, "MODELS_REFRESH_S", 60.0)


def test_checks_come_every_check_s_while_wrong_and_down_found_by_a_request_makes_them_quick(slow_refresh, turned):
    async def main():
        client = FakeOllama()
        client.down = True
        watch, _ = make(client, check_s=0.05)
        task = asyncio.create_task(watch.run())
        await turn(0.5)
        assert 5 <= client.calls <= 11, "Ollama down: checked again every OLLAMA_CHECK_S"
        client.down = False
        await turn(0.1)
        settled = client.calls
        await turn(ollama_watch.MODELS_REFRESH_S - 1)
        assert watch.reach is Reach.UP and client.calls == settled, "all well: the next check is MODELS_REFRESH_S away"
        client.down = True
        assert await watch.confirm() is Reach.DOWN and client.calls == settled + 1
        await turn(0.04)
        assert client.calls == settled + 1, "no second check at once: the next is OLLAMA_CHECK_S away"
        client.down = False
        await turn(0.15)
        assert watch.reach is Reach.UP and watch.up.is_set(), "checked again within OLLAMA_CHECK_S, and found up"
        assert client.calls <= settled + 4
        task.cancel()
    turned(main)
