"""The app's tools as the model is given them, and the model's calls as the brain runs them: how many,
how often, and which rounds are not what the user asked. The tools themselves are the app's (sent by
the web in each `Prompt`, the same bytes every time, since they are part of the prompt the engine
caches); the web applies the calls (web/actions.py), and the brain only relays them and their results.

The model is given them in one of two ways (MODEL_TOOL_MODE). Natively, they are offered in every
request and the model calls them as it writes. Decided (`decide`), what the model does to the app is
chosen in a step of its own, before it says anything, and the reply is words only.

For each message of the user, Ollama is first asked for a decision: JSON held by a schema (Ollama's
structured outputs, `format`; llama.cpp turns it into a grammar) to a list of calls of the app's own
tools, each with arguments of the tool's own parameters, or an empty list. Its calls are applied as
native ones are (checked by the app, once, each with its card), and then the reply is asked for with
no tools offered: whatever it says, it cannot change the app, and what it claims was done can be
checked against what the decision did (brain/claims.py).

What a small model was shown decides what it writes (Qwen2.5-Coder 0.5B, bench/EVAL_NOTES.md):
- The app's actions, and that a decision comes first, are told once in the system message
  (`menu`): the same bytes in every request, so the decision's request and the reply's share
  everything up to the user's message and the prompt cache serves both. (Asked after the
  conversation instead, in the decision's request only, the model chose worse.) Tools are never
  sent in this mode: a template such as Qwen's renders them into the system message.
- The reply's request ends with `NOW`, never kept: without it the model wrote another decision.
- Rounds of calls are shown to the model as app notes of what the app did at the user's request
  (`as_notes`), without the list after it: shown its own calls and their results, it answered
  with more calls; shown the list, it recited it.

The decision is asked at temperature 0 (a choice, not prose; sampling options do not reload the model).

MODEL_TOOL_MODE=auto (the default) decides for a model under SMALL parameters, as Ollama's
`/api/show` gives them, and calls tools natively otherwise: with Qwen2.5-Coder 0.5B, deciding made
more of the asked changes and none nobody asked for (BENCHMARKS.md); a larger model trained for
tool calling could not be measured here. A model Ollama cannot describe is called natively.
"""
import json
import logging
import re
from collections.abc import Awaitable, Callable

from brain.conversation import APP_PREFIX, Conversation
from brain.ollama_client import OllamaError, ToolCall, call_arguments
from shared.config import Settings
from shared.lru import LRU
from shared.messages import Prompt

MAX_CALLS = 8  # calls in one round; the rest are answered with an error
RETRIES = 2  # rounds in one reply whose every call failed, which the model may put right (beyond MODEL_TOOL_ROUNDS)
TIMEOUT_S = 10.0  # how long the web may take to apply a call
DECIDE = "decide"
AUTO = "auto"
SMALL = 2e9  # parameters
SIZE = re.compile(r"\s*([\d.]+)\s*([KMBT]?)\s*", re.I)
log = logging.getLogger("brain")
MAX_DECIDED = 4  # calls one decision may hold
DONE_FOR_USER = "As the user asked, the app did this: "
NOW = {"role": "system", "content": "Now reply to the user in words, not JSON."}


def menu(tools: list[dict]) -> str:
    "The app's tools as the system message describes them in this mode, after the app's own words."
    lines = [f"- {t['function']['name']}({', '.join((t['function'].get('parameters') or {}).get('properties') or {})}): "
             f"{t['function'].get('description', '')}" for t in tools]
    return ("\n\nThe app's actions:\n" + "\n".join(lines) + "\n\nBefore each reply, the app asks you which of these "
            'actions the user\'s newest message asks for, and you answer it as JSON: {"calls": [{"name": …, "arguments": '
            '{…}}]}, or {"calls": []} when it asks for no change (a greeting, thanks, a question, chit-chat). The app '
            "does them and tells you what happened. Your reply to the user is words only, never JSON.")


def words(decides: bool) -> tuple[dict, ...]:
    """What a reply's request asks after the conversation in this mode, and only there: its prompt is
    otherwise the decision's, and a model told to decide first goes on deciding."""
    return (NOW,) if decides else ()


def parameters(shown: dict) -> float | None:
    "A model's parameters, from what `/api/show` says of it (its exact count, else its size as '494.03M'); None when it does not say."
    count = (shown.get("model_info") or {}).get("general.parameter_count")
    if isinstance(count, (int, float)) and not isinstance(count, bool) and count > 0:
        return float(count)
    size = SIZE.fullmatch(str((shown.get("details") or {}).get("parameter_size", "")))
    if not size:
        return None
    try:
        return float(size.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "B": 1e9, "T": 1e12}[size.group(2).upper()]
    except ValueError:
        return None


UNKNOWN_KEPT = 64  # models remembered as not described, each looked up again at its next turn


