"""The todo app with an `add_todo` that takes its time (APPLY_S) and says in the web's log when it
begins: a process-level test can kill the brain while the web is applying a call (APP=tests.slow_app)."""
import dataclasses
import logging
import time

import apps.todo
from web.apps import Action, App, Host

log = logging.getLogger("web.slow_app")
APPLY_S = 1.5
BEGINS = "slow app: applying"


def slow(action: Action) -> Action:
    def run(session, arguments):
        log.warning("%s %s", BEGINS, action.name)
        time.sleep(APPLY_S)
        return action.run(session, arguments)
    return dataclasses.replace(action, run=run)


def make(host: Host) -> App:
    app = apps.todo.make(host)
    return dataclasses.replace(app, actions=[slow(a) if a.name == "add_todo" else a for a in app.actions])
