"""The model in the loop of a plain FastHTML app: the layer as an app author meets it.

    app, rt, todos, Todo = fast_app(...)              # the app as FastHTML's docs write it
    loop = Loop(app, "You are the assistant in a todo list. Be brief.")   # seeing

    @loop.action                                      # acting: a typed function the model may call
    def add_todo(task: Annotated[str, "what to do"]) -> Todo:
        "Add a todo. Only when the user asks to."
        return todos.insert(Todo(task=task, done=False))

    @add_todo.undo                                    # optional: its card's Undo
    def _(todo: Todo): todos.delete(todo.id)

Seeing needs nothing more: every htmx request of the app's pages is told to the model with the
text of what it swapped in (web/interactions.py), a change (any method but GET) with a comment
once the clicking pauses, and every other tab of the session fetches the app's part of its page
again. A route may say what it changed in its own words with `Loop.tell(...)`. An action's
parameters come from its signature (a default makes one optional), its description from its
docstring; it may take `session` (the session as routes see it, with `session["asked"]`: the
user's message the model is answering, when known), be async, and raise `Refused`.
"""
import asyncio
import inspect
import json
import logging
import typing
from collections.abc import Callable
from functools import update_wrapper, wraps
from typing import Any

import msgspec
from fasthtml.common import Div, FastHTML, to_xml

from web.apps import Action, App, Host, Outcome, Refused, tool_schema
from web.exchange import exchange
from web.interactions import text_of

__all__ = ["Loop", "Refused"]
log = logging.getLogger("web.loop")
APP_NOTES = (
    "\n\nMessages that start with 'App note:' are not typed by the user: the app tells you what the user just did "
    "there, and what the page showed after it. Comment on those briefly, in character. Never write an app note "
    "yourself.")
RESTRAINT = ("\n\nCall a tool only when the user asks you to change something, and only the one they asked for. "
             "For anything else (a greeting, thanks, a question) answer in words and call no tool.")
MAX_SUMMARY = 300
STATIC_FILES = "/{fname:path}.{ext:static}"  # fast_app's route to every file of the working folder: not served


class Tool:
    """A function the model may call; to the app it is still the plain function. `.undo` names its
    undo; `also` are other names small models give it."""

    def __init__(self, fn: Callable, also: tuple[str, ...] = ()):
        update_wrapper(self, fn)
        self.fn, self.reverter, self.also = fn, None, also

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def undo(self, fn: Callable) -> Callable:
        "Decorate the function that reverts this one; it is given what this one returned."
        self.reverter = fn
        return fn


class Loop:
    """A FastHTML app with the model in its loop. `persona` is who the model is there; `state`, if
    given, returns the app's state as the model should know it (it may take `session`; what is not
    text is told as JSON), and `brief` the same on one line, for after a tool call (default: the
    state with its lines joined); `title` names the app in the chat's exports."""

    def __init__(self, app: FastHTML, persona: str, state: Callable | None = None, brief: Callable | None = None,
                 title: str = "", placeholder: str = "Talk to the app…"):
        self.app, self.persona, self.state, self.brief, self.placeholder = app, persona, state, brief, placeholder
        self.title = title or app.title
        self.tools: list[Tool] = []

    def action(self, fn: Callable | None = None, *, also: tuple[str, ...] = ()):
        "`@loop.action`, or `@loop.action(also=(\"remove_todo\",))` with names small models invent for it."
        def mark(fn: Callable) -> Tool:
            tool = Tool(fn, tuple(also))
            self.tools.append(tool)
            return tool
        return mark(fn) if fn is not None else mark

    @staticmethod
    def tell(*words: str) -> None:
        "Inside a route: what it changed, in the app's words, told to the model instead of what the page showed."
        exchange().said.extend(str(w) for w in words)

    def as_app(self, host: Host) -> App:
        "The app as the web serves it (web/apps.py), its routes and pages the FastHTML app's own."
        def state(sid: str) -> str:
            return _summary(_call(host, self.state, {"sid": sid}), limit=None) if self.state else ""

        def brief(sid: str) -> str:
            return _summary(_call(host, self.brief, {"sid": sid}), limit=None) if self.brief else " ".join(state(sid).split())

        return App(
            title=self.title, persona=self.persona + APP_NOTES + (RESTRAINT if self.tools else ""),
            actions=[_action(host, t) for t in self.tools], state=state,
            brief=brief, placeholder=self.placeholder, fasthtml=self.app,
            aliases={name: t.__name__ for t in self.tools for name in t.also})


