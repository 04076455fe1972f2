"""The HTTP request being handled, as the layer needs to know it: the tab it came from and what the
app's route said it changed.

Each page is given its own tab id, which its WebSocket and its htmx requests carry (`?tab=` and
`X-Tab`): a change the user makes through the app's routes is shown to the session's other tabs
(the tab that made it has it already, from the response it swapped in). A route may say what it
changed in its own words (`Loop.tell`); one that does not is told from what its response swapped
in (web/interactions.py), so forgetting to tell is never silence.

One `Exchange` per request, in a contextvar that the `Exchanges` middleware sets, since the app's
routes call `Loop.tell(...)` and know nothing of either. It is an object the route changes in
place, so the middlewares around the route see what it did.
"""
import re
from contextvars import ContextVar
from dataclasses import dataclass, field

from starlette.datastructures import Headers

TAB_ID = re.compile(r"[0-9a-f]{32}\Z")  # a uuid4's hex, as the page is given it


@dataclass
class Exchange:
    tab: str = ""  # the tab that made the request; "" for none (a script)
    said: list[str] = field(default_factory=list)  # what it changed in the app's own words (Loop.tell)


_current: ContextVar[Exchange | None] = ContextVar("exchange", default=None)


def exchange() -> Exchange:
    "The request being handled (outside one: a blank that nobody reads)."
    return _current.get() or Exchange()


def tab_id(raw: str | None) -> str:
    "A tab id as a page sent it, or \"\" for anything else."
    return raw if raw and TAB_ID.match(raw) else ""


class Exchanges:
    "ASGI middleware: an `Exchange` for each HTTP request, for the request's own task."

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = _current.set(Exchange(tab=tab_id(Headers(scope=scope).get("x-tab"))))
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)
