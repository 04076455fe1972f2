"""The model's actions on the app (its tool calls), applied by the web, which owns the app's data.

A call is checked as a user's input is (its arguments against the action's typed parameters;
unknown keys are ignored and "2" is taken for 2, since small models get arguments roughly right),
applied through the app's handler as a click would be, and kept by its call id: a call that comes
again (a message re-sent after a restart) is answered from what was kept and never applied twice,
and a kept action can be undone exactly, by the app's own undo. Everything here runs on the
store's thread, one call at a time.
"""
import logging
from dataclasses import dataclass

import msgspec
from fastlite import Database

from web.apps import Action, App, Change, Refused

log = logging.getLogger("web.actions")


@dataclass
class ActionRow:
    "One tool call as applied (or refused): `undo` is what the app needs to revert it (JSON)."
    call: str = ""
    session: str = ""
    reply: str = ""
    name: str = ""
    ok: bool = False
    text: str = ""
    undo: str = "null"
    undone: bool = False


class Actions:
    def __init__(self, db: Database, app: App):
        self.app = app
        # Keyed by session too: call ids come from the model, and two sessions' may well be the same.
        self.rows = db.create(ActionRow, name="app_actions", pk=["session", "call"], transform=True)

    def _kept(self, session: str, call: str, where: str = "") -> ActionRow | None:
        rows = self.rows(where=f"call = ? and session = ?{where}", where_args=[call, session])
        if not rows:
            return None
        row = rows[0]
        row.ok, row.undone = bool(row.ok), bool(row.undone)  # SQLite gives booleans back as 0 and 1
        return row

    def act(self, session: str, reply: str, call: str, name: str, arguments: dict,
            asked: str | None = None) -> tuple[ActionRow, list[Change]]:
        """Apply a call once; a call seen before is answered as it was, with no change. `asked` is the
        user's message the reply answers (None: not known)."""
        kept = self._kept(session, call)
        if kept:
            return kept, []
        action = self.app.action(name)
        row = ActionRow(call=call, session=session, reply=reply, name=action.name if action else name)
        changes: list[Change] = []
        try:
            if action is None:
                raise Refused(f"there is no tool named {name!r}; the tools are {', '.join(a.name for a in self.app.actions)}.")
            outcome = action.run(session, _arguments(action, arguments), asked)
            row.ok, row.text, row.undo, changes = True, outcome.text, _json(outcome.undo), outcome.changes
        except Refused as e:
            row.text = f"Error: {e}"
        except Exception:
            # An app's own bug must still answer the call: the model (and the card) are told, the log has the rest.
            log.exception("action %s of session %s failed in the app's %s.%s", row.name, session[:8],
                          action.run.__module__, action.run.__qualname__)
            row.ok, row.text, changes = False, f"Error: the app could not do {row.name}; its log says why.", []
        self.rows.insert(row)
        return row, changes

    def undoable(self, name: str) -> bool:
        action = self.app.action(name)
        return bool(action and action.undo)

    def undo(self, session: str, call: str) -> tuple[ActionRow | None, list[Change]]:
        """Revert exactly what an action did; None when there is no such action left to undo.
        Raises Refused, changing nothing, when the app cannot (its list is full, say)."""
        row = self._kept(session, call, " and ok and not undone")
        action = self.app.action(row.name) if row else None
        if action is None or action.undo is None:
            return None, []
        try:
            changes = action.undo(session, msgspec.json.decode(row.undo))
        except Refused:
            raise
        except Exception:
            # An app's own bug: the tab is told, and the log names the app's function that failed.
            log.exception("the undo of %s (call %s of session %s) failed in the app's %s.%s", row.name, call, session[:8],
                          action.undo.__module__, action.undo.__qualname__)
            raise Refused(f"That could not be undone: the app hit an error undoing {row.name} (its log says "
                          "where).") from None
        row.undone = True
        self.rows.update(row)
        return row, changes


def _arguments(action: Action, arguments: dict):
    try:
        return msgspec.convert(action.prepare(arguments), action.arguments, strict=False)
    except msgspec.ValidationError as e:
        fields = ", ".join(action.arguments.__struct_fields__) or "no arguments"
        raise Refused(f"{action.name} takes {fields}: {e}.") from None


def _json(value) -> str:
    return msgspec.json.encode(value).decode()
