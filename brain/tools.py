"""The model's tool calls as the brain runs them: how many, how often, and which rounds are not
what the user asked. The tools themselves are the app's (sent by the web in each `Prompt`, the
same bytes every time, since they are part of the prompt the engine caches); the web applies the
calls (web/actions.py), and the brain only relays them and their results."""
from brain.conversation import Conversation

MAX_CALLS = 8  # calls in one round; the rest are answered with an error
RETRIES = 2  # rounds in one reply whose every call failed, which the model may put right (beyond MODEL_TOOL_ROUNDS)
TIMEOUT_S = 10.0  # how long the web may take to apply a call


def recited(names: list[str], offered: list[dict]) -> bool:
    """Calls that look like the model reciting its tools rather than doing what was asked: three or
    more different tools, in the order they are offered. Qwen2.5-Coder 0.5B answered "add oat milk"
    with add, tick, rename and delete calls in 3 of 18 samples (BENCHMARKS.md)."""
    order = [t["function"]["name"] for t in offered]
    return len(names) >= 3 and len(set(names)) == len(names) and names == [n for n in order if n in names]


def offered(conversation: Conversation, enabled: bool) -> list[dict] | None:
    """The tools a session's requests offer: the same in every one (they are part of the cached
    prompt), or none (MODEL_TOOLS off, a model that cannot call tools, an app without any)."""
    return None if conversation.tools_off or not enabled else conversation.prompt.tools or None
