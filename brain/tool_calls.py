"""The model's tool calls in a reply, relayed to the web one at a time, in order: the web applies
each (web/actions.py) and answers with a `ToolResult`, which the reply waits for (tools.TIMEOUT_S).
Calls past tools.MAX_CALLS, the rest of a recital, and calls the reply already made are answered
here and never sent (`answered_here`).

Every call id is made here, never taken from the model: templates and engines number calls
(`call_0`, `call_1`…), so two sessions' models, or one model in two replies, give the same ids, and
a result must reach only the call it answers. A result whose session or reply is not the waiting
call's is ignored (and logged).

A result nobody waits for belongs to a reply cut off by a brain that died (the web re-sends it from
its outbox): the engine has the model told of it with the next turn (unless the reply's resume put
its call back, see `Replies._carry`), so a Retry does not do it again.
"""
import asyncio
import json
import logging
import uuid

from brain import tools
from brain.jobs import Turn
from brain.ollama_client import ToolCall
from brain.outlet import ReplyBus
from shared.messages import Answered, ToolResult

log = logging.getLogger("brain")
NO_ANSWER = "Error: the app did not answer, so this may not have been done."


def asked(call: ToolCall | Answered) -> str:
    "What a call asks for, the same however its arguments are ordered."
    return call.name + json.dumps(call.arguments, sort_keys=True, default=str)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex}"


def as_sent(call: str, index: int, name: str, arguments: dict) -> dict:
    "A call as the assistant message holds it: by the brain's id, which the model never gave."
    return {"id": call, "function": {"index": index, "name": name, "arguments": arguments}}


def rounds_of(answered: list[Answered]) -> list[list[Answered]]:
    """A cut-off reply's answered calls, in order, as the rounds they came in. A round's calls share
    its `at` and count up from index 0; any may be missing (too big to send, or a decided call the app
    refused, which has no card), so a round starts where the index does not go up or the place in
    the text moves."""
    starts = [i for i, call in enumerate(answered)
              if i == 0 or call.index <= answered[i - 1].index or call.at != answered[i - 1].at]
    return [answered[a:b] for a, b in zip(starts, [*starts[1:], len(answered)])]


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
        # By call id: the session and reply that made it, and the reply waiting on the web.
        self.waiting: dict[str, tuple[str, str, asyncio.Future]] = {}

    def awaited(self, result: ToolResult) -> bool:
        "Whether a reply waits on this result: its call, of its session and reply."
        session, reply, _ = self.waiting.get(result.call, (None, None, None))
        return (session, reply) == (result.session, result.reply)

    async def round(self, turn: Turn, calls: list[ToolCall], made: dict[str, str], offered: list[dict] | None,
                    at: int = 0, decided: bool = False) -> tuple[list[dict], list[tuple[str, str]], str]:
        """Have the web apply a round's calls, which came after the reply's first `at` characters.
        Returns the calls as the assistant message holds them, each one's result (tool name, text,
        with the app's state on one line after it for a model's own calls), and the app's state after
        them ("" unchanged). `made` holds the calls this reply applied, by what they asked: those are
        not made again, and each call applied now joins them. The calls of a decision (`decided`,
        MODEL_TOOL_MODE=decide) that the app refuses are left out: a wrong guess at what the user
        asked changed nothing, and the reply is not to be about it."""
        results, state, asked_for = [], "", []
        recital = tools.recited([c.name for c in calls], offered or [])
        for i, call in enumerate(calls):
            call_id = new_call_id()
            sent = as_sent(call_id, i, call.name, call.arguments)
            here = answered_here(i, call, recital, made)
            if here is not None:
                asked_for.append(sent)
                results.append((call.name, here))
                continue
            result = await self._call(turn, call_id, call, at, i, decided)
            if result is not None and not result.ok and decided:
                log.info("reply %s: the app refused the decided call %s (%s)", turn.reply, call.name, result.text)
                continue
            asked_for.append(sent)
            if result is None:
                results.append((call.name, NO_ANSWER))
                continue
            if result.ok:
                made[asked(call)] = result.text
            state = result.state or state
            results.append((call.name, f"{result.text} {result.brief}" if result.brief and not decided else result.text))
        return asked_for, results, state

    def resolve(self, result: ToolResult) -> bool:
        """The reply waiting on the call goes on; False when none waits (nor did: the result is late).
        A result that names a waiting call of another session or reply answers nothing: it is ignored."""
        if result.call not in self.waiting:
            return False
        session, reply, answered = self.waiting[result.call]
        if (session, reply) != (result.session, result.reply):
            log.warning("a result for call %s came from session %s, reply %s, but the call is reply %s's of "
                        "session %s; ignored", result.call, result.session[:8], result.reply, reply, session[:8])
        elif not answered.done():
            answered.set_result(result)
        return True

    def release(self, session: str) -> None:
        "The session is fenced: replies waiting on the web for it go on without an answer."
        for owner, _, answered in list(self.waiting.values()):
            if owner == session and not answered.done():
                answered.set_result(None)

    async def _call(self, turn: Turn, call_id: str, call: ToolCall, at: int, index: int,
                    decided: bool) -> ToolResult | None:
        answered = self.loop.create_future()
        self.waiting[call_id] = (turn.session, turn.reply, answered)
        refused = self.bus.call_tool(turn, call_id, call.name, call.arguments, at, index, decided)
        try:
            if refused:  # too big for a bus frame: answered here, never sent (brain/outlet.py)
                return ToolResult(session=turn.session, id=call_id, reply=turn.reply, call=call_id, ok=False, text=refused)
            return await asyncio.wait_for(answered, self.timeout_s)
        except asyncio.TimeoutError:
            log.warning("tool call %s of reply %s: the web did not answer", call_id, turn.reply)
            return None
        finally:
            self.waiting.pop(call_id, None)
