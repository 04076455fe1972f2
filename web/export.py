"""A session's transcript as a file to download: Markdown to read, JSON to process."""
import json
from datetime import datetime, timezone

from web.transcript import Line

SPEAKERS = {"user": "You", "reply": "Assistant", "note": "Note"}
ROLES = {"user": "user", "reply": "assistant", "note": "note"}


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def to_markdown(lines: list[Line], title: str) -> str:
    "`title` is the app's (APP): the web serves any app."
    parts = [f"# {title}: conversation\n\nExported {_when(datetime.now(timezone.utc).timestamp())}.\n"]
    for line in lines:
        status = "" if line.status == "done" else f" ({line.status})"
        parts.append(f"## {SPEAKERS.get(line.role, line.role)}{status}, {_when(line.created)}\n")
        if line.thinking:
            parts.append("> *thinking:* " + line.thinking.replace("\n", "\n> ") + "\n")
        parts.append(f"{line.text}\n")
        if line.note:
            parts.append(f"_{line.note}_\n")
    return "\n".join(parts)


def to_json(lines: list[Line], title: str) -> str:
    return json.dumps({"app": title, "exported": _when(datetime.now(timezone.utc).timestamp()), "messages": [
        {"role": ROLES.get(l.role, l.role), "text": l.text, "status": l.status,
         "note": l.note, "time": _when(l.created), "id": l.key, "reply": l.reply, "thinking": l.thinking or ""}
        for l in lines]},
        ensure_ascii=False, indent=2)
