"""Start the app's processes for a test exactly as `honcho start` would: each Procfile line, run
through a shell, with its own ports, bus endpoints and DATA_DIR on loopback."""
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """n ports free now, all different: each socket is held until all are chosen (one after another,
    the kernel may hand the same port out twice: a web once got its own bus's port)."""
    with ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(n)]
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


class System:
    """`netns`: run the commands in that network namespace (another host, see test_multihost.py)."""
    def __init__(self, workdir: Path, ollama_url: str, netns: str | None = None, **env):
        self.workdir, self.netns = workdir, netns
        self.port, pub, sub = free_ports(3)
        self.env = os.environ | {
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONUNBUFFERED": "1",
            "PORT": str(self.port),
            "DATA_DIR": str(workdir / "data"),
            "OLLAMA_HOST": ollama_url,
            "BUS_PUB_ENDPOINT": f"tcp://127.0.0.1:{pub}",
            "BUS_SUB_ENDPOINT": f"tcp://127.0.0.1:{sub}",
            "BUS_HEARTBEAT_S": "0.3",
            "COMMENT_DELAY_S": "0.3",
        } | {k: str(v) for k, v in env.items()}
        self.commands = procfile()
        self.procs: dict[str, subprocess.Popen] = {}
        self.url = f"http://{self.env.get('WEB_HOST') or '127.0.0.1'}:{self.port}"

    def start(self, *names: str) -> "System":
        for name in names or self.commands:
            log = open(self.workdir / f"{name}.log", "ab")
            # exec: the command itself (not a shell around it) is our child, so waiting for it is exact.
            host = ["ip", "netns", "exec", self.netns] if self.netns else []  # which execs the command in turn
            self.procs[name] = subprocess.Popen([*host, "sh", "-c", "exec " + self.commands[name].strip()], cwd=ROOT, env=self.env,
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def start_copy(self, name: str, of: str) -> "System":
        "One more copy of a Procfile line, as `honcho start -c brain=2` runs it."
        self.commands[name] = self.commands[of]
        return self.start(name)

    def wait_ready(self, timeout: float = 20.0) -> dict:
        "Wait until the web answers and knows a ready brain (its model loaded)."
        return self.wait_status(lambda s: s["status"] in ("ready", "busy"), timeout)

    def wait_status(self, predicate, timeout: float = 20.0) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = requests.get(f"{self.url}/api/status", timeout=2).json()
                if predicate(last):
                    return last
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise AssertionError(f"status never matched; last {last}\n{self.logs()}")

    def worker_pid(self) -> int:
        "The pid of the one ready brain worker (the supervisor's child)."
        workers = self.wait_ready()["workers"]
        assert len(workers) == 1, workers
        return next(iter(workers.values()))["pid"]

    def signal(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)

    def stop(self, name: str, timeout: float = 5.0) -> None:
        "SIGTERM the command's process group, as honcho does, and wait for the command to exit."
        proc = self.procs.pop(name)
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def logs(self) -> str:
        return "\n".join(f"--- {name}.log ---\n{self.log(name)[-4000:]}" for name in self.commands)
