"""What the model is told of the app: each thing the user did there, in the app's words, with the
state after it (see `AppEvent`), and the result of each of its own actions (`ToolResult`). Whatever carries the app's state to the brain goes out here, so
the digest of what the brain last got (`Session.told`) stays true and a lost event is put right."""
import uuid

from shared.messages import AppEvent, CallTool, Prompt, ToBrain, ToolResult, digest
from web.apps import App
from web.ports import Bus
from web.sessions import Sessions
from web.store import StoreThread


class AppEvents:
    def __init__(self, sessions: Sessions, bus: Bus, app: App, disk: StoreThread, prompt: Prompt):
        self.sessions, self.bus, self.app, self.disk, self.prompt = sessions, bus, app, disk, prompt

    def tell(self, sid: str, lines: list[str], state: str = "", comment: bool = False) -> None:
        self._send_state(sid, state, AppEvent(session=sid, id=uuid.uuid4().hex, lines=lines, state=state,
                                             since=self.sessions.get(sid).told, comment=comment, prompt=self.prompt))

    async def changed(self, sid: str, lines: list[str]) -> None:
        "The user changed the app (`lines` say what): the model is told, with the state after it, and comments once the clicking pauses."
        if lines:
            self.tell(sid, lines, await self.disk.call(self.app.state, sid), comment=True)

    async def answer(self, call: CallTool, ok: bool, text: str) -> None:
        "The result of the model's action, with the app's state after it and the app's brief of it."
        state, brief = await self.disk.call(lambda: (self.app.state(call.session), self.app.brief(call.session)))
        self._send_state(call.session, state, ToolResult(session=call.session, id=uuid.uuid4().hex, reply=call.reply,
                                                         call=call.call, ok=ok, text=text, brief=brief, state=state))

    def _send_state(self, sid: str, state: str, msg: ToBrain) -> None:
        """The brain is known to have the state once the bus has taken the message that carries it;
        one the bus refused leaves the brain behind, so the next event has it state the whole state."""
        session = self.sessions.get(sid)
        if self.bus.offer(msg) is None:
            session.told = ""
        elif state:
            session.told = digest(state)
