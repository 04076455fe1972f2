"""Tool calls found in a model's output the way Ollama finds them, for the llama.cpp stand-in.

Ollama takes the tag of a call from the model's template: the text the template writes before a
call's JSON object (`<tool_call>` for Qwen 2.5; nothing but `{` for Llama 3.2). Text streams until
the tag appears; from the tag on, nothing more is sent as content: each JSON object that completes
is a call and goes out whole, in one chunk, with an id `call_` + 8 characters, and the text around
the calls is dropped. With the tag `{`, a call is parsed only when the output starts with it, and
an object that is not a call is sent as content after all. Anything else the model writes (a call
as bare JSON under a `<tool_call>` template, a fence) is ordinary content: exactly what a client of
Ollama receives.
"""
import json
import random
import string

from brain.text_calls import json_end

SENTINEL = "zz_sentinel_tool"


def tag_of(rendered_call: str) -> str:
    """The tag in a template's rendering of an assistant message that calls SENTINEL: the last line
    before the call's `{`, trimmed ("{" when the template writes nothing of its own there)."""
    head = rendered_call[:rendered_call.rfind("{", 0, rendered_call.find(SENTINEL))]
    lines = head.rstrip().splitlines()
    tag = lines[-1].strip() if lines else ""
    return tag if tag.startswith("<") and not tag.startswith("<|") else "{"


def _call_id() -> str:
    return "call_" + "".join(random.choices(string.ascii_lowercase + string.digits, k=8))


class ToolParser:
    def __init__(self, tag: str):
        self.tag = tag
        self.buffer = ""
        self.parsing = False
        self.plain = False  # decided: the rest of the reply is content
        self.calls = 0

    def add(self, text: str) -> tuple[str, list[dict]]:
        "The content to send now, and the calls that `text` completed."
        if self.plain:
            return text, []
        self.buffer += text
        if self.parsing:
            return self._calls()
        if self.tag == "{":
            head = self.buffer.lstrip()
            if not head:
                return "", []
            if not head.startswith("{"):
                return self._plain()
            self.parsing = True
            return self._calls()
        at = self.buffer.find(self.tag)
        if at < 0:
            keep = _overlap(self.buffer, self.tag)  # a tag may be arriving: hold its start
            content, self.buffer = self.buffer[:len(self.buffer) - keep], self.buffer[len(self.buffer) - keep:]
            return content, []
        content, self.buffer, self.parsing = self.buffer[:at], self.buffer[at + len(self.tag):], True
        return content, self._calls()[1]

    def finish(self) -> str:
        "What is left to send once the model stops: a start of a tag that never completed."
        rest, self.buffer = ("" if self.parsing else self.buffer), ""
        return rest

    def _plain(self) -> tuple[str, list[dict]]:
        content, self.buffer, self.plain, self.parsing = self.buffer, "", True, False
        return content, []

    def _calls(self) -> tuple[str, list[dict]]:
        found = []
        while (start := self.buffer.find("{")) >= 0 and (end := json_end(self.buffer, start)) is not None:
            try:
                obj = json.loads(self.buffer[start:end])
            except ValueError:
                obj = None
            if not (isinstance(obj, dict) and isinstance(obj.get("name"), str)):
                if self.tag == "{" and not self.calls:
                    return self._plain()
                self.buffer = self.buffer[end:]
                continue
            self.buffer = self.buffer[end:]
            arguments = obj.get("arguments", obj.get("parameters", {}))
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments)
                except ValueError:
                    arguments = {}
            found.append({"id": _call_id(), "function": {"index": self.calls, "name": obj["name"],
                                                         "arguments": arguments if isinstance(arguments, dict) else {}}})
            self.calls += 1
        return "", found


def _overlap(text: str, tag: str) -> int:
    "How many characters at the end of `text` could begin `tag`."
    return next((n for n in range(min(len(tag), len(text)), 0, -1) if text.endswith(tag[:n])), 0)
