"""Every htmx interaction of the page reaches the model, once: the one place that sees them all, so a
route or control added to the page is heard with no extra code.

An app's route that tells the model what it changed (`host.changed`, which marks its exchange told:
web/exchange.py) is not told again here, nor are the chat's own controls, which are chat turns or
replies. Every other interaction, an app's route that told nothing included, is told as used, in
one line (`heard`), to be seen with the next turn, without a comment of its own.

HTTP requests carrying `HX-Request` are tapped by an ASGI middleware after they are answered (so
the status is known and the session cookie has been read); htmx-ext-ws frames that are no chat
control are handed in by the chat (web/commands.py). Values are bounded, and fields whose names
suggest a secret are never told.
"""
import json
import re
from collections.abc import Callable
from urllib.parse import parse_qsl

from web.exchange import exchange

SECRET = re.compile(r"pass|secret|token|key|csrf|auth|cookie", re.IGNORECASE)
MAX_VALUES = 20
MAX_VALUE_CHARS = 200
MAX_BODY_BYTES = 16_384
TOO_MANY_REQUESTS = 429


def values_of(fields: dict) -> dict[str, str]:
    "Form values as the model is told them: strings, bounded, secrets left out."
    kept = {}
    for name, value in list(fields.items())[:MAX_VALUES]:
        if isinstance(name, str) and name != "HEADERS" and not SECRET.search(name):
            text = value if isinstance(value, str) else json.dumps(value)
            kept[name[:MAX_VALUE_CHARS]] = text[:MAX_VALUE_CHARS]
    return kept


def heard(method: str, path: str, trigger: str, name: str, fields: dict, status: int) -> str:
    "An interaction in words: which control, where, with what, and how it was answered."
    what = f"#{trigger[:MAX_VALUE_CHARS]}" if trigger else name[:MAX_VALUE_CHARS] or "the page"
    values = ", ".join(f"{k}={v!r}" for k, v in values_of(fields).items())
    answer = f" → {status}" if status else ""
    return f"used {what} ({method} {path[:MAX_VALUE_CHARS]}{' ' + values if values else ''}{answer})"


def ws_heard(data: dict) -> str:
    "An htmx-ext-ws frame (form fields plus the HEADERS htmx adds) in words."
    headers = data.get("HEADERS") if isinstance(data.get("HEADERS"), dict) else {}
    return heard("WS", "/ws", str(headers.get("HX-Trigger") or ""), str(headers.get("HX-Trigger-Name") or ""), data, 0)


class InteractionTap:
    "ASGI middleware: tell each htmx request once it is answered, unless the app told what it changed."

    def __init__(self, app, tell: Callable[[str, str], None]):
        self.app, self.tell = app, tell

    async def __call__(self, scope, receive, send):
        headers = dict(scope.get("headers") or []) if scope["type"] == "http" else {}
        if headers.get(b"hx-request") != b"true":
            return await self.app(scope, receive, send)
        body, status = bytearray(), [0]

        async def receive_and_keep():
            message = await receive()
            if message["type"] == "http.request" and len(body) < MAX_BODY_BYTES:
                body.extend(message.get("body", b"")[:MAX_BODY_BYTES - len(body)])
            return message

        async def send_and_note(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        await self.app(scope, receive_and_keep, send_and_note)
        sid = (scope.get("session") or {}).get("sid")
        # Refused for the session's rate, it goes no further; told by the app, it is heard already.
        if sid and status[0] != TOO_MANY_REQUESTS and not exchange().told:
            form = b"x-www-form-urlencoded" in headers.get(b"content-type", b"")
            fields = dict(parse_qsl(body.decode(errors="replace"))) if form else {}
            self.tell(sid, heard(scope["method"], scope["path"], headers.get(b"hx-trigger", b"").decode(errors="replace"),
                                 headers.get(b"hx-trigger-name", b"").decode(errors="replace"), fields, status[0]))
