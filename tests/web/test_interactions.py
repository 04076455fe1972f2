"""The web's interaction tap (web/interactions.py): every htmx request, once answered, and every
htmx-ext-ws frame that is no chat control is told to the model in one line, with bounded values,
never a secret, and the text of what the response swapped in; a change (not GET, answered 2xx) is
told as one, with the tab that made it; a request that is not htmx's, has no session, was refused
for the session's rate, fetches a tab's page again, or whose route told its change, is not."""
import asyncio

from web.exchange import Exchanges, exchange
from web.interactions import MAX_BODY_BYTES, MAX_VALUE_CHARS, MAX_VALUES, InteractionTap, heard, values_of, ws_heard


def test_values_are_strings_bounded_and_secrets_are_left_out():
    kept = values_of({"title": "milk", "done": True, "n": 3, "password": "hunter2", "api_key": "k", "csrf_token": "t",
                      "X-Auth": "a", "session_cookie": "c", "HEADERS": {"HX-Request": "true"}, 7: "not a name"})
    assert kept == {"title": "milk", "done": "true", "n": "3"}
    long = values_of({"x" * 500: "y" * 500})
    assert [(len(k), len(v)) for k, v in long.items()] == [(MAX_VALUE_CHARS, MAX_VALUE_CHARS)]
    assert len(values_of({f"f{i}": "v" for i in range(MAX_VALUES + 5)})) == MAX_VALUES


def test_an_interaction_in_words_names_the_control_the_values_and_the_answer():
    assert heard("POST", "/lamp", "lamp-dial", "brightness", {"brightness": "7", "api_token": "x"}, 200) == \
        "used #lamp-dial (POST /lamp brightness='7' → 200)"
    assert heard("GET", "/help", "", "help", {}, 404) == "used help (GET /help → 404)", "by its name without an id"
    assert heard("GET", "/", "", "", {}, 0) == "used the page (GET /)", "no status: none told"
    long = heard("GET", "/" + "p" * 500, "t" * 500, "", {}, 200)
    assert long == f"used #{'t' * MAX_VALUE_CHARS} (GET /{'p' * (MAX_VALUE_CHARS - 1)} → 200)", "bounded"


def test_a_websocket_frame_is_told_with_its_trigger_and_fields():
    line = ws_heard({"lamp": "on", "token": "secret", "HEADERS": {"HX-Request": "true", "HX-Trigger": "lamp-form",
                                                                  "HX-Trigger-Name": "switch"}})
    assert line == "used #lamp-form (WS /ws lamp='on')"
    assert ws_heard({"lamp": "off", "HEADERS": "not a dict"}) == "used the page (WS /ws lamp='off')"
    assert ws_heard({"HEADERS": {"HX-Trigger-Name": "switch"}}) == "used switch (WS /ws)"


class App:
    "The app behind the tap: reads the whole body, notes it, answers `status`."

    def __init__(self, status=200, html=b"", says=()):
        self.status, self.bodies, self.html, self.says = status, [], html, says

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.bodies.append(body)
        scope.setdefault("session", {})["sid"] = "sid-1"  # as the session middleware leaves it
        exchange().said.extend(self.says)  # as Loop.tell says it
        headers = [(b"content-type", b"text/html; charset=utf-8")] if self.html else []
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.html or b"ok"})


def request(app, body=b"", hx=True, path="/lamp", method="POST", form=True, chunks=None, headers=()):
    sent = []
    async def tell(sid, lines, change, tab):
        told.append((sid, *lines) if len(lines) == 1 else (sid, lines))
        changes.append((change, tab))

    told, changes = [], []
    tap = Exchanges(InteractionTap(app, tell))
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
    request.changes = changes  # whether each told one was a change, and from which tab
    return told, sent


def test_an_answered_htmx_request_is_told_once_with_its_form_and_status():
    app = App(status=201)
    told, sent = request(app, b"brightness=7&password=x", headers=[(b"hx-trigger", b"lamp-dial"),
                                                                  (b"hx-trigger-name", b"brightness")])
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"], "the answer goes through"
    assert app.bodies == [b"brightness=7&password=x"], "the app still reads the whole body"
    assert told == [("sid-1", "used #lamp-dial (POST /lamp brightness='7' → 201)")]


def test_a_route_that_said_nothing_is_heard_all_the_same_and_a_script_only_in_a_routes_words():
    assert request(App(), b"title=milk", path="/todos")[0] == [("sid-1", "used the page (POST /todos title='milk' → 200)")]
    assert request(App(says=["added 'milk'"]), b"title=milk", hx=False)[0] == [("sid-1", "added 'milk'")], \
        "a script's request (no htmx) is told in the words its route said, and only then"


