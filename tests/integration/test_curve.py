"""The bus beyond loopback: CURVE encryption and authentication, or no start at all."""
import subprocess
import sys
import time

import zmq

from tests.page import Visitor
from tests.system import ROOT, System, free_port


def make_keys(directory) -> None:
    subprocess.run([sys.executable, "-m", "shared.curve_keys", str(directory)], cwd=ROOT, check=True,
                   capture_output=True)


def test_a_curve_bus_works_for_key_holders_and_shows_nothing_to_others(start_system, tmp_path, fake):
    make_keys(tmp_path / "keys")
    system = start_system(BUS_CURVE_DIR=tmp_path / "keys")
    assert "bus (CURVE)" in system.log("web")

    ctx = zmq.Context()
    stranger = ctx.socket(zmq.SUB)
    stranger.setsockopt(zmq.LINGER, 0)
    stranger.subscribe(b"")
    stranger.connect(system.env["BUS_SUB_ENDPOINT"])
    tail = subprocess.Popen([sys.executable, "-m", "shared.tail"], cwd=ROOT, env=system.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)

    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    tab.send("over an encrypted bus")
    assert tab.wait(lambda t: t.finished(1))[0].status == "done"
    time.sleep(0.3)
    assert stranger.poll(500) == 0, "a subscriber without keys must see nothing"
    tail.terminate()
    out, _ = tail.communicate(timeout=5)
    assert "text='over an encrypted bus'" in out
    stranger.close()
    ctx.term()
    visitor.close()


def test_a_bus_beyond_loopback_without_keys_refuses_to_start(tmp_path, fake):
    system = System(tmp_path, fake.url, BUS_PUB_ENDPOINT=f"tcp://0.0.0.0:{free_port()}").start()
    web, brain = system.procs["web"], system.procs["brain"]
    assert web.wait(15) != 0
    assert "is reachable beyond this machine: set BUS_CURVE_DIR" in system.log("web")
    worker = subprocess.run([sys.executable, "-m", "brain.ollama_worker"], cwd=ROOT, env=system.env,
                            capture_output=True, text=True, timeout=15)
    assert worker.returncode != 0 and "reachable beyond this machine" in worker.stderr
    system.stop_all()
    assert brain.poll() is not None
