"""The ports the chat layer is written against (web/ports.py): the real switchboard and the tests'
one fake bus both have each of their methods, with the same parameters, so a fake cannot drift from
what the chat layer may call."""
import inspect

import pytest

from tests.fake_bus import FakeBus
from web import ports
from web.switchboard import Switchboard

MEMBERS = [(port, name) for port in (ports.Bus, ports.Brains)
           for name, value in vars(port).items() if not name.startswith("_") and (callable(value) or isinstance(value, property))]


def parameters(member) -> list[str]:
    return list(inspect.signature(member).parameters) if callable(member) else []


@pytest.mark.parametrize("port, name", MEMBERS, ids=[f"{p.__name__}.{n}" for p, n in MEMBERS])
@pytest.mark.parametrize("bus", [Switchboard, FakeBus])
def test_the_switchboard_and_the_fake_have_every_method_of_the_ports(bus, port, name):
    wanted = vars(port)[name]
    attributes = set(dir(bus)) | (set(vars(FakeBus())) if bus is FakeBus else set())  # the fake's are plain attributes
    assert name in attributes, f"{bus.__name__} has no {name}"
    if isinstance(wanted, property):
        return
    assert parameters(getattr(bus, name)) == parameters(wanted), f"{bus.__name__}.{name}"


def test_the_ports_are_what_the_chat_layer_uses_of_the_bus():
    assert {name for _, name in MEMBERS} == {"submit", "offer", "asking", "withdraw", "in_hand", "made_by",
                                             "models", "status_of"}
