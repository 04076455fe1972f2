"""web/security.py on its own: the headers every HTTP response carries, which requests count as the
page's own (Origin), and the Host check that stops DNS rebinding, with a stand-in ASGI app behind
each middleware."""
import asyncio

from web.security import CSP, AllowedHosts, SecurityHeaders, host_name, same_origin


def test_a_request_naming_another_origin_is_not_the_pages_own():
    assert same_origin({"host": "127.0.0.1:5000", "origin": "http://127.0.0.1:5000"})
    assert same_origin({"host": "127.0.0.1:5000"}), "no Origin: no web page sent it"
    assert not same_origin({"host": "127.0.0.1:5000", "origin": "http://evil.example"})
    assert not same_origin({"host": "127.0.0.1:5000", "origin": "http://127.0.0.1:5001"}), "another port is another origin"
    assert not same_origin({"host": "127.0.0.1:5000", "origin": "null"})


def test_the_host_name_is_read_without_port_brackets_or_case():
    assert host_name("LocalHost:5000") == "localhost"
    assert host_name("[::1]:5000") == "::1"
    assert host_name("todo.example") == "todo.example"
    assert host_name("") == ""
    assert host_name("[::1") == "", "a malformed Host matches no name"


class App:
    "The app behind a middleware: answers 200 and notes that it ran."

    def __init__(self):
        self.ran = []

    async def __call__(self, scope, receive, send):
        self.ran.append(scope["type"])
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/html")]})
            await send({"type": "http.response.body", "body": b"page"})
        elif scope["type"] == "websocket":
            await send({"type": "websocket.accept"})


def call(middleware, scope, incoming=({"type": "websocket.connect"},)):
    sent, pending = [], list(incoming)

    async def receive():
        return pending.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent


def http(host):
    return {"type": "http", "method": "GET", "path": "/", "headers": [(b"host", host.encode())]}


def test_every_http_response_forbids_inline_script_and_third_parties():
    sent = call(SecurityHeaders(App()), http("127.0.0.1:5000"))
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"text/html", "the app's own headers are kept"
    assert headers[b"content-security-policy"] == CSP.encode()
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "unsafe-eval" not in CSP
    assert "frame-ancestors 'none'" in CSP
    assert headers[b"x-content-type-options"] == b"nosniff" and headers[b"referrer-policy"] == b"no-referrer"
    assert sent[1]["body"] == b"page"


def test_a_websocket_passes_the_header_middleware_untouched():
    app = App()
    assert call(SecurityHeaders(app), {"type": "websocket", "headers": []}) == [{"type": "websocket.accept"}]


NAMES = ["127.0.0.1", "localhost", "::1", "Todo.Example"]


def test_only_the_apps_own_names_reach_the_app():
    app = App()
    hosts = AllowedHosts(app, NAMES)
    for host in ("127.0.0.1:5000", "localhost", "[::1]:5000", "todo.example:443", "TODO.EXAMPLE"):
        assert call(hosts, http(host))[0]["status"] == 200, host
    assert len(app.ran) == 5
    for host in ("attacker.example:5000", "127.0.0.1.nip.io:5000", ""):
        sent = call(hosts, http(host))
        assert sent[0]["status"] == 400 and b"ALLOWED_HOSTS" in sent[1]["body"], host
    assert len(app.ran) == 5, "a refused request never reaches the app"
    assert call(AllowedHosts(app, ["[fd00::5]"]), http("[fd00::5]:5000"))[0]["status"] == 200, "an IPv6 name as written in a URL"


def test_a_websocket_to_a_foreign_name_is_refused_before_the_app_runs():
    app = App()
    hosts = AllowedHosts(app, NAMES)
    sent = call(hosts, {"type": "websocket", "headers": [(b"host", b"attacker.example:5000")]})
    assert sent == [{"type": "websocket.close", "code": 1008}] and app.ran == []
    assert call(hosts, {"type": "websocket", "headers": [(b"host", b"localhost:5000")]}) == [{"type": "websocket.accept"}]


def test_lifespan_is_not_a_request_and_passes():
    app = App()
    call(AllowedHosts(app, NAMES), {"type": "lifespan"})
    assert app.ran == ["lifespan"]
