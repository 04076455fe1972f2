"""FT components for the page and for the fragments streamed over the WebSocket, and what sends
those to the tabs: the `Relay` fans transcript lines out to every tab of a session, `notify` tells
one tab. Neither holds state: the commands, replies and tool calls decide what changed.

htmx-ext-ws swaps every top-level element of a frame out of band by its id, so each fragment here
carries the id of what it replaces or appends to. All text is escaped (by FT rendering, or by
html.escape on the per-chunk hot path): model output, the app's data and user text are never markup.
"""
import json
import uuid
from html import escape

from fasthtml.common import (A, Article, Button, Details, Div, Form, H2, Input, Link, Meta, Option, Pre, Progress,
                             Script, Section, Select, Small, Span, Summary, to_xml)

from shared.messages import PullOutcome, Stats, full_name
from web.clients import Client, Clients
from web.transcript import LIVE, Line, REGENERABLE, RETRYABLE, Role, Status

REPLY_NOTES = {Status.QUEUED: "Queued: the brain is offline right now. It will answer when it is back."}


def ActionCards(cards: list[dict]):
    "What the model did while replying, each with an Undo (or why it could not)."
    return Div(cls="cards")(*[
        Div(cls=f"card {'ok' if c['ok'] else 'refused'}{' undone' if c.get('undone') else ''}")(
            Span(c["text"]),
            Button("Undo", ws_send=True, hx_vals={"undo": c["call"]}, cls="act outline secondary")
            if c["ok"] and not c.get("undone") and c.get("undoable", True) else Small("undone" if c.get("undone") else ""))
        for c in cards]) if cards else ""


def Bubble(line: Line, oob: bool = False):
    "A transcript line; `oob` replaces the one already on the page."
    bid = line.key
    rendered = Div(cls="md", hx_disable=True) if line.role == Role.REPLY else ""  # filled by app.js: Markdown
    return Article(id=bid, cls=f"msg {line.role} {line.status}", hx_swap_oob="true" if oob else None)(
        Thinking(bid, line.thinking) if line.thinking else "",
        ActionCards(json.loads(line.cards or "[]")),
        Div(line.text, cls="body", id=f"{bid}-body"),
        rendered,
        Small(line.note or REPLY_NOTES.get(line.status, ""), cls="note"),
        *ReplyActions(line.reply, line.role, line.status))


def Thinking(bid: str, thinking: str):
    "A thinking model's reasoning: folded away, separate from the answer, plain text."
    return Details(Summary("thinking"), Div(thinking, cls="thinking-body", id=f"{bid}-thinking"), cls="thinking")


def ReplyActions(reply: str, role: str, status: str):
    """Stop while a reply is on its way; Retry once it failed; Regenerate a finished one (the CSS
    shows that only on the newest reply). All go over the WebSocket."""
    if role != Role.REPLY:
        return ()
    if status in LIVE:
        return (Button("Stop", ws_send=True, hx_vals={"stop": reply}, cls="act outline secondary"),)
    if status in RETRYABLE:
        return (Button("Retry", ws_send=True, hx_vals={"retry": reply}, cls="act outline"),)
    if status in REGENERABLE:
        return (Button("Regenerate", ws_send=True, hx_vals={"regenerate": reply}, cls="act regen outline secondary"),)
    return ()


def Append(*bubbles):
    "Add bubbles at the end of the transcript."
    return Div(*bubbles, id="msg-list", hx_swap_oob="beforeend")


def ChunkText(reply: str, text: str) -> str:
    """Append a streamed piece of text to a reply bubble (the typewriter effect).

    The relay's hot path (once per chunk per tab), so it is a string template with the same
    escaping as FT, not an FT tree: to_xml would cost about 60 µs a chunk."""
    return f'<span id="reply-{reply}-body" hx-swap-oob="beforeend">{escape(text, quote=False)}</span>'


def ThinkingText(reply: str, text: str) -> str:
    "Append streamed reasoning to a reply's thinking section (hot path, like ChunkText)."
    return f'<span id="reply-{reply}-thinking" hx-swap-oob="beforeend">{escape(text, quote=False)}</span>'



def Transcript(bubbles):
    return Div(*bubbles, id="msg-list", aria_live="polite")


