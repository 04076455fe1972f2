"""What the brain says about each reply moves that reply's line on (claimed, waiting, streaming,
done, failed), kept and shown in every tab of its session; its tool calls go to web/tool_calls.py.
A brain that went away has its replies carried on by the next; a reply whose end was lost is failed
with what arrived, a comment the brain began by itself too (the bus counts it from its first words).
The broker's listener is the chat layer (web/server.py: `ChatLayer`), which hands replies' messages here.
"""
import logging
import uuid
from functools import partial

from shared.messages import AboutReply, Ack, CallTool, Chunk, Done, Failed, FailCode, Note, Prompt, Resume, Waiting
from web.components import Relay, stats_note
from web.ports import Bus
from web.sessions import Session, Sessions
from web.tool_calls import ToolCalls, answered
from web.transcript import Line, Move, Role, Status

log = logging.getLogger("web.replies")


class Replies:
    def __init__(self, sessions: Sessions, relay: Relay, bus: Bus, tools: ToolCalls, prompt: Prompt):
        self.sessions, self.relay, self.bus, self.tools, self.prompt = sessions, relay, bus, tools, prompt
        self.handlers = {Chunk: self._chunk, Done: self._finish, Failed: self._finish, Ack: self._ack,
                         Waiting: self._waiting, Note: self._note, CallTool: tools.call}

    def brain_message(self, msg: Ack | AboutReply) -> None:
        if isinstance(msg, AboutReply) and self.sessions.was_reset(msg.reply):
            return
        self.handlers[type(msg)](msg)

    def brain_lost(self, worker: str) -> None:
        """A brain went away: each reply it was making is carried on by the session's next brain
        from what reached the page (Ollama continues a final assistant message). Until that brain
        speaks the reply shows as interrupted, so Retry stays at hand should it never come. An
        interrupted reply this brain had taken on to carry on, and went away before it said a word
        of, is offered again (unless the message asking for it still waits for a worker)."""
        for sid, session in self.sessions.items():
            for line in list(session.lines.values()):
                if line.worker != worker:
                    continue
                if line.status in (Status.THINKING, Status.WAITING, Status.STREAMING):
                    self._end(line, Move.INTERRUPTED, "Interrupted: the brain stopped mid-reply; carrying on with "
                                                      "the next one…")
                elif line.status != Status.INTERRUPTED or self.bus.asking(line.reply):
                    continue
                self.tools.once_applied(sid, line.reply, partial(self._resume, sid, session, line))

    def _resume(self, sid: str, session: Session, line: Line) -> None:
        """Carry the reply on, with the calls the web answered for it (none is half-way now), so none is
        asked for or applied again."""
        if line.status != Status.INTERRUPTED or self.bus.asking(line.reply):
            return  # stopped, or offered again, while a call of it was being applied
        question = session.question(line.asks)
        self.bus.offer(Resume(session=sid, id=uuid.uuid4().hex, reply=line.reply, text=line.text,
                                 thinking=line.thinking, seq=line.seq, model=session.model,
                                 question=question.text if question else "", prompt=self.prompt,
                                 calls=answered(line.cards)))

    def reply_lost(self, session: str, reply_id: str) -> None:
        reply = self.sessions.get(session).reply(reply_id)
        if reply is not None and reply.live:
            self._end(reply, Move.FAILED, "The end of this reply was lost on its way from the brain (the web fell "
                                          "behind); what arrived is shown. Retry asks again.")

    def _end(self, line: Line, move: Move, note: str) -> None:
        "End a reply line for a brain that cannot: kept once, shown once."
        if self.sessions.move(line, move, note):
            self.relay.show(line.session, line)

    def _ack(self, msg: Ack) -> None:
        reply = self.sessions.get(msg.session).reply(msg.reply) if msg.reply else None
        if reply is None:
            return
        reply.worker = msg.worker
        if reply.move(Move.CLAIMED):
            self.relay.show(msg.session, reply)

    def _waiting(self, msg: Waiting) -> None:
        reply = self.sessions.get(msg.session).reply(msg.reply)
        if reply is not None and reply.move(Move.WAITING, msg.reason):
            reply.worker = msg.worker
            self.relay.show(msg.session, reply)

    def _note(self, msg: Note) -> None:
        self.relay.append(msg.session, self.sessions.add(msg.session, Line(reply=msg.reply, role=Role.NOTE, text=msg.text)))

    def _chunk(self, msg: Chunk) -> None:
        reply = self.sessions.get(msg.session).reply(msg.reply)
        if reply is None:  # a reply the brain started by itself: a comment on app events
            reply = self.sessions.add(msg.session, Line(reply=msg.reply, role=Role.REPLY, status=Status.THINKING))
            self.relay.append(msg.session, reply)
            self.bus.made_by(msg.worker, msg.session, msg.reply)  # counted, so it ends even if its final is lost
        if not reply.can(Move.CHUNK) or msg.seq < reply.seq:
            return  # late or repeated: the final text will settle it
        if msg.seq > reply.seq:
            log.warning("reply %s: chunks %d..%d lost; the final text will repair it", msg.reply, reply.seq, msg.seq - 1)
        reply.worker, reply.seq = msg.worker, msg.seq + 1
        first_thought = msg.thinking and not reply.thinking
        reply.text += msg.text
        reply.thinking += msg.thinking
        if reply.status != Status.STREAMING or first_thought:
            reply.move(Move.CHUNK, "")
            self.relay.show(msg.session, reply)
        else:
            self.relay.words(msg.session, msg.reply, msg.text, msg.thinking)

    def _finish(self, msg: Done | Failed) -> None:
        reply = self.sessions.get(msg.session).reply(msg.reply)
        new = reply is None  # a comment that ended before its first words (a failure, say)
        if new:
            reply = Line(session=msg.session, reply=msg.reply, role=Role.REPLY, status=Status.THINKING)
        if isinstance(msg, Done):
            move, note = Move.DONE, stats_note(msg.stats)
        else:
            move, note = (Move.STOPPED if msg.code is FailCode.STOPPED else Move.FAILED), msg.error
        if not reply.move(move, note):
            return  # already final; a duplicate
        reply.text, reply.worker = msg.text, msg.worker
        if isinstance(msg, Done):
            reply.thinking = msg.thinking or reply.thinking
        if new:
            self.relay.append(msg.session, self.sessions.add(msg.session, reply))
        else:
            self.sessions.keep(reply)
            self.relay.show(msg.session, reply)
