"""Bus setup rules (shared/bus.py) that need no sockets."""
import pytest

from shared.bus import is_local


@pytest.mark.parametrize("endpoint, local", [
    ("ipc:///tmp/bus/pub", True), ("inproc://bus", True), ("tcp://127.0.0.1:5556", True), ("tcp://[::1]:5556", True),
    ("tcp://localhost:5556", True), ("tcp://0.0.0.0:5556", False), ("tcp://192.0.2.1:5556", False),
    ("tipc://{5560,0,0}", False), ("pgm://eth0;239.192.1.1:5555", False), ("epgm://eth0;239.192.1.1:5555", False),
    ("udp://127.0.0.1:5555", False), ("ws://127.0.0.1:5555", False), ("vmci://1:5555", False),
])
def test_only_ipc_inproc_and_tcp_on_loopback_count_as_local(endpoint, local):
    assert is_local(endpoint) is local