def BrainStatus(status: str, text: str):
    "The status line (see web/status.py); the class says its state, the text what to do about it."
    return Span(text, id="brain-status", cls=f"brain {status}", role="status")


def Notice(text: str):
    "A one-off message for this tab only, such as a rejected input."
    return Div(text, id="notice", cls="notice", role="alert")


def stats_note(stats: Stats) -> str:
    "A short line of Ollama's stats; each figure is left out when Ollama did not send it."
    parts = []
    if stats.eval_count is not None:
        parts.append(f"{stats.eval_count} tokens")
        if stats.eval_duration:
            parts.append(f"{stats.eval_count / (stats.eval_duration / 1e9):.1f} tok/s")
    if stats.prompt_eval_duration is not None:
        first = (stats.load_duration or 0) + stats.prompt_eval_duration
        parts.append(f"first token {first / 1e9:.2f} s")
    if stats.done_reason == "length":
        parts.append("cut off at the length limit")
    return " · ".join(parts)


def ModelPicker(models: list[str] | None, chosen: str):
    """Which model answers this session; a change goes over the WebSocket and keeps the conversation.
    `models` is None until the brain has listed Ollama's models: nothing is called "not pulled" before."""
    chosen = full_name(chosen)
    known = models or []
    names = known if chosen in known else [*known, chosen]
    options = [Option(m if models is None or m in models else f"{m} (not pulled)", value=m, selected=m == chosen)
               for m in names]
    return Select(*options, id="model-picker", name="model", ws_send=True, hx_trigger="change",
                  aria_label="Model", title="Which model answers")


def OtherModel():
    "Choose a model by name, pulled or not: one that is not gets the offer to pull it."
    return Form(id="model-form", ws_send=True)(
        Input(name="model", placeholder="another model…", aria_label="Another model by name", maxlength=200,
              required=True, autocomplete="off", title="an Ollama model name, e.g. qwen2.5:0.5b"))


def PullPanel(offer: str | None, pulls: list):
    """The offer to pull the session's model when it is not pulled, and how each pull the session
    follows goes. Everything in it that came from Ollama (steps, errors) is text, never markup."""
    return Div(id="pulls", cls="pulls", aria_live="polite")(
        Button(f"Pull {offer}", ws_send=True, hx_vals={"pull": offer}, cls="outline pull-offer",
               title=f"Download {offer} into Ollama (`ollama pull {offer}`)") if offer else "",
        *[PullBar(p) for p in pulls])


