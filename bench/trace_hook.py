"""Run a module with a profile hook that records which of the project's functions call which,
while a flag file exists; used by bench/trace.py on the web and the brain worker.

    python -m bench.trace_hook OUT.json uvicorn --factory web.server:create_app ...

Recording starts when OUT.json.on appears and stops when it is removed; then OUT.json gets the
functions and the caller -> callee pairs seen in between: `calls`, and apart from them `resumed`,
a suspended coroutine or generator taken up again by the one awaiting it (the profiler reports that
as a call too, but it is the await chain made before, say the ASGI middlewares around a WebSocket).
A file polled by a thread, not a signal: the worker's main thread may sit in a C call for a while.
"""
import dis
import inspect
import json
import os
import runpy
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = tuple(str(ROOT / part) + os.sep for part in ("web", "brain", "shared", "apps"))


class Recorder:
    def __init__(self, out: Path):
        self.out, self.flag = out, out.with_name(out.name + ".on")
        self.on = False
        self.names: dict = {}  # code -> "file:function", or None outside the project
        self.starts: dict = {}  # code of a coroutine or generator -> where a fresh frame of it starts
        self.functions: set[str] = set()
        self.calls: set[tuple[str, str]] = set()
        self.resumed: set[tuple[str, str]] = set()

    def name(self, code) -> str | None:
        try:
            return self.names[code]
        except KeyError:
            path = code.co_filename
            name = f"{Path(path).relative_to(ROOT)}:{code.co_qualname}" if path.startswith(PARTS) else None
            self.names[code] = name
            return name

    def hook(self, frame, event, _arg) -> None:
        if not self.on or event != "call":
            return
        callee = self.name(frame.f_code)
        if callee is None:
            return
        self.functions.add(callee)
        if frame.f_back is not None and (caller := self.name(frame.f_back.f_code)):
            (self.resumed if self.resuming(frame) else self.calls).add((caller, callee))

    def resuming(self, frame) -> bool:
        code = frame.f_code
        if not code.co_flags & (inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR):
            return False
        if code not in self.starts:
            self.starts[code] = next((i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"), 0)
        return frame.f_lasti > self.starts[code]

    def watch(self) -> None:
        while True:
            time.sleep(0.02)
            if self.flag.exists() and not self.on:
                self.functions.clear()
                self.calls.clear()
                self.resumed.clear()
                self.on = True
            elif self.on and not self.flag.exists():
                self.on = False
                self.out.write_text(json.dumps({"functions": sorted(self.functions), "calls": sorted(self.calls),
                                                "resumed": sorted(self.resumed - self.calls)}))


def main() -> None:
    out, module, *argv = sys.argv[1:]
    recorder = Recorder(Path(out))
    threading.setprofile(recorder.hook)
    sys.setprofile(recorder.hook)
    threading.Thread(target=recorder.watch, daemon=True).start()
    sys.argv = [module, *argv]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
