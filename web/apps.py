"""The app layer inside: the `App` the web serves, and how the web loads it.

An app is a plain FastHTML app wrapped in a `Loop` (web/loop.py), which builds this `App` from it:

- its **actions**: what the model may call, each with a description, typed parameters (a msgspec
  Struct, from which the tool's schema is made), a handler and its undo;
- its state as the model is told it (`state`, and `brief` on one line after a tool call); what an
  action or its undo changed is said in words (`Change`), and every tab fetches the page again;
- the FastHTML app whose routes and pages the web serves (`fasthtml`).

The web does the rest: the chat, the bus, telling the model every htmx interaction (web/interactions.py),
applying each call once with its card and Undo (web/actions.py), and telling the brain, which knows
no app. Which app runs is APP.
"""
import enum
import importlib
import os
import sys
import types
import typing
import unicodedata
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from shared.config import Settings
from shared.messages import Prompt

DEFAULT_APP = "todo"
Change = str  # what an action or an undo changed, in words: "the model's add_todo (Added #3 'milk'.)"


class Refused(Exception):
    "An action that cannot be done as asked; the text tells the model (or the user) what to do instead."


def plain_text(value, what: str) -> str:
    """Text from a form or a call as an app keeps it (spaces folded), or Refused naming `what`: it is
    not text (a file sent as a form field), or it holds a control character (NUL, ESC…) or a lone
    surrogate (a JSON body may hold one), which no store or message could encode."""
    if not isinstance(value, str):
        raise Refused(f"{what} is text, not a file.")
    text = " ".join(value.split())
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise Refused(f"{what} cannot hold control characters (such as NUL).")
    try:
        text.encode()
    except UnicodeEncodeError:
        raise Refused(f"{what} holds a character that cannot be stored (a lone surrogate).") from None
    return text


@dataclass
class Outcome:
    """What an action did: `text` for the model and the action's card, the `changes` it made in words
    (any: every tab fetches the app again), and `undo`: what the app's undo needs to revert it exactly (JSON)."""
    text: str
    changes: list[Change] = field(default_factory=list)
    undo: Any = None


@dataclass(frozen=True)
class Action:
    """A tool the model may call. `arguments` is a msgspec Struct: its fields, with the descriptions
    in their `Annotated[..., msgspec.Meta(description=...)]`, are the tool's parameters. `run(session,
    arguments, asked) -> Outcome` (`asked`: the user's message the call's reply answers; None when
    not known) and `undo(session, Outcome.undo) -> changes` run on the store's thread and raise
    Refused when they cannot. `prepare` may reshape the arguments a small model gave (a key
    it named otherwise) before they are checked."""
    name: str
    description: str
    arguments: type
    run: Callable[[str, Any, str | None], Outcome]
    undo: Callable[[str, Any], list[Change]] | None  # None: it cannot be undone, and its card has no Undo
    prepare: Callable[[dict], dict] = lambda arguments: arguments
    required: tuple[str, ...] | None = None  # the parameters a call must give; None: every one


@dataclass(frozen=True)
class App:
    title: str
    persona: str  # the system message: who the model is in this app, and when to call a tool
    actions: list[Action]
    state: Callable[[str], str]  # on the store's thread: the state as the model is told it
    brief: Callable[[str], str]  # the same on one line, after a tool call (small models echo a list back)
    fasthtml: Any  # the FastHTML app whose routes and pages the web serves
    aliases: dict[str, str] = field(default_factory=dict)  # tool names small models invent, for the real ones
    placeholder: str = "Talk to the app…"

    def prompt(self, settings: Settings) -> Prompt:
        "The system message (SYSTEM_PROMPT replaces the persona) and the tools: the same bytes every time."
        tools = [tool_schema(a) for a in self.actions] if settings.tools else []
        return Prompt(settings.system_prompt or self.persona, tools)

    def action(self, name: str) -> Action | None:
        name = self.aliases.get(name, name)
        return next((a for a in self.actions if a.name == name), None)


@dataclass
class Host:
    "What the web gives an app as it loads it: its settings, and its event loop once it runs."
    settings: Settings
    loop: Any = None  # where an app's async action is awaited


