"""The model's tool calls as the brain runs them: how many, how often, and which rounds are not
what the user asked. The tools themselves are the app's (sent by the web in each `Prompt`, the
same bytes every time, since they are part of the prompt the engine caches); the web applies the
calls (web/actions.py), and the brain only relays them and their results."""
from brain import decisions
from brain.conversation import Conversation
from shared.config import Settings
from shared.messages import Prompt

MAX_CALLS = 8  # calls in one round; the rest are answered with an error
RETRIES = 2  # rounds in one reply whose every call failed, which the model may put right (beyond MODEL_TOOL_ROUNDS)
TIMEOUT_S = 10.0  # how long the web may take to apply a call


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
    MODEL_TOOL_MODE=decide, where decisions stand for them: brain/decisions.py)."""
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
    return Prompt(prompt.system + decisions.menu(prompt.tools), prompt.tools)