def PullBar(p):
    "One pull (a web.pulls.PullView): a live bar with Cancel while it runs, then one line saying how it ended."
    if p.outcome == PullOutcome.PULLED:
        body = (Span(f"{p.model} is pulled.", cls="what"),)
    elif p.outcome == PullOutcome.CANCELLED:
        body = (Span(f"The pull of {p.model} was cancelled.", cls="what"),)
    elif p.outcome == PullOutcome.FAILED:
        body = (Span(p.error, cls="error"),)
    else:
        percent = min(100, p.completed * 100 // p.total) if p.total else 0
        sizes = f"{percent}% · {size(p.completed)} of {size(p.total)}" if p.total else ""
        body = (Span(f"Pulling {p.model}", cls="what"),
                # Without a size yet (the manifest is being read) the bar is indeterminate.
                Progress(value=p.completed, max=p.total) if p.total else Progress(),
                Small(" · ".join(filter(None, [p.status, sizes])), cls="detail"),
                Button("Cancel", ws_send=True, hx_vals={"cancel_pull": p.pull}, cls="act outline secondary"))
    return Div(*body, id=f"pull-{p.pull}", cls=f"pull {p.outcome or 'running'}")


def size(n: int) -> str:
    "Bytes as a person reads them (decimal units, as Ollama's own progress shows them)."
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def Persona(prompt: str):
    "The system prompt, for anyone who wonders why the model talks like that."
    return Details(Summary("The model's instructions"), Pre(prompt, cls="persona"), cls="persona")


def Chat(tab: str, bubbles, status, max_chat_chars: int, persona: str, picker, pulls, placeholder: str):
    "The chat, the same beside every app's page; `tab` names the page, so its own changes are not sent back to it."
    return Section(cls="chat", id="chat", hx_ext="ws", ws_connect=f"/ws?tab={tab}", data_tab=tab)(
        Div(H2("Chat"), Div(
            status, picker,
            A("Export .md", href="/export/markdown", download=True),
            A("Export .json", href="/export/json", download=True),
            Button("New chat", ws_send=True, hx_vals={"reset": "all"}, id="new-chat",
                   cls="outline secondary", title="Forget this conversation"), cls="chat-actions"),
            cls="chat-head"),
        Div(OtherModel(), pulls, cls="models"),
        Transcript(bubbles),
        Div(id="notice"),
        Div(id="loop-refresh", hidden=True),
        Form(id="chat-form", ws_send=True)(
            Input(id="msg", name="msg", placeholder=placeholder, required=True,
                  maxlength=max_chat_chars, autocomplete="off", autofocus=True),
            Button("Send")),
        Persona(persona))


def Refresh():
    """Sent to a tab when the app changed in another one (or by the model): it fetches the app's part
    of its page again (app.js), whatever the app is."""
    return Div(id="loop-refresh", hidden=True, hx_swap_oob="true", data_at=uuid.uuid4().hex)


def local_heads(heads) -> list:
    """The layer's head elements, then those of a plain app that stay on this machine (a style, a
    meta, a script or stylesheet served by the app itself): FastHTML's defaults from a CDN would
    not load offline, and would tell a third party who uses the app."""
    def local(h) -> bool:
        url = str(h.attrs.get("src") or h.attrs.get("href") or "") if hasattr(h, "attrs") else ""
        if getattr(h, "tag", "") == "meta" and ("charset" in h.attrs or h.attrs.get("name") == "viewport"):
            return False  # the layer's own say how the page reads
        return getattr(h, "tag", "") in ("style", "meta", "script", "link") and not url.startswith(("http:", "https:", "//"))
    return [*head_assets(), *[h for h in heads or () if local(h)]]


def head_assets():
    "Every script and stylesheet is served by the app itself, so the page works offline."
    return [
        Meta(charset="utf-8"),
        Meta(name="viewport", content="width=device-width, initial-scale=1"),
        Meta(name="htmx-config",
             content='{"allowEval": false, "allowScriptTags": false, "includeIndicatorStyles": false}'),
        Link(rel="icon", href="data:,"),
        Link(rel="stylesheet", href="/vendor/pico.min.css"),
        Link(rel="stylesheet", href="/static/app.css"),
        Script(src="/vendor/htmx.min.js"),
        Script(src="/vendor/ws.js"),
        Script(src="/vendor/markdown-it.min.js"),
        Script(src="/vendor/purify.min.js"),
        Script(src="/static/app.js"),
    ]


def notify(client: Client, text: str) -> None:
    "A one-off message for one tab, such as a refused input (empty: clear it)."
    client.send(to_xml(Notice(text)))


class Relay:
    "Transcript lines and the views' fragments, rendered once and sent to every tab of a session."

    def __init__(self, clients: Clients):
        self.clients = clients

    def append(self, session: str, *lines: Line) -> None:
        "New lines at the end of the transcript."
        self.clients.send(session, to_xml(Append(*[Bubble(line) for line in lines])))

    def show(self, session: str, line: Line) -> None:
        "A line changed: it is replaced where it stands."
        self.clients.send(session, to_xml(Bubble(line, oob=True)))

    def words(self, session: str, reply: str, text: str, thinking: str) -> None:
        "Streamed words appended to a reply (the hot path: string templates, not FT trees)."
        if thinking:
            self.clients.send(session, ThinkingText(reply, thinking))
        if text:
            self.clients.send(session, ChunkText(reply, text))

    def refresh(self, session: str, but: str = "") -> None:
        """The app changed: every tab of the session fetches its part of the page again (but the tab
        `but`, which made the change itself and has it from its own request)."""
        self.clients.send(session, to_xml(Refresh()), but)

    def fragments(self, session: str, html: str) -> None:
        "What the views rendered (the picker, the status line…), for every tab of the session."
        self.clients.send(session, html)

    def transcript(self, session: str, lines: list[Line]) -> None:
        self.clients.send(session, to_xml(Transcript([Bubble(line) for line in lines])))
