"""Tool calls a model wrote as text instead of as Ollama's `tool_calls`, taken out of its reply.

Small models often write a call as plain text: a bare JSON object, the same in a ```json fence,
inside <tool_call> tags their template does not use, or several (a list, one per line). Ollama
parses calls only in the form the model's template declares, so it streams these as ordinary
content: the chat would show raw JSON and nothing would be done. `CallFilter` sits on the reply's
stream. While the round's text could still begin with a call, it holds it back (a few hundred
characters until the call names a tool, then until it closes) and takes the call out once it is
whole. Anything that turns out not to be a call is shown as written, and so is all that follows.

A call is an object with a `name` and its `arguments` (or `parameters`, or flat beside the name),
optionally wrapped as `{"function": {...}}`. It names one of the offered tools, or has the exact
shape of a call (a short name and `arguments`): such a call to a tool that does not exist (small
models invent `get_list`, or put an item's title as the name) is still a call, answered with an
error that names the tools, never shown as JSON.

Only a call the model meant is taken: one written where a round's text holds nothing but calls.
Small models that mean to call write the call as their whole reply or at its very start (bare, in
a ```json fence of its own, in tags, as a list or one per line), often with words after it ("On
it."). A call explained or quoted comes after words ("you could call", "for example:", "Sure,
like this:"), in a ```python fence, indented as code, in a longer block of other code, quoted with
">" or in the middle of a line. So calls are taken only until the round first shows text that is
not whitespace and not a call; from there on the rest of the round is shown as written, calls and
all, and never applied. This is Ollama's own rule for templates whose calls are bare JSON (a call
only when the output starts with one). A call written after words that was meant is shown, not
done: a visible miss the user can ask again, where the other way round a quote would have changed
the list. Words after a call cannot be told from the model's own "Done!" after a real call, so a
call at the start followed by an explanation is still taken.

Text is JSON only as RFC 8259 has it: `json.loads` also takes NaN, Infinity, -Infinity and turns
1e999 into infinity, which no request can carry on (the conversation keeps the call, and every
later request of its session would fail to encode). Such text is no call and is shown as written,
as Ollama, whose parser refuses them too, would send it. A value nested deeper than MAX_DEPTH is
no call either (tool arguments are flat; json.loads would raise RecursionError on deep input), so
no text can make the filter raise.

The filter also drops a marker the reply starts with (e.g. the app's own "[app]"), which small
models copy from the app's reports.
"""
import json
import math
import re
from enum import Enum

from brain.ollama_client import ToolCall, call_arguments

HOLD_UNNAMED = 300  # characters held before the text names a tool; past it, it is shown
HOLD_NAMED = 4000  # characters held for a call that names a tool to close
MAX_DEPTH = 20  # brackets a call may nest: a call in a list in {"tool_calls": …} with its arguments is 4 or 5
FENCE = "```"
FENCE_LANGS = {"", "json", "tool_call", "tool_code", "tool", "function"}
TAGS = {"<tool_call>": "</tool_call>", "<tool_calls>": "</tool_calls>", "<function_call>": "</function_call>",
        "<functioncall>": "</functioncall>"}
CALL_NAME = re.compile(r"^[^\n\"]{1,200}$")  # a call's shape with a name that is no tool's (e.g. an item's title)
NAMED = re.compile(r'"(?:name|function)"\s*:\s*"([^"\\]{0,200})"')
FIRST_KEY = re.compile(r'^\s*"([^"\\]*)("?)')
CALL_KEYS = {"name", "function", "type", "id", "tool", "arguments", "parameters", "tool_calls", "calls"}
WORDS_KEYS = {"response", "reply", "answer", "message", "content", "text"}  # {"response": "..."}: a reply in JSON


class Verdict(Enum):
    CALL = "call"  # the held text starts with calls: taken out
    TEXT = "text"  # it is not a call: shown
    MAYBE = "maybe"  # it could still become one: held
    WORDS = "words"  # a reply wrapped in JSON ({"response": "..."}): its words are shown, not the JSON


class NotStrictJson(ValueError):
    "JSON that no request could carry on (NaN, Infinity, a number out of range) or nested past MAX_DEPTH."