class Modes:
    """Whether the brain decides for a model (MODEL_TOOL_MODE): the setting, or with `auto` what Ollama
    says of the model's size, asked once per model (`show`, on the pool). A model it cannot describe
    (not pulled yet) is called natively, and asked about again when asked for `again` (at a turn):
    not at every click, each a request to Ollama and a line in the log."""

    def __init__(self, settings: Settings, show: Callable[[str], Awaitable[dict]]):
        self.settings, self.show, self.known = settings, show, {}
        self.unknown: LRU[str, bool] = LRU(UNKNOWN_KEPT)  # models Ollama could not describe when last asked (names users typed)

    async def decides(self, model: str, again: bool = False) -> bool:
        if self.settings.tool_mode != AUTO:
            return self.settings.tool_mode == DECIDE
        if model not in self.known and (again or model not in self.unknown):
            try:
                size = parameters(await self.show(model))
            except OllamaError as e:
                if model not in self.unknown:
                    log.warning("MODEL_TOOL_MODE=auto: %s; %s calls tools natively for now", e, model)
                self.unknown.put(model, True)
                return False
            self.unknown.pop(model)
            self.known[model] = size is not None and size < SMALL
            log.info("MODEL_TOOL_MODE=auto: %s (%s parameters) %s", model, f"{size:,.0f}" if size else "unknown",
                     "decides first" if self.known[model] else "calls tools natively")
        return self.known.get(model, False)


def schema(tools: list[dict]) -> dict:
    """The JSON schema a decision is held to: every call names an offered tool and gives each of its
    parameters, as the tool types them, and nothing else."""
    calls = []
    for tool in tools:
        f = tool["function"]
        properties = (f.get("parameters") or {}).get("properties") or {}
        calls.append({"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                      "properties": {"name": {"const": f["name"]},
                                     "arguments": {"type": "object", "properties": properties,
                                                   "required": list(properties), "additionalProperties": False}}})
    return {"type": "object", "additionalProperties": False, "required": ["calls"],
            "properties": {"calls": {"type": "array", "maxItems": MAX_DECIDED, "items": {"anyOf": calls}}}}


def calls_in(text: str, tools: list[dict]) -> list[ToolCall]:
    """The calls of a decision. Ollama holds the output to the schema, but an engine may not (an
    older Ollama ignores a schema it does not know), so anything else is no call: the reply is then
    words only, as for a decision of none."""
    names = {t["function"]["name"] for t in tools}
    try:
        decided = json.loads(text)
    except ValueError:
        return []
    listed = decided.get("calls") if isinstance(decided, dict) else None
    if not isinstance(listed, list):
        return []
    return [ToolCall(c["name"], call_arguments(c.get("arguments")))
            for c in listed[:MAX_DECIDED] if isinstance(c, dict) and c.get("name") in names]


def shown(decides: bool, messages: list[dict]) -> list[dict]:
    "The messages of a request as the model is shown them: rounds as notes when it decides."
    return as_notes(messages) if decides else messages


def as_notes(messages: list[dict]) -> list[dict]:
    """The messages as the model is shown them in this mode: a round of calls becomes one app note of
    what the app did (the results, in the app's words), and the words said before it stay."""
    shown: list[dict] = []
    for message in messages:
        if message["role"] == "assistant" and message.get("tool_calls"):
            if message["content"]:
                shown.append({"role": "assistant", "content": message["content"]})
            shown.append({"role": "user", "content": APP_PREFIX + DONE_FOR_USER})
        elif message["role"] == "tool":
            if not (shown and shown[-1]["content"].startswith(APP_PREFIX + DONE_FOR_USER)):
                shown.append({"role": "user", "content": APP_PREFIX + DONE_FOR_USER})  # a round whose calls were set aside
            note = shown[-1]["content"]
            shown[-1] = {"role": "user", "content": note + ("" if note.endswith(": ") else " ") + message["content"].strip()}
        else:
            shown.append(message)
    return shown



def recited(names: list[str], offered: list[dict]) -> bool:
    """Calls that look like the model reciting its tools rather than doing what was asked: three or
    more different tools, in the order they are offered. Qwen2.5-Coder 0.5B answered "add oat milk"
    with add, tick, rename and delete calls in 3 of 18 samples (BENCHMARKS.md)."""
    order = [t["function"]["name"] for t in offered]
    return len(names) >= 3 and len(set(names)) == len(names) and names == [n for n in order if n in names]


def usable(conversation: Conversation, settings: Settings) -> list[dict] | None:
    "The tools the model may use, natively or through decisions: none when MODEL_TOOLS is off or the app has none."
    return (conversation.prompt.tools or None) if settings.tools else None


def offered(conversation: Conversation, settings: Settings) -> list[dict] | None:
    """The tools a session's requests offer: the same in every one (they are part of the cached
    prompt), or none (MODEL_TOOLS off, a model that cannot call tools, an app without any, or
    MODEL_TOOL_MODE=decide, where decisions stand for them)."""
    if conversation.tools_off or conversation.decides:
        return None
    return usable(conversation, settings)


def decided(conversation: Conversation, settings: Settings) -> list[dict] | None:
    "The tools a decision chooses among, when the brain decides for the conversation's model; None when it calls natively."
    return usable(conversation, settings) if conversation.decides else None


def as_told(prompt: Prompt, settings: Settings, decides: bool) -> Prompt:
    "The app's prompt as the model is given it: when the brain decides, its tools are told in the system message."
    if not decides or not prompt.tools or not settings.tools:
        return prompt
    return Prompt(prompt.system + menu(prompt.tools), prompt.tools)
