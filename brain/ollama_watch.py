"""What the brain knows about Ollama, kept true: reachable or not, its version, the models it has
pulled, and whether the default model is loading.

It checks at start, then every OLLAMA_CHECK_S while something is wrong (Ollama unreachable, the
default model not pulled) and every MODELS_REFRESH_S otherwise, so the page turns ready within
seconds of `ollama serve` starting or `ollama pull` finishing. Whenever Ollama becomes reachable
it loads the default model (with the options the chats use), so the first reply does not pay for
the load. Every change is news (`news`, set), which the node sends in a heartbeat at once.

Only a check changes what the brain knows: a request that got no answer says nothing certain of
Ollama (it may drop one request and answer the next), so a reply whose request got none asks here
(`confirm`), and waits for Ollama only if the check finds it down. Those who ask at once share one
check, and a check less than OLLAMA_CHECK_S old stands, so failing requests never make a storm of
checks, nor flip every page's status.
"""
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import suppress

from brain.ollama_client import OllamaClient, OllamaError
from shared.messages import Reach, full_name

log = logging.getLogger("brain.ollama")
MODELS_REFRESH_S = 30.0


class OllamaWatch:
    def __init__(self, client: OllamaClient, model: str, load_options: dict, keep_alive: str,
                 check_s: float, blocking: Callable[..., Awaitable], changed: Callable[[], None] | None = None):
        "`changed`: told of each change instead of `news` (a test's recorder)."
        self.client, self.model, self.load_options, self.keep_alive = client, model, load_options, keep_alive
        self.news = asyncio.Event()  # set when what the brain knows of Ollama changed; the node tells the web
        self.check_s, self.blocking, self.changed = check_s, blocking, changed or self.news.set
        self.reach = Reach.CHECKING
        self.version = ""
        self.models: list[str] | None = None  # None until Ollama has listed them
        self.loading = ""  # the model being loaded, while it is
        self.up = asyncio.Event()  # set while Ollama is reachable: replies waiting for it go on
        self._wake = asyncio.Event()
        self._loaded = False  # the default model was loaded since Ollama last came up
        self._probing: asyncio.Future | None = None  # the check under way, which whoever asks meanwhile shares
        self._probed_at = -float("inf")  # when the last check ended (monotonic)

    @property
    def wrong(self) -> bool:
        return self.reach is not Reach.UP or not self.pulled(self.model)

    def pulled(self, model: str) -> bool:
        return self.models is not None and full_name(model) in self.models

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self.check()
            await self._until_due()

    async def _until_due(self) -> None:
        """Until the next check: OLLAMA_CHECK_S after the last one (a reply's included) while something
        is wrong, MODELS_REFRESH_S otherwise, at once when woken. Looked at every OLLAMA_CHECK_S, so
        Ollama found down by a reply's check is checked again as often."""
        while not self._wake.is_set():
            left = self._probed_at + (self.check_s if self.wrong else MODELS_REFRESH_S) - time.monotonic()
            if left <= 0:
                return
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(left, self.check_s))

    async def refresh(self) -> None:
        """A model was just pulled: list the models now and announce the change, so every page's
        picker shows it before the pull is reported done. The regular check follows at once (it
        loads the default model, if that is the one pulled)."""
        try:
            models = await self.blocking(self.client.models)
        except OllamaError:
            models = self.models  # the check that follows finds out what is wrong
        if models != self.models:
            self.models = models
            self.changed()
            # The node's heartbeat with the new list, woken by the news, goes before whatever the
            # caller sends next: the pull's end, which must not reach the page before the list does.
            await asyncio.sleep(0)
        self._wake.set()

    async def confirm(self) -> Reach:
        """A request got no byte of an answer: is Ollama down? A check says; one that ended less than
        OLLAMA_CHECK_S ago stands, and one under way is shared."""
        if self._probing is not None or time.monotonic() - self._probed_at >= self.check_s:
            await self._probe()
        return self.reach

    async def check(self) -> None:
        await self._probe()
        if self.reach is Reach.UP and self.pulled(self.model) and not self._loaded:
            await self._load()

    async def _probe(self) -> None:
        "Reach Ollama and list its models; whoever asks while a check runs waits for that one."
        if self._probing is None:
            self._probing = asyncio.ensure_future(self._reach())
        await asyncio.shield(self._probing)

    async def _reach(self) -> None:
        try:
            version = await self.blocking(self.client.version)
            models = await self.blocking(self.client.models)
        except OllamaError as e:
            if self.reach is not Reach.DOWN:
                self._set_down(str(e))
        else:
            self._set_up(version, models)
        finally:
            self._probing, self._probed_at = None, time.monotonic()

    def _set_up(self, version: str, models: list[str]) -> None:
        became_up = self.reach is not Reach.UP
        if became_up:
            log.info("Ollama %s at %s is up; models: %s", version, self.client.base_url, ", ".join(models) or "none")
        state_changed = became_up or models != self.models
        self.reach, self.version, self.models = Reach.UP, version, models
        self.up.set()
        if state_changed:
            self.changed()
            if not self.pulled(self.model):
                log.warning("the default model %s is not pulled: run `ollama pull %s`", self.model, self.model)

    async def _load(self) -> None:
        self.loading = self.model
        self.changed()
        started = time.monotonic()
        try:
            await self.blocking(self.client.load, self.model, options=self.load_options, keep_alive=self.keep_alive)
            self._loaded = True
            log.info("%s loaded in %.1fs (kept for %s)", self.model, time.monotonic() - started, self.keep_alive)
        except OllamaError as e:
            log.warning("loading %s: %s", self.model, e)  # the next check tries again
        finally:
            self.loading = ""
            self.changed()

    def _set_down(self, why: str) -> None:
        log.warning("Ollama is not reachable at %s: %s", self.client.base_url, why)
        self.reach, self._loaded = Reach.DOWN, False
        self.up.clear()
        self.changed()
