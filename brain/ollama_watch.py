"""What the brain knows about Ollama, kept true: reachable or not, its version, the models it has
pulled, and whether the default model is loading.

It checks at start, then every OLLAMA_CHECK_S while something is wrong (Ollama unreachable, the
default model not pulled) and every MODELS_REFRESH_S otherwise, so the page turns ready within
seconds of `ollama serve` starting or `ollama pull` finishing. Whenever Ollama becomes reachable
it loads the default model (with the options the chats use), so the first reply does not pay for
the load. A reply that cannot reach Ollama reports it here (`lost`), which starts the quick checks.
Every change is announced through `changed`, which sends a heartbeat at once.
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
                 check_s: float, blocking: Callable[..., Awaitable], changed: Callable[[], None]):
        self.client, self.model, self.load_options, self.keep_alive = client, model, load_options, keep_alive
        self.check_s, self.blocking, self.changed = check_s, blocking, changed
        self.reach = Reach.CHECKING
        self.version = ""
        self.models: list[str] | None = None  # None until Ollama has listed them
        self.loading = ""  # the model being loaded, while it is
        self.up = asyncio.Event()  # set while Ollama is reachable: replies waiting for it go on
        self._wake = asyncio.Event()
        self._loaded = False  # the default model was loaded since Ollama last came up

    @property
    def wrong(self) -> bool:
        return self.reach is not Reach.UP or not self.pulled(self.model)

    def pulled(self, model: str) -> bool:
        return self.models is not None and full_name(model) in self.models

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self.check()
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.check_s if self.wrong else MODELS_REFRESH_S)

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
        self._wake.set()

    def lost(self) -> None:
        "A request could not reach Ollama: say so now and check again soon."
        if self.reach is not Reach.DOWN:
            self._set_down("a request could not reach it")
        self._wake.set()

    async def check(self) -> None:
        try:
            version = await self.blocking(self.client.version)
            models = await self.blocking(self.client.models)
        except OllamaError as e:
            if self.reach is not Reach.DOWN:
                self._set_down(str(e))
            return
        if self.reach is not Reach.UP:
            log.info("Ollama %s at %s is up; models: %s", version, self.client.base_url, ", ".join(models) or "none")
        became_up = self.reach is not Reach.UP
        state_changed = became_up or models != self.models
        self.reach, self.version, self.models = Reach.UP, version, models
        self.up.set()
        if state_changed:
            self.changed()
        if not self.pulled(self.model):
            if became_up or state_changed:
                log.warning("the default model %s is not pulled: run `ollama pull %s`", self.model, self.model)
            return
        if not self._loaded:
            await self._load()

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
