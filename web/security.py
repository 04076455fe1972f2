"""What the browser is told to enforce, and which requests count as the page's own.

Model output, todo titles and chat text are untrusted. The server only ever sends them as escaped
text; the Content-Security-Policy below is the second wall: no inline script, no eval, no
third-party origin, so even markup that slipped through could not run or phone home.
"""
from urllib.parse import urlsplit

CSP = "; ".join([
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
])
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


def same_origin(headers) -> bool:
    """True unless the request names another origin. Browsers send Origin on every WebSocket
    handshake and every cross-site POST/DELETE; a request without one comes from no web page."""
    origin = headers.get("origin")
    return origin is None or urlsplit(origin).netloc == headers.get("host")


class SecurityHeaders:
    "ASGI middleware adding the headers above to every HTTP response."

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")


def host_name(host: str) -> str:
    "The name in a Host header, without its port (IPv6 brackets off)."
    try:
        return (urlsplit(f"//{host}").hostname or "").lower()
    except ValueError:
        return ""


class AllowedHosts:
    """ASGI middleware: a request (HTTP or WebSocket) whose Host is not one of the app's names is
    refused before anything else runs. A page on another name that resolves to 127.0.0.1 (DNS
    rebinding) sends its own name in Host and in Origin alike, so only this check stops it."""

    def __init__(self, app, names: list[str]):
        self.app, self.names = app, {n.lower().strip("[]") for n in names}

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        host = dict(scope.get("headers") or []).get(b"host", b"").decode("latin-1")
        if host_name(host) in self.names:
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # the connect event; closing now refuses the handshake (403)
            return await send({"type": "websocket.close", "code": 1008})
        await send({"type": "http.response.start", "status": 400,
                    "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
        await send({"type": "http.response.body", "body": b"Unknown host name; see ALLOWED_HOSTS."})