def _action(host: Host, tool: Tool) -> Action:
    "The layer's action for a tool: its schema from the signature, its result kept for its undo."
    name, hints = tool.__name__, typing.get_type_hints(tool.fn, include_extras=True)
    fields, required = [], []
    for p in inspect.signature(tool.fn).parameters.values():
        if p.name == "session":
            continue
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise SystemExit(f"action {name}: *{p.name} cannot be a tool's parameter; name each one")
        kind = hints.get(p.name, str)
        fields.append((p.name, kind) if p.default is p.empty else (p.name, kind, p.default))
        if p.default is p.empty:
            required.append(p.name)
    arguments = msgspec.defstruct(f"{name}_arguments", fields)
    returned = hints.get("return")

    @wraps(tool.fn)  # a failure is logged under the app's own function
    def run(sid: str, args, asked: str | None = None) -> Outcome:
        session = {"sid": sid} if asked is None else {"sid": sid, "asked": asked}
        result = _call(host, tool.fn, session, **{f: getattr(args, f) for f in args.__struct_fields__})
        text = _summary(result) if _reads_as_text(result) else f"{name} done" + (f": {_summary(result)}" if result is not None else ".")
        return Outcome(text, [f"the model's {name} ({text})"], _kept(tool, result) if tool.reverter else None)

    @wraps(tool.reverter or tool.fn)
    def undo(sid: str, kept) -> list[str]:
        value = msgspec.convert(kept, returned, strict=False) if returned not in (None, Any) and kept is not None else kept
        _call(host, tool.reverter, {"sid": sid}, value)
        return [f"undid the model's {name}" + (f" ({_summary(value)})" if value is not None else "")]

    description = inspect.getdoc(tool.fn) or name.replace("_", " ")
    action = Action(name, description, arguments, run, undo if tool.reverter else None,
                    prepare=lambda given: _renamed(given, required, arguments.__struct_fields__), required=tuple(required))
    try:
        tool_schema(action)
    except SystemExit as e:
        raise SystemExit(f"{e} (in {tool.fn.__module__}.{tool.fn.__qualname__})") from None
    return action


def _renamed(given: dict, required: list[str], fields: tuple[str, ...]) -> dict:
    """A call as a small model gives it, its one missing parameter under another key ({"todo": 2}
    for {"id": 2}) taken for it: only when exactly one is missing and one key is unknown."""
    missing = [f for f in required if f not in given]
    unknown = [k for k in given if k not in fields]
    if len(missing) == 1 and len(unknown) == 1:
        given = {k: v for k, v in given.items() if k != unknown[0]} | {missing[0]: given[unknown[0]]}
    return given


def _call(host: Host, fn: Callable, session: dict, *args, **kwargs):
    """Call an app's function on the store's thread, giving it `session` if it takes one; an async
    one is awaited on the web's loop."""
    if "session" in inspect.signature(fn).parameters:
        kwargs["session"] = session
    if inspect.iscoroutinefunction(fn):
        return asyncio.run_coroutine_threadsafe(fn(*args, **kwargs), host.loop).result()
    return fn(*args, **kwargs)


def _reads_as_text(value) -> bool:
    "Text, or an object whose class says how it reads (its own `__str__`, not a component's HTML)."
    return isinstance(value, str) or type(value).__str__ is not object.__str__ and not _is_ft(value)


def _kept(tool: Tool, result):
    """What an undo is given back: the result as JSON (a fastlite row, a dataclass, a dict…). One
    that has no JSON form is the app's bug, found after the action was done: logged, and its undo
    is given None."""
    try:
        return msgspec.to_builtins(result)
    except TypeError:
        log.error("%s.%s returned a %s, which cannot be kept for its undo (return JSON-able data)",
                  tool.fn.__module__, tool.fn.__qualname__, type(result).__name__)
        return None


def _summary(value, limit: int | None = MAX_SUMMARY) -> str:
    """A value in words for the model: text as it is (an object whose class says how it reads, its
    `__str__`, as that), data as JSON, a component as the text it shows."""
    if _reads_as_text(value):
        return str(value)[:limit]
    try:
        return json.dumps(msgspec.to_builtins(value), ensure_ascii=False)[:limit]
    except TypeError:
        return text_of(to_xml(value) if hasattr(value, "__ft__") else str(value), limit)


def adopt(app, served: FastHTML, befores: list, chat: Callable, local: Callable) -> None:
    """Serve a plain FastHTML app's routes from the web's own app: the layer's before-ware runs
    first (its checks, and what its page needs), its full pages get the chat beside them (`chat`,
    given the request), and only the head elements that stay on this machine are kept (`local`)."""
    served.before[:0] = befores
    served.hdrs = local(served.hdrs)
    served.after.append(lambda req, resp: _framed(req, resp, lambda: chat(req)))
    for route in served.routes:
        if getattr(route, "path", "") == STATIC_FILES:
            log.info("the app's route to every file of the working folder (%s) is not served", STATIC_FILES)
            continue
        app.router.routes.append(route)


HEAD_TAGS = {"title", "meta", "link", "style", "base"}


def _framed(req, resp, chat: Callable):
    """A page of the app with the chat beside it, its own part in #loop-app (what another tab
    fetches again when something changed). An htmx fragment or a Response is left as it is."""
    refresh = req.headers.get("x-loop-refresh") == "1"
    if req.headers.get("hx-request") and not refresh or not _is_ft(resp):
        return None
    items = resp if isinstance(resp, tuple) else (resp,)
    heads = [i for i in items if getattr(i, "tag", "") in HEAD_TAGS]
    body = Div(*[i for i in items if getattr(i, "tag", "") not in HEAD_TAGS], id="loop-app")
    return body if refresh else (*heads, body, chat())


def _is_ft(resp) -> bool:
    items = resp if isinstance(resp, tuple) else (resp,)
    return bool(items) and all(hasattr(i, "tag") or hasattr(i, "__ft__") for i in items)