class CallFilter:
    """One round of a reply. `feed` each piece of text as it streams and show what it returns;
    `finish` at the end gives the rest to show and the calls found. `names` are the offered tools
    (None: no tools are offered, so nothing is taken for a call)."""

    def __init__(self, names: set[str] | None, markers: tuple[str, ...] = ()):
        self.names = names
        self.markers = markers
        self.calls: list[ToolCall] = []
        self.held = ""
        self.started = False  # something was shown or taken: a marker is stripped only before that
        self.quoted = False  # words were shown: whatever follows is shown as written, calls and all
        self.trim = ""  # characters to drop from the start of what comes next (after a marker or a call)

    def feed(self, text: str) -> str:
        self.held += text
        return self._release(final=False)

    def finish(self) -> tuple[str, list[ToolCall]]:
        shown = self._release(final=True)
        rest, self.held = self.held, ""
        return shown + (rest if rest.strip() else ""), self.calls

    def _release(self, final: bool) -> str:
        shown = []
        while self.held:
            if self.trim:
                self.held = self.held.lstrip(self.trim)
                if not self.held:
                    break
            if self.quoted:
                shown.append(self.held)
                self.held = self.trim = ""
                break
            if not self.started and self._strip_marker(final) is Verdict.MAYBE:
                break
            verdict, end, calls = self._classify(self.held, final)
            if verdict is Verdict.MAYBE:
                break
            self.started = True
            if verdict is Verdict.CALL:
                self.calls.extend(calls)
                # What small models leave around a call: a second closing brace, a comma before the next.
                self.held, self.trim = self.held[end:], " \t\r\n}],"
            elif verdict is Verdict.WORDS:
                shown.append(calls[0])
                self.held, self.trim, self.quoted = self.held[end:], " \t\r\n}],", True
            else:
                self.trim, self.quoted = "", True
        return "".join(shown)

    def _strip_marker(self, final: bool) -> Verdict:
        head = self.held.lstrip()
        for marker in self.markers:
            if head[:len(marker)].lower() == marker.lower():
                while head[:len(marker)].lower() == marker.lower():  # some models repeat it
                    head = head[len(marker):].lstrip(" :")
                self.held, self.trim = head, " :"
                return Verdict.MAYBE if not final and marker.lower().startswith(head.lower()) else Verdict.TEXT
            if not final and marker.lower().startswith(head.lower()):
                return Verdict.MAYBE
        return Verdict.TEXT

    def _classify(self, held: str, final: bool) -> tuple[Verdict, int, list[ToolCall]]:
        "What the held text, which nothing but calls comes before, begins with; and where the calls end."
        s = held.lstrip()
        at = len(held) - len(s)
        if not s:
            return Verdict.MAYBE, 0, []  # only whitespace: it goes with what follows, or is dropped at the end
        if self.names is None:
            return Verdict.TEXT, 0, []
        if s.startswith(FENCE):
            line_end = s.find("\n")
            if self.calls and s[len(FENCE):line_end if line_end >= 0 else len(s)].strip() == "" and (line_end >= 0 or final):
                return Verdict.CALL, at + (line_end + 1 if line_end >= 0 else len(s)), []  # a fence closing a bare call
            if line_end < 0:
                return self._unfinished(s, final, limit=len(FENCE) + 12)
            if s[len(FENCE):line_end].strip().lower() not in FENCE_LANGS:
                return Verdict.TEXT, 0, []
            verdict, end, calls = self._block(s, line_end + 1, FENCE, final)
        elif tag := next((t for t in TAGS if s[:len(t)].lower() == t), None):
            verdict, end, calls = self._block(s, len(tag), TAGS[tag], final)
        elif any(t.startswith(s.lower()) for t in TAGS):
            return self._unfinished(s, final, limit=16)
        elif s[0] in "{[":
            verdict, end, calls = self._block(s, 0, None, final)
        elif FENCE.startswith(s):
            return self._unfinished(s, final, limit=3)
        else:
            return Verdict.TEXT, 0, []
        return verdict, at + end, calls

    def _unfinished(self, s: str, final: bool, limit: int) -> tuple[Verdict, int, list]:
        return (Verdict.TEXT if final or len(s) > limit else Verdict.MAYBE), 0, []

    def _block(self, s: str, start: int, closer: str | None, final: bool) -> tuple[Verdict, int, list[ToolCall]]:
        """JSON values from `start`, up to `closer` (a fence or a closing tag; None: one bare value).
        Every value must be a call."""
        calls, i, took = [], start, False
        while True:
            i = _skip(s, i, ", \t\r\n" if closer else " \t")
            if closer and s.startswith(closer, i):
                return (Verdict.CALL, i + len(closer), calls) if took else (Verdict.TEXT, 0, [])
            if i >= len(s) or (closer is None and took):
                break
            if closer and closer.startswith(s[i:].lower()):  # the closer is still arriving
                i = len(s)
                break
            if s[i] not in "{[":
                return Verdict.TEXT, 0, []
            end = json_end(s, i)
            if end is None and not final:
                return self._partial(s[i:], final)[0], 0, calls
            try:
                # Small models often stop before the last brace: at the end, a call it closes is taken.
                value = load_json(_closed(s[i:]) if end is None else s[i:end])
            except NotStrictJson:
                return Verdict.TEXT, 0, []
            except ValueError:
                value = None
            found = self._calls(value)
            words = _wrapped_words(value) if found is None and (closer is None or end is None) and not calls else None
            if words is not None:
                return Verdict.WORDS, len(s) if end is None else end, [words]
            if end is None:
                if found:
                    return Verdict.CALL, len(s), calls + found
                verdict = self._partial(s[i:], final)[0]
                return verdict, (len(s) if verdict is Verdict.CALL else 0), calls
            if found is None:
                return Verdict.TEXT, 0, []
            calls, i, took = calls + found, end, True
        if not took:
            return Verdict.TEXT if final else Verdict.MAYBE, 0, []
        if final or closer is None:
            return Verdict.CALL, i, calls  # an unclosed fence or tag at the end of the reply is forgiven
        return Verdict.MAYBE, 0, []

    def _partial(self, s: str, final: bool) -> tuple[Verdict, int, list]:
        """A JSON value not closed yet: held while it can still be a call, within bounds. At the end
        of the reply, a fragment that could still have been a call (the model stopped mid-call) is
        dropped: it is raw call text, not words for the user."""
        if final:
            key = FIRST_KEY.match(s.lstrip("[ \t\r\n")[1:])
            started_a_call = key is not None and bool(key.group(2)) and self._partial(s, False)[0] is Verdict.MAYBE
            return (Verdict.CALL if started_a_call else Verdict.TEXT), 0, []
        obj = s.lstrip("[ \t\r\n")
        if obj and obj[0] != "{":
            return Verdict.TEXT, 0, []
        key = FIRST_KEY.match(obj[1:])
        if key and (key.group(2) and key.group(1) not in CALL_KEYS | WORDS_KEYS
                    or not key.group(2) and not any(k.startswith(key.group(1)) for k in CALL_KEYS | WORDS_KEYS)):
            return Verdict.TEXT, 0, []
        if len(obj) > 1 and not key and obj[1:].strip():
            return Verdict.TEXT, 0, []
        named = NAMED.search(s)
        if named and not CALL_NAME.match(named.group(1)):
            return Verdict.TEXT, 0, []
        wrapped = key is not None and bool(key.group(2)) and key.group(1) in WORDS_KEYS
        limit = HOLD_NAMED if named or wrapped else HOLD_UNNAMED
        return (Verdict.TEXT if len(s) > limit else Verdict.MAYBE), 0, []

    def _calls(self, value) -> list[ToolCall] | None:
        if isinstance(value, dict) and len(value) == 1 and value.get("calls", value.get("tool_calls")) == []:
            return []  # a decision of none (MODEL_TOOL_MODE=decide) written into a reply: taken out, and no call
        items = value if isinstance(value, list) else value.get("tool_calls", value.get("calls", [value])) if isinstance(value, dict) else []
        calls = [self._call(item) for item in items] if isinstance(items, list) else []
        return calls if calls and all(calls) else None

    def _call(self, item) -> ToolCall | None:
        if not isinstance(item, dict):
            return None
        if isinstance(item.get("function"), dict):
            item = item["function"]
        name = item.get("name", item.get("function"))
        if not isinstance(name, str) or not CALL_NAME.match(name):
            return None
        if "arguments" in item or "parameters" in item:
            return ToolCall(name, _arguments(item.get("arguments", item.get("parameters"))))
        if name in self.names:  # arguments written flat beside the name
            return ToolCall(name, {k: v for k, v in item.items() if k not in CALL_KEYS})
        return None


