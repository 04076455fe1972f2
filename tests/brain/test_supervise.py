"""The brain's supervisor (brain/supervise.py) with a fake worker process and a hand-turned clock:
a worker that dies is started again after a pause that grows while it keeps dying young, a restart
replaces it at once, a stop ends it and the supervisor, and `--restart` reaches every supervisor."""
import signal
import subprocess

import pytest

from brain import supervise
from brain.supervise import Supervisor


class Clock:
    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


class Worker:
    "A worker process that lives `life` seconds of the fake clock, then exits with `code`."

    def __init__(self, clock, life, code, stubborn=False):
        self.clock, self.born, self.life, self.code, self.stubborn = clock, clock.now, life, code, stubborn
        self.pid, self.returncode, self.signals = 1000, None, []

    def poll(self):
        if self.returncode is None and self.clock.now - self.born >= self.life:
            self.returncode = self.code
        return self.returncode

    def terminate(self):
        self.signals.append("TERM")
        if not self.stubborn:
            self.returncode = -signal.SIGTERM

    def kill(self):
        self.signals.append("KILL")
        self.returncode = -signal.SIGKILL

    def wait(self, timeout=None):
        if self.returncode is None:
            raise subprocess.TimeoutExpired("worker", timeout)
        return self.returncode


class Wake:
    "The supervisor's event: each wait passes its time on the fake clock, and can be scripted to request something."

    def __init__(self, clock, workers):
        self.clock, self.workers, self.pauses, self.at = clock, workers, [], {}

    def wait(self, timeout):
        if self.workers[-1].returncode is not None:  # between a dead worker and the next
            self.pauses.append(timeout)
        self.clock.now += timeout
        for when in [w for w in self.at if w <= self.clock.now]:
            self.at.pop(when)()
        return False

    def set(self):
        pass

    def clear(self):
        pass


@pytest.fixture
def supervised(monkeypatch):
    "supervised(lives) -> (supervisor, workers, wake): worker n lives lives[n] s (then exits 1); the last is stopped at 50 s."
    def make(lives):
        clock = Clock()
        monkeypatch.setattr(supervise, "time", clock)
        sup, workers = Supervisor(["worker"]), []
        sup.wake = wake = Wake(clock, workers)

        def popen(command, cwd):
            assert command == ["worker"]
            workers.append(Worker(clock, lives[len(workers)], code=1))
            if len(workers) == len(lives):
                wake.at[clock.now + 50] = lambda: sup.request(stop=True)
            return workers[-1]
        monkeypatch.setattr(supervise.subprocess, "Popen", popen)
        return sup, workers, wake
    return make


def test_a_worker_that_keeps_dying_young_is_started_again_after_pauses_that_grow_to_five_seconds(supervised):
    sup, workers, wake = supervised([0.0] * 8 + [100.0])
    sup.run()
    assert len(workers) == 9
    assert wake.pauses[:8] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0]


def test_a_worker_that_lived_long_is_started_again_after_the_first_short_pause(supervised):
    sup, workers, wake = supervised([0.0, 0.0, 0.0, 30.0, 0.0, 100.0])
    sup.run()
    assert wake.pauses[:5] == [0.2, 0.4, 0.8, 0.1, 0.2]


def test_a_restart_replaces_the_running_worker_at_once_and_a_stop_ends_it_and_the_supervisor(supervised):
    sup, workers, wake = supervised([100.0, 100.0])
    wake.at = {5.0: lambda: sup.request(restart=True)}
    sup.run()
    assert len(workers) == 2, "the restart started a second worker; the stop ended it and started none"
    assert workers[0].signals == ["TERM"] and workers[0].returncode == -signal.SIGTERM
    assert wake.pauses == [], "no pause after a restart asked for"
    assert workers[-1].signals == ["TERM"], "stopping ends the worker"


def test_a_worker_that_ignores_sigterm_is_killed():
    clock = Clock()
    stubborn = Worker(clock, 100.0, 0, stubborn=True)
    supervise.end(stubborn)
    assert stubborn.signals == ["TERM", "KILL"]
    polite = Worker(clock, 100.0, 0)
    supervise.end(polite)
    assert polite.signals == ["TERM"]


def test_an_exit_is_described_by_its_signal_or_code():
    assert supervise.describe(-9) == "signal SIGKILL"
    assert supervise.describe(1) == "code 1"


def test_restart_signals_every_supervisor_of_the_data_dir_and_forgets_the_dead(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    brains = tmp_path / "brains"
    brains.mkdir()
    for pid in ("101", "102", "999", "junk"):
        (brains / pid).touch()
    signalled = []

    def kill(pid, sig):
        if pid == 999:
            raise ProcessLookupError
        signalled.append((pid, sig))
    monkeypatch.setattr(supervise.os, "kill", kill)
    supervise.main(["--restart"])
    assert sorted(signalled) == [(101, signal.SIGHUP), (102, signal.SIGHUP)]
    assert sorted(p.name for p in brains.iterdir()) == ["101", "102"], "a killed supervisor's file is removed"
    assert "asked 2 brain workers to restart" in capsys.readouterr().out


def test_restart_with_no_supervisor_says_how_to_start_one(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(SystemExit, match="no brain supervisor is running"):
        supervise.main(["--restart"])


def test_a_restart_asked_for_starts_the_pauses_afresh(supervised):
    sup, workers, wake = supervised([0.0, 0.0, 100.0, 0.0, 100.0])
    wake.at = {3.0: lambda: sup.request(restart=True)}
    sup.run()
    assert len(workers) == 5 and workers[2].signals == ["TERM"]
    assert wake.pauses == [0.2, 0.4, 0.2], "the worker after the restart is not paused for the ones before it"
