"""Only the app's own host names get in: DNS rebinding (another site's name pointed at 127.0.0.1)
is refused for pages, todo changes and the WebSocket alike."""
import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.page import Visitor


@pytest.mark.env(ALLOWED_HOSTS="todo.example")
def test_foreign_host_names_are_refused_and_the_apps_own_names_work(system):
    visitor = Visitor(system.url)
    port = system.port
    for name in ("attacker.example", "127.0.0.1.nip.io"):
        host = f"{name}:{port}"
        assert requests.get(system.url + "/", headers={"Host": host}, timeout=5).status_code == 400
        assert visitor.http.post(system.url + "/todos", data={"title": "x"}, timeout=5,
                                 headers={"Host": host, "Origin": f"http://{host}"}).status_code == 400
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{port}/ws", open_timeout=5,
                    additional_headers={"Host": host, "Origin": f"http://{host}", "Cookie": visitor.cookie()})
        assert refused.value.response.status_code == 403
    for name in ("localhost", "127.0.0.1", "todo.example"):
        assert requests.get(system.url + "/", headers={"Host": f"{name}:{port}"}, timeout=5).status_code == 200
    tab = visitor.open_tab()  # it waits for the first status line; the app was ready before the test began
    assert tab.status_text == "brain ready", "the app's own name still opens the chat, with the brain ready"
    visitor.close()