JSON_TYPES = {int: "integer", str: "string", bool: "boolean", float: "number"}


def tool_schema(action: Action) -> dict:
    """Ollama's tool definition for an action. Unless the action says which, every parameter is listed
    as required (small models leave out what is optional, then guess); a default only covers a model
    that still does. A description is a `msgspec.Meta`'s or a plain string in `Annotated`. A
    field typed `A | B` is offered as A, the form the model should use; B is accepted too. A
    `Literal` or an Enum is offered as its values, a `list[X]` as an array of X; a type that has no
    such form stops the web with the action and field named."""
    hints = typing.get_type_hints(action.arguments, include_extras=True)
    properties = {}
    for name in action.arguments.__struct_fields__:
        kind, description = hints[name], ""
        if typing.get_origin(kind) is typing.Annotated:
            kind, *extras = typing.get_args(kind)
            description = next((m if isinstance(m, str) else m.description for m in extras
                                if isinstance(m, str) or isinstance(m, msgspec.Meta) and m.description), "")
        try:
            properties[name] = {**_json_type(kind), **({"description": description} if description else {})}
        except TypeError as e:
            raise SystemExit(f"action {action.name}: its parameter {name!r} is {e}; a tool's parameters are str, int, "
                             "float, bool, a Literal, an Enum or a list of those") from None
    return {"type": "function", "function": {
        "name": action.name, "description": action.description,
        "parameters": {"type": "object", "properties": properties,
                       "required": list(properties) if action.required is None else list(action.required)}}}


def _json_type(kind) -> dict:
    "The JSON schema of a parameter's type, in the plain forms small models read best."
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        return _json_type(typing.get_args(kind)[0])
    if typing.get_origin(kind) is typing.Literal:
        values = list(typing.get_args(kind))
        return {"type": JSON_TYPES.get(type(values[0]), "string"), "enum": values}
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        values = [member.value for member in kind]
        return {"type": JSON_TYPES.get(type(values[0]), "string"), "enum": values}
    if typing.get_origin(kind) is list and typing.get_args(kind):
        return {"type": "array", "items": _json_type(typing.get_args(kind)[0])}
    if kind in JSON_TYPES:
        return {"type": JSON_TYPES[kind]}
    raise TypeError(f"typed {getattr(kind, '__name__', kind)!r}, which has no JSON form here")


@contextmanager
def _data_dir(path: Path):
    "DATA_DIR as the app's own folder while it is imported (then as it was: tests load many apps in one process)."
    before = os.environ.get("DATA_DIR")
    os.environ["DATA_DIR"] = str(path)
    try:
        yield
    finally:
        if before is None:
            del os.environ["DATA_DIR"]
        else:
            os.environ["DATA_DIR"] = before


def load(name: str, host: Host) -> App:
    """The app called `name`: a package or module under apps/ (APP=reading) or any importable module,
    which wraps its FastHTML app in one `web.loop.Loop`. It is imported afresh, with DATA_DIR set to
    its own data folder, where it keeps its database (so each web a test makes in one process has its own)."""
    module_name = name or DEFAULT_APP
    for candidate in [module_name] if "." in module_name else [f"apps.{module_name}", module_name]:
        try:
            sys.modules.pop(candidate, None)  # imported afresh: a plain app keeps its state (its database) in its module
            with _data_dir(host.settings.data_dir):
                module = importlib.import_module(candidate)
            break
        except ModuleNotFoundError as e:
            parts = candidate.split(".")
            if e.name not in {".".join(parts[:n]) for n in range(1, len(parts) + 1)}:
                # The app is there, but something it imports is not: say that, not "no such app".
                raise SystemExit(f"APP={name!r}: {candidate} could not be imported: {e}") from None
    else:
        raise SystemExit(f"APP={name!r}: no such app; the apps are under apps/, or name any importable module "
                         "with a Loop")
    loops = [v for v in vars(module).values() if callable(getattr(type(v), "as_app", None))]
    if len(loops) != 1:
        raise SystemExit(f"APP={name!r}: {module.__name__} has {'more than one Loop' if loops else 'no Loop'}: wrap its "
                         "FastHTML app in one, loop = Loop(app, persona) (see web/loop.py)")
    return loops[0].as_app(host)
