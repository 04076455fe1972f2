"""Print every message on the bus, both directions, one line each.

    python -m shared.tail                    # everything
    python -m shared.tail --topic web.chunk  # topics starting with this (repeatable)
    python -m shared.tail --kind app_event   # what the user did in the app, as the model hears it
    python -m shared.tail --json | jq .      # one JSON object per line, for piping

It is one more subscriber on the web's XPUB socket: start and stop it at any time.
"""
import argparse
import json
import os
import signal
import sys
import time

import zmq

from shared import bus
from shared.config import Settings
from shared.messages import BadFrame, decode

KEY_FIELDS = ("session", "id", "message", "reply", "seq", "pull", "lines", "comment", "status", "call", "name", "model",
              "busy", "code", "error")


def line(received: float, topic: str, payload: dict | None, problem: str = "") -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(received)) + f".{int(received % 1 * 1000):03d}"
    if payload is None:
        return f"{stamp} {topic} !! {problem}"
    fields = [f"{k}={str(payload[k])[:12] if k in ('session', 'id', 'message', 'reply') else payload[k]}"
              for k in KEY_FIELDS if payload.get(k) not in (None, "")]
    fields.append(f"worker={payload.get('worker', '')}")
    text = payload.get("text")
    if isinstance(text, str):
        fields.append(f"text={text[:60]!r}" + ("…" if len(text) > 60 else ""))
    return f"{stamp} {topic} " + " ".join(fields)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.tail", description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", action="append", default=[],
                        help="only topics starting with this, e.g. web.chunk or brain. (repeatable)")
    parser.add_argument("--kind", action="append", default=[],
                        help="only messages of this kind, e.g. app_event or tool_call (repeatable)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    curve = bus.curve_for(settings.bus_endpoints, settings.bus_curve_dir)
    ctx = bus.context(asyncio=False)
    sock = bus.socket(ctx, zmq.SUB, settings.max_frame_bytes, connect=settings.bus_sub, curve=curve)
    for topic in args.topic or [""]:
        sock.subscribe(topic.encode())
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"# tailing {settings.bus_sub}" + (f" topics {args.topic}" if args.topic else ""), file=sys.stderr)
    try:
        while True:
            frames = sock.recv_multipart()
            received = time.time()
            topic = frames[0].decode(errors="replace")
            try:
                decode(frames, settings.max_frame_bytes)
                payload, problem = json.loads(frames[1]), ""
            except BadFrame as e:
                payload, problem = None, str(e)
            if args.kind and (payload or {}).get("kind") not in args.kind:
                continue
            if args.json:
                out = {"t": received, "topic": topic, "msg": payload} | ({"error": problem} if problem else {})
                print(json.dumps(out, ensure_ascii=False), flush=True)
            else:
                print(line(received, topic, payload, problem), flush=True)
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    finally:
        ctx.destroy()
        # A closed pipe (`| head`) must not print a traceback at exit.
        sys.stdout = open(os.devnull, "w")


if __name__ == "__main__":
    main()