def test_only_htmx_requests_with_a_session_and_within_the_rate_are_told():
    assert request(App(), b"title=x", hx=False)[0] == [], "not the page's htmx"
    assert request(App(status=429), b"title=x")[0] == [], "refused for the session's rate: goes no further"
    assert [line for _, line in request(App(status=400), b"title=")[0]] == ["used the page (POST /lamp → 400)"], \
        "any other refusal is told"

    async def no_session(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
    told = []

    async def tell(sid, lines, change, tab):
        told.append(lines)
    asyncio.run(InteractionTap(no_session, tell)(
        {"type": "http", "method": "GET", "path": "/", "headers": [(b"hx-request", b"true")]},
        lambda: asyncio.sleep(0, {"type": "http.request", "body": b""}), lambda m: asyncio.sleep(0)))
    assert told == []


def test_a_body_that_is_not_a_form_gives_no_values_and_a_big_one_is_cut():
    assert request(App(), b"title=x", form=False)[0][0][1] == "used the page (POST /lamp → 200)", \
        "read as a form only when it is one"
    app = App()
    told, _ = request(app, chunks=[b"a=1&p=" + b"x" * MAX_BODY_BYTES + b"&b=past-the-bound", b"&c=later"])
    assert app.bodies[0].endswith(b"&b=past-the-bound&c=later"), "the app gets the whole body"
    assert told[0][1] == f"used the page (POST /lamp a='1', p='{'x' * MAX_VALUE_CHARS}' → 200)"


def test_what_the_response_swapped_in_is_told_as_text_bounded_and_a_change_says_so_with_its_tab():
    fragment = b'<li id="todo-3" class="item"><input type="checkbox"><span>buy &amp; cook</span><button>x</button></li>'
    told, _ = request(App(html=fragment), b"", headers=[(b"hx-target", b"todo-3"), (b"x-tab", b"a" * 32)])
    assert told == [("sid-1", "used the page (POST /lamp into #todo-3 → 200), showing 'buy & cook x'")]
    assert request.changes == [(True, "a" * 32)], "a POST answered 200 changed the app, from that tab"
    told, _ = request(App(html=b"<p>" + b"word " * 1000 + b"</p>"), method="GET", form=False)
    assert told[0][1].endswith(f"showing {('word ' * 60).strip()!r}") and request.changes == [(False, "")], \
        "bounded; a GET changes nothing"
    assert request(App(html=b" "), method="DELETE", form=False)[0] == [
        ("sid-1", "used the page (DELETE /lamp → 200), showing nothing")], "an item swapped out for nothing"
    assert request(App(status=404, html=b"<p>No such todo</p>"), form=False)[0] == [
        ("sid-1", "used the page (POST /lamp → 404)")] and request.changes == [(False, "")], "a refusal changed nothing"


def test_a_route_that_says_what_it_changed_is_told_in_its_words_and_a_tabs_refetch_not_at_all():
    "The words go out before the response's last byte: the model hears of the change before the user can answer it."
    assert request(App(html=b"<li>milk</li>", says=["added 'milk'"]), b"title=milk")[0] == [("sid-1", "added 'milk'")]
    assert request(App(html=b"<li>milk</li>"), method="GET", headers=[(b"x-loop-refresh", b"1")])[0] == [], \
        "another tab fetching its part of the page again is not the user doing something"


def test_a_multipart_form_is_read_as_fastHTMLs_forms_send_it_and_a_file_or_a_cut_body_gives_no_values():
    boundary = b"b0undary"
    kind = [(b"content-type", b"multipart/form-data; boundary=" + boundary)]

    def part(name, value, filename=b""):
        disposition = b'form-data; name="' + name + b'"' + (b'; filename="' + filename + b'"' if filename else b"")
        return b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n\r\n" + value + b"\r\n"
    body = part(b"title", b"Dune") + part(b"password", b"x") + b"--" + boundary + b"--\r\n"
    assert request(App(), body, form=False, headers=kind)[0] == [("sid-1", "used the page (POST /lamp title='Dune' → 200)")]
    with_file = part(b"title", b"Dune") + part(b"cover", b"GIF89a", b"cover.gif") + b"--" + boundary + b"--\r\n"
    assert request(App(), with_file, form=False, headers=kind)[0] == [("sid-1", "used the page (POST /lamp → 200)")], \
        "a file is no value to tell (and its form is not read)"
    assert request(App(), body[:30], form=False, headers=kind)[0] == [("sid-1", "used the page (POST /lamp → 200)")]
