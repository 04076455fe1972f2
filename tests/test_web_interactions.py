"""The web's interaction tap (web/interactions.py): every htmx request, once answered, and every
htmx-ext-ws frame becomes one `interaction` event with bounded values and never a secret; a
request that is not htmx's, has no session, or was refused for the session's rate, none."""
import asyncio

from web.interactions import MAX_BODY_BYTES, MAX_VALUE_CHARS, MAX_VALUES, InteractionTap, values_of, ws_interaction


def test_values_are_strings_bounded_and_secrets_are_left_out():
    kept = values_of({"title": "milk", "done": True, "n": 3, "password": "hunter2", "api_key": "k", "csrf_token": "t",
                      "X-Auth": "a", "session_cookie": "c", "HEADERS": {"HX-Request": "true"}, 7: "not a name"})
    assert kept == {"title": "milk", "done": "true", "n": "3"}
    long = values_of({"x" * 500: "y" * 500})
    assert [(len(k), len(v)) for k, v in long.items()] == [(MAX_VALUE_CHARS, MAX_VALUE_CHARS)]
    assert len(values_of({f"f{i}": "v" for i in range(MAX_VALUES + 5)})) == MAX_VALUES


def test_a_websocket_frame_is_told_with_its_trigger_and_fields():
    event = ws_interaction("sid", {"msg": "hi", "token": "secret", "HEADERS": {"HX-Request": "true", "HX-Trigger": "chat-form",
                                                                             "HX-Trigger-Name": "send"}})
    assert (event.session, event.method, event.path, event.trigger, event.name, event.values, event.status) == (
        "sid", "WS", "/ws", "chat-form", "send", {"msg": "hi"}, 0)
    bare = ws_interaction("sid", {"stop": "r1", "HEADERS": "not a dict"})
    assert (bare.trigger, bare.name, bare.values) == ("", "", {"stop": "r1"})
    assert ws_interaction("sid", {}).request != ws_interaction("sid", {}).request, "each event has its own id"


class App:
    "The app behind the tap: reads the whole body, notes it, answers `status`."

    def __init__(self, status=200):
        self.status, self.bodies = status, []

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        scope.setdefault("session", {})["sid"] = "sid-1"  # as the session middleware leaves it
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def request(app, body=b"", hx=True, path="/todos", method="POST", form=True, chunks=None, headers=()):
    published, sent = [], []
    tap = InteractionTap(app, published.append)
    pending = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)] \
        if chunks else [{"type": "http.request", "body": body}]
    hdrs = [(b"hx-request", b"true")] if hx else []
    if form:
        hdrs.append((b"content-type", b"application/x-www-form-urlencoded"))
    scope = {"type": "http", "method": method, "path": path, "headers": hdrs + list(headers)}

    async def receive():
        return pending.pop(0)

    async def send(message):
        sent.append(message)

    asyncio.run(tap(scope, receive, send))
    return published, sent


def test_an_answered_htmx_request_is_published_once_with_its_form_and_status():
    app = App(status=201)
    published, sent = request(app, b"title=oat+milk&password=x", headers=[(b"hx-trigger", b"add-form"),
                                                                           (b"hx-trigger-name", b"add")])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"], "the answer goes through"
    assert app.bodies == [b"title=oat+milk&password=x"], "the app still reads the whole body"
    [event] = published
    assert (event.session, event.method, event.path, event.trigger, event.name, event.values, event.status) == (
        "sid-1", "POST", "/todos", "add-form", "add", {"title": "oat milk"}, 201)


def test_only_htmx_requests_with_a_session_and_within_the_rate_are_published():
    assert request(App(), b"title=x", hx=False)[0] == [], "not the page's htmx"
    assert request(App(status=429), b"title=x")[0] == [], "refused for the session's rate: goes no further"
    assert [e.status for e in request(App(status=400), b"title=")[0]] == [400], "any other refusal is told"

    async def no_session(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
    published = []
    asyncio.run(InteractionTap(no_session, published.append)(
        {"type": "http", "method": "GET", "path": "/", "headers": [(b"hx-request", b"true")]},
        lambda: asyncio.sleep(0, {"type": "http.request", "body": b""}), lambda m: asyncio.sleep(0)))
    assert published == []


def test_a_body_that_is_not_a_form_gives_no_values_and_a_big_one_is_cut():
    assert request(App(), b"title=x", form=False)[0][0].values == {}, "read as a form only when it is one"
    app = App()
    published, _ = request(app, chunks=[b"a=1&p=" + b"x" * MAX_BODY_BYTES + b"&b=past-the-bound", b"&c=later"])
    assert app.bodies[0].endswith(b"&b=past-the-bound&c=later"), "the app gets the whole body"
    assert list(published[0].values) == ["a", "p"] and len(published[0].values["p"]) == MAX_VALUE_CHARS