def load_json(raw: str):
    "JSON as RFC 8259 has it, nested at most MAX_DEPTH deep; raises ValueError (`NotStrictJson` for what the RFC has not)."
    if _depth(raw) > MAX_DEPTH:
        raise NotStrictJson(f"nested deeper than {MAX_DEPTH}")
    return json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite)


def _refuse_constant(name: str):
    raise NotStrictJson(f"{name} is not a JSON number")


def _finite(digits: str) -> float:
    value = float(digits)
    if not math.isfinite(value):
        raise NotStrictJson(f"{digits} is out of range")
    return value


def _depth(raw: str) -> int:
    "How deep the brackets of JSON text nest (outside strings)."
    return _brackets(raw)[2]


def _arguments(raw) -> dict:
    "A text call's arguments; given as a JSON string (some models' habit), read as strictly as the call."
    if isinstance(raw, str) and raw.strip():
        try:
            raw = load_json(raw)
        except ValueError:
            return {"_unreadable": raw[:200]}
    return call_arguments(raw)


def _wrapped_words(value) -> str | None:
    "The words of a reply a model wrapped in JSON, such as {\"response\": \"Done.\"}; None for anything else."
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in WORDS_KEYS:
        words = next(iter(value.values()))
        return words if isinstance(words, str) else None
    return None


def _closed(s: str) -> str:
    "`s` with the quote and brackets it leaves open closed."
    stack, in_string, _ = _brackets(s)
    return s + ('"' if in_string else "") + "".join(reversed(stack))


def _brackets(s: str) -> tuple[list[str], bool, int]:
    "Reading JSON text `s`: the closers of the brackets it leaves open, whether it ends in a string, how deep it nests."
    stack, in_string, escaped, deepest = [], False, False, 0
    for c in s:
        if in_string:
            escaped, in_string = (False, True) if escaped else (c == "\\", c != '"')
        elif c == '"':
            in_string = True
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
            deepest = max(deepest, len(stack))
        elif c in "}]" and stack:
            stack.pop()
    return stack, in_string, deepest


def _skip(s: str, i: int, chars: str) -> int:
    while i < len(s) and s[i] in chars:
        i += 1
    return i


def json_end(s: str, start: int) -> int | None:
    "Where the JSON object or list starting at `start` ends (brackets counted outside strings); None if open."
    depth, in_string, escaped = 0, False, False
    for i in range(start, len(s)):
        c = s[i]
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1
    return None
