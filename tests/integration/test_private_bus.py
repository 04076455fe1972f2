"""The default bus is private: Unix sockets in DATA_DIR/bus (0700), reachable by the account that
runs the app (the brain, `make tail`) and by no other local account. So is everything else the
app writes in DATA_DIR: the session key and both databases."""
import os
import shutil
import stat
import subprocess
import sys
import time
import tempfile
from pathlib import Path

import pytest
import zmq

from tests.page import Visitor
from tests.system import ROOT


@pytest.fixture
def short_dir():
    "A DATA_DIR short enough for Unix socket paths (pytest's own temporary paths can be too deep)."
    path = Path(tempfile.mkdtemp(prefix="bus", dir="/tmp"))
    path.chmod(0o755)  # as a home directory is: others may enter, the bus directory itself stops them
    yield path
    shutil.rmtree(path, ignore_errors=True)


def readable_copy(where: Path) -> Path:
    """The tail's code and its two libraries where another account can read them: this checkout and
    its virtualenv's interpreter may sit in root's home, which nobody else may enter. Debian's own
    python3 (the same minor version as ours) runs it."""
    dest = where / "py"
    shutil.copytree(ROOT / "shared", dest / "shared")
    site = Path(zmq.__file__).parent.parent
    for name in ("zmq", "pyzmq.libs", "msgspec"):
        if (site / name).exists():
            shutil.copytree(site / name, dest / name)
    subprocess.run(["chmod", "-R", "a+rX", str(dest)], check=True)
    return dest


def test_the_default_bus_works_for_this_account_and_refuses_another(start_system, short_dir):
    system = start_system(DATA_DIR=short_dir / "data", BUS_PUB_ENDPOINT="", BUS_SUB_ENDPOINT="")
    bus_dir = short_dir / "data" / "bus"
    assert stat.S_IMODE(bus_dir.stat().st_mode) == 0o700 and {p.name for p in bus_dir.iterdir()} == {"pub", "sub"}
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    tab.send("over the private bus")
    assert tab.wait(lambda t: t.finished(1))[0].status == "done"

    env = system.env | {"BUS_PUB_ENDPOINT": "", "BUS_SUB_ENDPOINT": ""}
    tail = [sys.executable, "-m", "shared.tail"]
    other = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-m", "shared.tail"],
                           cwd=short_dir, env=env | {"PYTHONPATH": str(readable_copy(short_dir))},
                           capture_output=True, text=True, timeout=20)
    assert other.returncode != 0, other.stdout
    assert f"cannot reach the bus at ipc://{bus_dir}/sub: permission denied" in other.stderr, other.stderr
    joined = system.log("web").count("a subscriber joined ''")
    owner = subprocess.Popen(tail, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while system.log("web").count("a subscriber joined ''") == joined and time.monotonic() < deadline:
            time.sleep(0.05)  # the tail's subscription must reach the bus before the message does
        tab.send("seen by the owner's tail")
        tab.wait(lambda t: t.finished(2))
    finally:
        owner.terminate()
        out, _ = owner.communicate(timeout=10)
    assert "seen by the owner" in out
    visitor.close()


def test_no_other_account_can_read_what_the_app_writes(start_system, short_dir):
    "The web and the brain (its supervisor and worker) started as `make run` starts them, on a fresh DATA_DIR."
    data = short_dir / "data"
    system = start_system(DATA_DIR=data, BUS_PUB_ENDPOINT="", BUS_SUB_ENDPOINT="")
    visitor = Visitor(system.url)
    tab = visitor.open_tab()
    tab.send("a conversation nobody else may read")
    assert tab.wait(lambda t: t.finished(1))[0].status == "done"
    visitor.close()

    written = [data, *data.rglob("*")]
    assert {".sesskey", "web.db", "brain.db", "bus", "brains"} <= {p.name for p in written}
    assert {str(p.relative_to(short_dir)): oct(stat.S_IMODE(p.lstat().st_mode) & 0o077) for p in written} == {
        str(p.relative_to(short_dir)): "0o0" for p in written}, "group and others have no access to anything"
    for name in (".sesskey", "web.db", "brain.db"):
        other = subprocess.run(["runuser", "-u", "nobody", "--", "cat", str(data / name)], capture_output=True,
                               text=True, timeout=20)
        assert other.returncode != 0 and "Permission denied" in other.stderr, f"nobody read {name}: {other.stderr}"


def test_a_socket_path_too_long_for_unix_is_refused_with_the_fix(tmp_path):
    deep = tmp_path / ("d" * 60) / "data"
    env = os.environ | {"DATA_DIR": str(deep), "BUS_PUB_ENDPOINT": "", "BUS_SUB_ENDPOINT": ""}
    run = subprocess.run([sys.executable, "-m", "shared.tail"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=20)
    assert run.returncode != 0 and "longer than 100 bytes" in run.stderr and "shorter DATA_DIR" in run.stderr
