"""Every htmx interaction of the page reaches the model, once: the one place that sees them all, so a
route or control added to the page is heard with no extra code.

The chat's own controls, which are chat turns or replies, are not told here. Every other
interaction is told in one line (`heard`): the control, the method and path, the form values and
the text of what the response swapped in, or the words the app's route said it changed
(`Loop.tell`, kept on its exchange: web/exchange.py). A change (any method but GET or HEAD,
answered 2xx) is shown in the session's other tabs and commented on once the clicking pauses;
anything else is seen with the next turn, without a comment of its own.

HTTP requests carrying `HX-Request` are tapped by an ASGI middleware after they are answered (so
the status is known and the session cookie has been read); htmx-ext-ws frames that are no chat
control are handed in by the chat (web/commands.py). Values are bounded, and fields whose names
suggest a secret are never told.
"""
import json
import re
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException
from starlette.requests import Request

from web.exchange import exchange

SECRET = re.compile(r"pass|secret|token|key|csrf|auth|cookie", re.IGNORECASE)
MAX_VALUES = 20
MAX_VALUE_CHARS = 200
MAX_BODY_BYTES = 16_384
MAX_SHOWN_CHARS = 300
TOO_MANY_REQUESTS = 429
READS = ("GET", "HEAD")


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)


def text_of(html: str, limit: int | None = MAX_SHOWN_CHARS) -> str:
    "The text a fragment of HTML shows, spaces folded, at most `limit` characters (None: all)."
    parser = _Text()
    parser.feed(html)
    parser.close()
    return " ".join(" ".join(parser.parts).split())[:limit].rstrip()


def values_of(fields: dict) -> dict[str, str]:
    "Form values as the model is told them: strings, bounded, secrets left out."
    kept = {}
    for name, value in list(fields.items())[:MAX_VALUES]:
        if isinstance(name, str) and name != "HEADERS" and not SECRET.search(name):
            text = value if isinstance(value, str) else json.dumps(value)
            kept[name[:MAX_VALUE_CHARS]] = text[:MAX_VALUE_CHARS]
    return kept


def heard(method: str, path: str, trigger: str, name: str, fields: dict, status: int, target: str = "",
          shown: str | None = None) -> str:
    """An interaction in words: which control, where, with what, how it was answered, and what it
    swapped in (None: not known, as for a WebSocket frame)."""
    what = f"#{trigger[:MAX_VALUE_CHARS]}" if trigger else name[:MAX_VALUE_CHARS] or "the page"
    values = ", ".join(f"{k}={v!r}" for k, v in values_of(fields).items())
    into = f" into #{target[:MAX_VALUE_CHARS]}" if target else ""
    answer = f" → {status}" if status else ""
    showing = "" if shown is None else f", showing {shown!r}" if shown else ", showing nothing"
    return f"used {what} ({method} {path[:MAX_VALUE_CHARS]}{' ' + values if values else ''}{into}{answer}){showing}"


def ws_heard(data: dict) -> str:
    "An htmx-ext-ws frame (form fields plus the HEADERS htmx adds) in words."
    headers = data.get("HEADERS") if isinstance(data.get("HEADERS"), dict) else {}
    return heard("WS", "/ws", str(headers.get("HX-Trigger") or ""), str(headers.get("HX-Trigger-Name") or ""), data, 0)


class InteractionTap:
    """ASGI middleware: tell each htmx request once it is answered, in the route's words if it said
    any. `tell(session, lines, change, tab)`: `change` when it changed the app. It is told
    before the response's last byte leaves, so the model hears of a change before anything the
    user does after seeing it (a chat message sent at once)."""

    def __init__(self, app, tell: Callable[[str, list[str], bool, str], Awaitable[None]]):
        self.app, self.tell = app, tell

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        # Not the page's htmx (a script's request, a plain form's, a tab fetching its page again):
        # told only what a route said it changed.
        htmx = headers.get(b"hx-request") == b"true" and headers.get(b"x-loop-refresh") != b"1"
        body, shown, status = bytearray(), bytearray(), [0, False]

        async def receive_and_keep():
            message = await receive()
            if htmx and message["type"] == "http.request" and len(body) < MAX_BODY_BYTES:
                body.extend(message.get("body", b"")[:MAX_BODY_BYTES - len(body)])
            return message

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                status[1] = b"text/html" in dict(message.get("headers") or []).get(b"content-type", b"")
            elif message["type"] == "http.response.body":
                if htmx and status[1] and len(shown) < MAX_BODY_BYTES:  # a whole page is never told
                    shown.extend(message.get("body", b"")[:MAX_BODY_BYTES - len(shown)])
                if not message.get("more_body"):
                    await self._told(scope, headers, htmx, bytes(body), bytes(shown) if status[1] else None, status[0])
            await send(message)

        await self.app(scope, receive_and_keep, send_and_note)

    async def _told(self, scope, headers: dict, htmx: bool, body: bytes, shown: bytes | None, status: int) -> None:
        sid, made = (scope.get("session") or {}).get("sid"), exchange()
        # Refused for the session's rate, it goes no further.
        if not sid or status == TOO_MANY_REQUESTS or not (htmx or made.said):
            return
        change = scope["method"] not in READS and 200 <= status < 300
        if made.said:
            return await self.tell(sid, made.said, change, made.tab)
        text = text_of(shown.decode(errors="replace")) if shown is not None and 200 <= status < 300 else None
        line = heard(scope["method"], scope["path"], _header(headers, b"hx-trigger"), _header(headers, b"hx-trigger-name"),
                     await form_fields(scope, body), status, _header(headers, b"hx-target"), text)
        await self.tell(sid, [line], change, made.tab)


async def form_fields(scope, body: bytes) -> dict:
    """A request's form as sent (urlencoded, or multipart as FastHTML's forms send it); {} for any
    other body, or one cut at the bound that no longer parses. Files are left out."""
    kind = dict(scope.get("headers") or []).get(b"content-type", b"")
    if b"x-www-form-urlencoded" in kind:
        return dict(parse_qsl(body.decode(errors="replace")))
    if b"multipart/form-data" not in kind:
        return {}

    async def replay():
        return {"type": "http.request", "body": body, "more_body": False}
    try:
        async with Request({**scope, "type": "http"}, replay).form(max_files=0) as form:
            return {k: v for k, v in form.multi_items() if isinstance(v, str)}
    except (MultiPartException, HTTPException, ValueError):  # Starlette re-raises a bad part as a 400
        return {}


def _header(headers: dict, name: bytes) -> str:
    return headers.get(name, b"").decode(errors="replace")
