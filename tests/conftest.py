import os

import pytest
from hypothesis import HealthCheck, settings

from tests.fake_ollama import FakeOllama, Plan
from brain.memory import Memory
from tests.page import Visitor
from tests.postgres import PostgresServer
from tests.system import System, free_port

# Property tests: a few hundred examples each in `make test`; `make fuzz` (HYPOTHESIS_PROFILE=fuzz)
# runs 10,000 each. No deadline: the machine running them may be busy with other tests.
settings.register_profile("default", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("fuzz", max_examples=10_000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture
def fake():
    f = FakeOllama(default=Plan(delay=0.01)).start()
    yield f
    f.stop()


@pytest.fixture
def start_system(tmp_path, fake, request):
    "Start web + brain (the Procfile's commands) with extra environment; stopped after the test."
    systems = []

    def start(ready: bool = True, **env) -> System:
        "ready=False: wait only until a worker is connected (its Ollama may be down)."
        workdir = tmp_path / f"system{len(systems)}"
        workdir.mkdir()
        system = System(workdir, fake.url, **env).start()
        systems.append(system)
        if ready:
            system.wait_ready()
        else:
            system.wait_status(lambda s: s["workers"])
        return system

    yield start
    for system in systems:
        system.stop_all()
        failed = getattr(request.node, "rep_call", None)
        if failed is None or failed.failed:
            print(system.logs())


@pytest.fixture
def without_ollama(start_system):
    "The app with nothing at OLLAMA_HOST yet: (system, port), so a test can start an Ollama there later."
    port = free_port()
    return start_system(ready=False, OLLAMA_HOST=f"127.0.0.1:{port}", OLLAMA_CHECK_S=0.5), port


@pytest.fixture
def system(start_system, request):
    "The app's processes; `@pytest.mark.env(NAME=value)` adds environment for one test."
    marker = request.node.get_closest_marker("env")
    return start_system(**(marker.kwargs if marker else {}))


@pytest.fixture
def visitor(system):
    v = Visitor(system.url)
    yield v
    v.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def postgres():
    "One PostgreSQL server for the whole run; each test that wants it takes a database of its own."
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def memories(request, tmp_path):
    """Open Memory on one conversation store, as many times as brains share it: SQLite in a
    DATA_DIR, or a fresh PostgreSQL database. The same tests run against both."""
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgres" else ""
    return lambda: Memory.open(url, tmp_path)
