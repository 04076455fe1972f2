"""The pulls a brain worker makes for the page (`Pull`, `CancelPull`).

Each streams Ollama's `/api/pull` on a thread of its own and tells the web how it goes with
PullProgress, a few times a second and at every new step, until it ends pulled, cancelled or
failed (with the client's one-line reason). Once a model is pulled, the OllamaWatch lists the models
again before the end is reported, so every tab's picker already shows it.

One pull per model: a Pull of a model this worker is pulling already joins that pull, and each
pull message that asked is told of its progress. A cancel ends the pull for all of them.
"""
import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from brain.ollama_client import Hangup, OllamaClient, OllamaError
from brain.ollama_watch import OllamaWatch
from shared.messages import CancelPull, Message, Pull, PullOutcome, PullProgress, ToBrain, full_name

log = logging.getLogger("brain.pulls")
PROGRESS_EVERY_S = 0.25  # the most often a pull's progress is sent within one step: enough for a smooth bar
MAX_PULLS = 4  # pulls of different models at once; more wait for a thread


@dataclass(frozen=True)
class Seen:
    "Where a pull stands: Ollama's step, the layer being fetched, bytes of the layers seen so far."
    status: str = "starting"
    digest: str = ""
    completed: int = 0
    total: int = 0


@dataclass
class Running:
    model: str
    asked: list[Pull]  # every Pull that follows this pull
    hangup: Hangup = field(default_factory=Hangup)
    seen: Seen = Seen()  # the latest, replaced whole by the pull's thread

    def progress(self, worker: str, seen: Seen | None = None, **end) -> list[PullProgress]:
        s = seen or self.seen
        return [PullProgress(worker=worker, session=m.session, pull=m.id, epoch=m.epoch, model=self.model,
                             status=s.status, digest=s.digest, completed=s.completed, total=s.total, **end)
                for m in self.asked]


class Pulls:
    def __init__(self, client: OllamaClient, watch: OllamaWatch, send: Callable[[Message], None], worker: str):
        self.client, self.watch, self.send, self.worker = client, watch, send, worker
        self.loop = asyncio.get_running_loop()
        self.running: dict[str, Running] = {}  # by the model's full name
        self.tasks: set[asyncio.Task] = set()  # kept until done, so none is collected mid-way
        self.executor = ThreadPoolExecutor(MAX_PULLS, thread_name_prefix="ollama-pull")

    @property
    def pulling(self) -> list[str]:
        "The Pull messages whose pull runs here, for the heartbeat."
        return [m.id for r in self.running.values() for m in r.asked]

    def handle(self, msg: ToBrain) -> None:
        "A Pull or CancelPull the web has granted this worker."
        match msg:
            case Pull():
                self.start(msg)
            case CancelPull():
                self.cancel(msg.pull)

    def start(self, msg: Pull) -> None:
        running = self.running.get(full_name(msg.model))
        if running is not None:
            running.asked.append(msg)
            self.send(running.progress(self.worker)[-1])  # the joiner sees where it stands at once
            return
        running = self.running[full_name(msg.model)] = Running(msg.model, [msg])
        log.info("pulling %s for session %s", msg.model, msg.session[:8])
        task = asyncio.create_task(self._run(running))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def cancel(self, pull: str) -> None:
        for running in self.running.values():
            if any(m.id == pull for m in running.asked):
                running.hangup.fire()

    def shutdown(self) -> None:
        "Hang up on every pull: Ollama stops it and keeps what it has, so pulling again resumes."
        for running in self.running.values():
            running.hangup.fire()
        self.executor.shutdown(wait=False)

    async def _run(self, running: Running) -> None:
        try:
            await self.loop.run_in_executor(self.executor, self._pull, running)
            await self.watch.refresh()
            end = dict(outcome=PullOutcome.PULLED)
        except OllamaError as e:
            end = dict(outcome=PullOutcome.CANCELLED) if running.hangup.fired else dict(outcome=PullOutcome.FAILED, error=str(e))
        except Exception:
            log.exception("pulling %s failed", running.model)
            end = dict(outcome=PullOutcome.FAILED, error=f"The pull of '{running.model}' failed in the brain (see its log).")
        finally:
            del self.running[full_name(running.model)]
        log.info("pull of %s: %s %s", running.model, end["outcome"], end.get("error", ""))
        for msg in running.progress(self.worker, **end):
            self.send(msg)

    def _pull(self, running: Running) -> None:
        """On a pool thread: read Ollama's progress and have the loop send it, at each new step and
        otherwise at most every PROGRESS_EVERY_S. Bytes are summed over the layers seen so far, since
        Ollama reports each layer on its own."""
        layers: dict[str, tuple[int, int]] = {}
        sent = 0.0
        for line in self.client.pull(running.model, hangup=running.hangup):
            if line.digest:
                layers[line.digest] = (line.completed, line.total)
            step = line.status != running.seen.status
            seen = running.seen = Seen(line.status, line.digest, sum(c for c, _ in layers.values()),
                                       sum(t for _, t in layers.values()))
            if step or time.monotonic() - sent >= PROGRESS_EVERY_S:
                sent = time.monotonic()
                self.loop.call_soon_threadsafe(self._report, running, seen)

    def _report(self, running: Running, seen: Seen) -> None:
        if self.running.get(full_name(running.model)) is running:  # not after its end was sent
            for msg in running.progress(self.worker, seen):
                self.send(msg)
