"""Every HTMX interaction the page makes, on the bus as an `interaction` event: the one place that
sees them all, so a route or control added to the page reaches the bus, the tail and the model's
context with no extra code. (What the model makes of each is declared in brain/interactions.py.)

HTTP requests carrying `HX-Request` are tapped by an ASGI middleware after they are answered (so
the status is known and the session cookie has been read); htmx-ext-ws frames are handed in by the
WebSocket handler. Values are bounded, and fields whose names suggest a secret are never sent.
"""
import json
import re
import uuid
from collections.abc import Callable
from urllib.parse import parse_qsl

from shared.messages import Interaction

SECRET = re.compile(r"pass|secret|token|key|csrf|auth|cookie", re.IGNORECASE)
MAX_VALUES = 20
MAX_VALUE_CHARS = 200
MAX_BODY_BYTES = 16_384
TOO_MANY_REQUESTS = 429


def values_of(fields: dict) -> dict[str, str]:
    "Form values as the bus carries them: strings, bounded, secrets left out."
    kept = {}
    for name, value in list(fields.items())[:MAX_VALUES]:
        if isinstance(name, str) and name != "HEADERS" and not SECRET.search(name):
            text = value if isinstance(value, str) else json.dumps(value)
            kept[name[:MAX_VALUE_CHARS]] = text[:MAX_VALUE_CHARS]
    return kept


class InteractionTap:
    "ASGI middleware: publish each htmx request once it is answered."

    def __init__(self, app, publish: Callable[[Interaction], None]):
        self.app, self.publish = app, publish

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
        if sid and status[0] != TOO_MANY_REQUESTS:  # refused for the session's rate: it goes no further
            form = b"x-www-form-urlencoded" in headers.get(b"content-type", b"")
            fields = dict(parse_qsl(body.decode(errors="replace"))) if form else {}
            self.publish(interaction(sid, scope["method"], scope["path"], headers.get(b"hx-trigger", b"").decode(errors="replace"),
                                     headers.get(b"hx-trigger-name", b"").decode(errors="replace"), fields, status[0]))


def interaction(sid: str, method: str, path: str, trigger: str, name: str, fields: dict, status: int) -> Interaction:
    return Interaction(session=sid, request=uuid.uuid4().hex, method=method, path=path[:MAX_VALUE_CHARS],
                       trigger=trigger[:MAX_VALUE_CHARS], name=name[:MAX_VALUE_CHARS], values=values_of(fields),
                       status=status)


def ws_interaction(sid: str, data: dict) -> Interaction:
    "An htmx-ext-ws frame (form fields plus the HEADERS htmx adds) as an interaction."
    headers = data.get("HEADERS") if isinstance(data.get("HEADERS"), dict) else {}
    return interaction(sid, "WS", "/ws", str(headers.get("HX-Trigger") or ""), str(headers.get("HX-Trigger-Name") or ""),
                       data, 0)
