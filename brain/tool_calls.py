"""The model's tool calls in a reply, relayed to the web one at a time, in order: the web applies
each (web/actions.py) and answers with a `ToolResult`, which the reply waits for (tools.TIMEOUT_S).
Calls past tools.MAX_CALLS, the rest of a recital, and calls the reply already made are answered
here and never sent (`answered_here`).

A result nobody waits for belongs to a reply cut off by a brain that died (the web re-sends it from
its outbox): the engine has the model told of it with the next turn, so a Retry does not do it again.
"""
import asyncio
import json
import logging
import re
import uuid

from brain import tools
from brain.jobs import Turn
from brain.ollama_client import ToolCall
from brain.reply_bus import ReplyBus
from shared.messages import ToolResult

log = logging.getLogger("brain")
CALL_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # a bus id; Ollama's "call_…" ids fit
NO_ANSWER = "Error: the app did not answer, so this may not have been done."


def asked(call: ToolCall) -> str:
    "What a call asks for, the same however its arguments are ordered."
    return call.name + json.dumps(call.arguments, sort_keys=True, default=str)


def answered_here(index: int, call: ToolCall, recital: bool, made: dict[str, str]) -> str | None:
    "The result of the round's `index`th call when it is not sent to the web, else None."
    if index >= tools.MAX_CALLS:
        return f"Error: at most {tools.MAX_CALLS} calls at once; this one was not done."
    if recital and index > 0:
        return ("Not done: that looked like every tool at once, not what the user asked. "
                "Call it again only if the user asked for exactly this.")
    if asked(call) in made:
        return f"{made[asked(call)]} (Already done in this reply; not done again.)"
    return None


class ToolCalls:
    def __init__(self, bus: ReplyBus, loop: asyncio.AbstractEventLoop, timeout_s: float = tools.TIMEOUT_S):
        self.bus, self.loop, self.timeout_s = bus, loop, timeout_s
        self.waiting: dict[str, tuple[str, asyncio.Future]] = {}  # by call id: (session, the reply waiting on the web)

    def awaited(self, call: str) -> bool:
        return call in self.waiting

    async def round(self, turn: Turn, calls: list[ToolCall], made: dict[str, str], offered: list[dict] | None
                    ) -> tuple[list[dict], list[tuple[str, str]], str]:
        """Have the web apply a round's calls. Returns the calls as the assistant message holds them,
        each one's result (tool name, text), and the app's state after them ("" unchanged). `made`
        holds the calls this reply applied, by what they asked: those are not made again, and each
        call applied now joins them."""
        results, state, asked_for = [], "", []
        recital = tools.recited([c.name for c in calls], offered or [])
        for i, call in enumerate(calls):
            call_id = call.id if CALL_ID.match(call.id or "") else f"call_{uuid.uuid4().hex[:12]}"
            asked_for.append({"id": call_id, "function": {"index": i, "name": call.name, "arguments": call.arguments}})
            here = answered_here(i, call, recital, made)
            if here is not None:
                results.append((call.name, here))
                continue
            result = await self._call(turn, call_id, call)
            if result is None:
                results.append((call.name, NO_ANSWER))
                continue
            if result.ok:
                made[asked(call)] = result.text
            state = result.state or state
            results.append((call.name, result.text))
        return asked_for, results, state

    def resolve(self, result: ToolResult) -> bool:
        "The reply waiting on the call goes on; False when none waits (nor did: the result is late)."
        _, answered = self.waiting.get(result.call, (None, None))
        if answered is not None and not answered.done():
            answered.set_result(result)
        return answered is not None

    def release(self, session: str) -> None:
        "The session is fenced: replies waiting on the web for it go on without an answer."
        for _, (owner, answered) in list(self.waiting.items()):
            if owner == session and not answered.done():
                answered.set_result(None)

    async def _call(self, turn: Turn, call_id: str, call: ToolCall) -> ToolResult | None:
        answered = self.loop.create_future()
        self.waiting[call_id] = (turn.session, answered)
        self.bus.call_tool(turn, call_id, call.name, call.arguments)
        try:
            return await asyncio.wait_for(answered, self.timeout_s)
        except asyncio.TimeoutError:
            log.warning("tool call %s of reply %s: the web did not answer", call_id, turn.reply)
            return None
        finally:
            self.waiting.pop(call_id, None)
