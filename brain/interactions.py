"""Which of the page's interactions the model hears of, and how: the one declared policy.

Todo changes reach the model as todo events (with the list after them, and a comment once the
clicking pauses), chat messages as turns, and an Undo as the todo changes it makes: their
interactions are not told twice. Every other interaction (a route or control added later
included) goes into the context, to be seen with the next turn, without a comment of its own.
"""
import re

from shared.messages import Interaction

TOLD_OTHERWISE = [
    ("POST", re.compile(r"^/todos$")),
    ("POST", re.compile(r"^/todos/\d+/toggle$")),
    ("DELETE", re.compile(r"^/todos/\d+$")),
]
# htmx-ext-ws fields of the chat itself: a message, its controls (their effect is the next turn or
# reply), the model picker, and Undo (told as the todo changes it makes).
WS_TOLD_OTHERWISE = {"msg", "stop", "retry", "regenerate", "reset", "model", "undo"}


def heard(event: Interaction) -> str | None:
    "What the model is told of an interaction, or None when it hears of it another way."
    if event.method == "WS":
        if WS_TOLD_OTHERWISE & event.values.keys():
            return None
    elif any(event.method == method and path.match(event.path) for method, path in TOLD_OTHERWISE):
        return None
    what = f"#{event.trigger}" if event.trigger else event.name or "the page"
    values = ", ".join(f"{k}={v!r}" for k, v in event.values.items())
    answer = f" → {event.status}" if event.status else ""
    return f"used {what} ({event.method} {event.path}{' ' + values if values else ''}{answer})"
