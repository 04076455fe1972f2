"""MODEL_TOOL_MODE=decide: what the model does to the app is chosen in a step of its own, before it
says anything, and the reply is words only.

For each message of the user, Ollama is first asked for a decision: JSON held by a schema (Ollama's
structured outputs, `format`; llama.cpp turns it into a grammar) to a list of calls of the app's own
tools, each with arguments of the tool's own parameters, or an empty list. Its calls are applied as
native ones are (checked by the app, once, each with its card), and then the reply is asked for with
no tools offered: whatever it says, it cannot change the app, and whatever it claims was done can be
checked against what the decision did (brain/claims.py).

The decision is asked at temperature 0 (a choice, not prose; Ollama's sampling options do not reload
the model). Tools are never sent in this mode: the app's tools are described once in the system
message instead, so the decision's request and the reply's share every byte up to the user's
message, and the prompt cache serves both (a template such as Qwen's renders `tools` into the
system message, so sending them with one request and not the other would cost the whole prompt).
"""
import json

from brain.ollama_client import ToolCall, call_arguments

DECIDE = "decide"
NATIVE = "native"
MAX_CALLS = 4  # calls one decision may hold: a message that asks for more is answered in words


def menu(tools: list[dict]) -> str:
    "The app's tools as the system message describes them in this mode."
    lines = []
    for tool in tools:
        f = tool["function"]
        lines.append(f"- {f['name']}({', '.join(f.get('parameters', {}).get('properties', {}))}): {f.get('description', '')}")
    return ("\n\nThe app's actions:\n" + "\n".join(lines) + "\n\nBefore each reply, the app asks you which of these "
            'actions the user\'s newest message asks for, and you answer it as JSON: {"calls": [{"name": …, "arguments": '
            '{…}}]}, or {"calls": []} when it asks for no change (a greeting, thanks, a question, chit-chat). The app '
            "does them and tells you what happened. Your reply to the user is words only, never JSON.")



def schema(tools: list[dict]) -> dict:
    """The JSON schema a decision is held to: every call names an offered tool and gives each of its
    parameters, as the tool types them, and nothing else."""
    calls = []
    for tool in tools:
        f = tool["function"]
        parameters = f.get("parameters") or {}
        properties = parameters.get("properties") or {}
        calls.append({"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                      "properties": {"name": {"const": f["name"]},
                                     "arguments": {"type": "object", "properties": properties,
                                                   "required": list(properties), "additionalProperties": False}}})
    return {"type": "object", "additionalProperties": False, "required": ["calls"],
            "properties": {"calls": {"type": "array", "maxItems": MAX_CALLS, "items": {"anyOf": calls}}}}


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
            for c in listed[:MAX_CALLS] if isinstance(c, dict) and c.get("name") in names]


# After the conversation in the reply's request only (never kept in it): the prompt is otherwise the
# decision's, and a small model told to decide first goes on deciding (Qwen2.5-Coder 0.5B wrote
# `{"calls": []}` as the reply to 21 of 29 asks).
NOW = {"role": "system", "content": "Now reply to the user in words, not JSON."}
