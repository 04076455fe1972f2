"""The todo app with an `add_todo` that takes its time (APPLY_S) and says in the web's log when it
begins: a process-level test can kill the brain while the web is applying a call (APP=tests.slow_app)."""
import functools
import logging
import time

from apps.todo import loop

log = logging.getLogger("web.slow_app")
APPLY_S = 1.5
BEGINS = "slow app: applying"
add_todo = next(t for t in loop.tools if t.__name__ == "add_todo")
quick = add_todo.fn


@functools.wraps(quick)
def slowly(*args, **kwargs):
    log.warning("%s %s", BEGINS, add_todo.__name__)
    time.sleep(APPLY_S)
    return quick(*args, **kwargs)


add_todo.fn = slowly
