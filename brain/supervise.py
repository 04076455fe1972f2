"""Keep one brain worker running. This is the Procfile's `brain` line.

honcho stops every process as soon as any one exits, so the worker cannot be honcho's process
itself: a crash or `kill -9` would take the web down too. The supervisor never exits on its own:

- it runs `python -m brain.ollama_worker` and starts it again whenever it exits, after a pause
  that grows (to 5 s) while the worker keeps dying straight after start;
- SIGHUP restarts the worker on purpose (`make restart-brain` sends it to every supervisor of
  this DATA_DIR, which list their pids in DATA_DIR/brains/); with BRAIN_RELOAD=1 a change to a
  .py file under brain/ or shared/ does too;
- SIGTERM or SIGINT stops the worker (SIGTERM, then SIGKILL after 3 s) and then the supervisor.

Run: python -m brain.supervise            (what the Procfile runs)
     python -m brain.supervise --restart  (restart the running worker)
"""
import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from shared.config import Settings, setup_logging
from shared.private import private_data_dir

log = logging.getLogger("brain.supervise")
ROOT = Path(__file__).resolve().parent.parent
WORKER = [sys.executable, "-m", "brain.ollama_worker"]
FIRST_PAUSE, LONGEST_PAUSE, HEALTHY_AFTER = 0.1, 5.0, 10.0


class Supervisor:
    def __init__(self, command: list[str]):
        self.command = command
        self.wake = threading.Event()
        self.restart_requested = False
        self.stopping = False

    def request(self, *, restart: bool = False, stop: bool = False) -> None:
        "Safe to call from a signal handler or another thread."
        self.restart_requested |= restart
        self.stopping |= stop
        self.wake.set()

    def run(self) -> None:
        pause = FIRST_PAUSE
        while not self.stopping:
            started = time.monotonic()
            worker = subprocess.Popen(self.command, cwd=ROOT)
            log.info("worker started (pid %d)", worker.pid)
            while worker.poll() is None and not (self.stopping or self.restart_requested):
                self.wake.wait(0.2)
                self.wake.clear()
            if worker.poll() is None:
                log.info("%s the worker (pid %d)", "stopping" if self.stopping else "restarting", worker.pid)
                self.restart_requested = False
                end(worker)
                pause = FIRST_PAUSE
                continue
            lived = time.monotonic() - started
            pause = FIRST_PAUSE if lived > HEALTHY_AFTER else min(pause * 2, LONGEST_PAUSE)
            log.warning("worker exited with %s after %.1fs; starting it again in %.1fs",
                        describe(worker.returncode), lived, pause)
            self.wake.wait(pause)
            self.wake.clear()


def end(worker: subprocess.Popen) -> None:
    worker.terminate()
    try:
        worker.wait(3)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def describe(returncode: int) -> str:
    if returncode < 0:
        return f"signal {signal.Signals(-returncode).name}"
    return f"code {returncode}"


def watch_sources(supervisor: Supervisor) -> None:
    "Restart the worker when its code changes (BRAIN_RELOAD=1, for development)."
    from watchfiles import PythonFilter, watch

    for changes in watch(ROOT / "brain", ROOT / "shared", watch_filter=PythonFilter()):
        log.info("code changed (%s); restarting the worker", ", ".join(sorted(Path(p).name for _, p in changes)))
        supervisor.request(restart=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m brain.supervise", description="keep one brain worker running")
    parser.add_argument("--restart", action="store_true", help="restart the worker of the running supervisor")
    args = parser.parse_args(argv)
    setup_logging()
    settings = Settings.from_env()
    supervisors = settings.data_dir / "brains"  # one file per supervisor (honcho start -c brain=N), named by pid
    if args.restart:
        asked = 0
        for entry in supervisors.glob("*") if supervisors.exists() else []:
            try:
                os.kill(int(entry.name), signal.SIGHUP)
                asked += 1
            except (ValueError, ProcessLookupError):
                entry.unlink(missing_ok=True)  # left by a supervisor that was killed
        if not asked:
            raise SystemExit(f"no brain supervisor is running for DATA_DIR={settings.data_dir} "
                             "(start the app with `make run`)")
        print(f"asked {asked} brain worker{'s' if asked > 1 else ''} to restart; the page shows 'restarting' "
              "and then 'ready'")
        return

    supervisor = Supervisor(WORKER)
    signal.signal(signal.SIGTERM, lambda *_: supervisor.request(stop=True))
    signal.signal(signal.SIGINT, lambda *_: supervisor.request(stop=True))
    signal.signal(signal.SIGHUP, lambda *_: supervisor.request(restart=True))
    if os.environ.get("BRAIN_RELOAD", "") not in ("", "0"):
        threading.Thread(target=watch_sources, args=(supervisor,), daemon=True).start()
    private_data_dir(settings.data_dir)
    supervisors.mkdir(parents=True, exist_ok=True)
    pidfile = supervisors / str(os.getpid())
    pidfile.touch()
    try:
        supervisor.run()
    finally:
        pidfile.unlink(missing_ok=True)
        log.info("supervisor stopped")


if __name__ == "__main__":
    main()
