"""The web process: the page, the todo routes, the chat WebSocket, and the bus they all feed.

Every todo change and chat message is published to the brain as a bus message; the brain's
replies come back through the relay to the WebSockets of the session that caused them.

Run: uvicorn web.server:app --host 127.0.0.1 --port $PORT   (the Procfile does)
"""
import asyncio
import json
import logging
import re
import uuid
from pathlib import Path

from fasthtml.common import Beforeware, FastHTML, Response, to_xml
from starlette.middleware import Middleware
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.config import Settings, setup_logging
from shared.messages import Chat, Regenerate, Reset, Stop, TodoEvent, full_name
from web.broker import Broker
from web.clients import Clients
from web.export import to_json, to_markdown
from web.components import BrainStatus, ModelPicker, Notice, Page, TodoItem, head_assets
from web.relay import Relay
from web.security import SecurityHeaders, same_origin
from web.status import StatusBoard
from web.store import DiskOutbox, Store, StoreThread

log = logging.getLogger("web")
ROOT = Path(__file__).resolve().parent.parent
VENDOR = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "ws.js": "htmx-ext-ws/dist/ws.min.js",
    "pico.min.css": "@picocss/pico/css/pico.min.css",
    "markdown-it.min.js": "markdown-it/dist/browser/markdown-it.umd.min.js",
    "purify.min.js": "dompurify/dist/purify.min.js",
}
POLICY_VIOLATION = 1008
MAX_TITLE_CHARS = 500
MODEL_NAME = re.compile(r"^[\w.:/-]{1,200}$")  # what Ollama accepts as a model name

setup_logging()
settings = Settings.from_env()
settings.data_dir.mkdir(parents=True, exist_ok=True)
store, db, clients = Store(settings.data_dir), StoreThread(), Clients()
board = StatusBoard(clients, lambda sid: to_xml(status_line(sid)), lambda sid: to_xml(picker(sid)), lambda: broker.models)
relay = Relay(clients, store, db, on_status=board.changed)
broker = Broker(settings, relay, DiskOutbox(store, db))
choices: dict[str, str] = {}  # session -> chosen model, read from the store when a tab connects


async def load_session(sid: str) -> None:
    "Bring a session's transcript and model choice into memory (a no-op once they are there)."
    await relay.load(sid)
    if sid not in choices:
        choices[sid] = await db.call(store.model_choice, sid)


def picker(sid: str):
    return ModelPicker(broker.models, choices.get(sid) or settings.model)


def status_line(sid: str):
    return BrainStatus(*broker.status_of(sid, choices.get(sid, "")))


def before(req, session):
    session.setdefault("sid", uuid.uuid4().hex)
    if req.method not in ("GET", "HEAD") and not same_origin(req.headers):
        return Response("Cross-site request refused", status_code=403)


def vendor_file(req):
    path = VENDOR.get(req.path_params["name"])
    if path is None:
        return Response("Not found", status_code=404)
    return FileResponse(ROOT / "node_modules" / path)


async def lifespan(app):
    missing = [p for p in VENDOR.values() if not (ROOT / "node_modules" / p).exists()]
    if missing:
        raise SystemExit(f"browser assets missing ({', '.join(missing)}): run `npm ci` (`make run` does)")
    broker.open()
    broker.resume(await db.call(store.pending))
    task = asyncio.create_task(broker.run())
    yield
    task.cancel()


async def chat_socket(ws: WebSocket):
    """One browser tab. A small dispatch loop: each frame is handled and answered at once; the reply
    itself arrives later through the relay, so a long generation never blocks this tab."""
    sid = ws.session.get("sid")
    if not same_origin(ws.headers) or not sid:
        await ws.close(POLICY_VIOLATION)  # before accept: the handshake is refused with 403
        return
    await ws.accept()
    await load_session(sid)
    client = clients.add(sid, ws)
    client.send(to_xml(relay.snapshot(sid)) + to_xml(status_line(sid)) + to_xml(picker(sid)))
    try:
        while True:
            frame = await ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            on_frame(sid, client, frame.get("text"))
    except WebSocketDisconnect:
        pass
    finally:
        clients.remove(client)


def on_frame(sid: str, client, text: str | None) -> None:
    "A frame from htmx-ext-ws: the form fields as JSON. Its one known field (see ACTIONS) says what to do."
    try:
        data = json.loads(text) if text is not None else None
    except ValueError:
        data = None
    for field, action in ACTIONS.items():
        value = data.get(field) if isinstance(data, dict) else None
        if isinstance(value, str):
            return action(sid, client, value)
    client.send(to_xml(Notice("That message could not be read; nothing was sent.")))


def chat(sid: str, client, text: str) -> None:
    text = text.strip()
    if not text:
        return
    if len(text) > settings.max_chat_chars:
        client.send(to_xml(Notice(f"That message is {len(text):,} characters long; the limit is "
                                  f"{settings.max_chat_chars:,} (MAX_CHAT_CHARS). Nothing was sent.")))
        return
    request = uuid.uuid4().hex
    sent = broker.submit(Chat(session=sid, request=request, text=text, model=choices.get(sid, "")))
    relay.user_said(sid, request, text, sent)
    client.send(to_xml(Notice("")))


def stop(sid: str, client, request: str) -> None:
    if not relay.live(sid, request):
        return  # it ended meanwhile: nothing to stop
    if broker.withdraw(request):
        relay.stopped_unsent(sid, request)
    else:
        broker.submit(Stop(session=sid, request=uuid.uuid4().hex, reply=request))


def retry(sid: str, client, request: str) -> None:
    text = relay.retryable(sid, request)
    if text is None:
        return client.send(to_xml(Notice("There is nothing to retry there.")))
    new = uuid.uuid4().hex
    relay.retried(sid, request, new, broker.submit(Chat(session=sid, request=new, text=text, retry=True)))


def regenerate(sid: str, client, request: str) -> None:
    if not relay.newest_finished_reply(sid, request):
        return client.send(to_xml(Notice("Only the newest finished reply can be regenerated.")))
    relay.regenerating(sid, request, broker.submit(Regenerate(session=sid, request=uuid.uuid4().hex, reply=request)))


def choose_model(sid: str, client, model: str) -> None:
    if not MODEL_NAME.match(model):
        return client.send(to_xml(Notice("That is not a model name.")))
    models = broker.models  # None while the brain has not listed them yet: the choice is taken on trust
    if models is not None and full_name(model) not in models:
        return client.send(to_xml(Notice(f"The model '{model}' is not pulled. Run `ollama pull {model}`, "
                                         "then choose it again.")))
    choices[sid] = model
    db.post(store.choose_model, sid, model)
    clients.send(sid, to_xml(picker(sid)) + to_xml(status_line(sid)) + to_xml(Notice("")))


def reset(sid: str, client, _: str) -> None:
    broker.submit(Reset(session=sid, request=uuid.uuid4().hex))
    relay.reset(sid)


ACTIONS = {"msg": chat, "stop": stop, "retry": retry, "regenerate": regenerate, "reset": reset, "model": choose_model}


def publish_todo(sid: str, action: str, todo, todos) -> None:
    broker.submit(TodoEvent(session=sid, request=uuid.uuid4().hex, action=action, todo=todo, todos=todos))


app = FastHTML(
    title="Todo with attitude", default_hdrs=False, canonical=False, hdrs=head_assets(), lifespan=lifespan,
    before=Beforeware(before, skip=[r"/static/.*", r"/vendor/.*"]),
    key_fname=str(settings.data_dir / ".sesskey"), middleware=[Middleware(SecurityHeaders)],
    routes=[
        WebSocketRoute("/ws", chat_socket),
        Route("/vendor/{name}", vendor_file),
        Mount("/static", StaticFiles(directory=ROOT / "web" / "static")),
    ],
)
rt = app.route


@rt("/")
async def index(session):
    sid = session["sid"]
    todos = await db.call(store.todo_list, sid)
    await load_session(sid)
    return Page(todos, relay.snapshot(sid).children, status_line(sid), settings.max_chat_chars,
                settings.system_prompt, picker(sid))


@rt("/todos")
async def post(session, title: str = ""):
    title = " ".join(title.split())
    if not title or len(title) > MAX_TITLE_CHARS:
        return Response(f"A todo needs a title of 1 to {MAX_TITLE_CHARS} characters.", status_code=400)
    sid = session["sid"]
    todo = await db.call(store.add_todo, sid, title)
    publish_todo(sid, "added", todo, await db.call(store.todo_list, sid))
    return TodoItem(todo)


@rt("/todos/{tid}/toggle")
async def post(session, tid: int):  # noqa: F811 (FastHTML routes by function name: post, delete)
    sid = session["sid"]
    todo = await db.call(store.toggle_todo, sid, tid)
    if todo is None:
        return Response("No such todo", status_code=404)
    publish_todo(sid, "toggled", todo, await db.call(store.todo_list, sid))
    return TodoItem(todo)


@rt("/todos/{tid}")
async def delete(session, tid: int):
    sid = session["sid"]
    todo = await db.call(store.delete_todo, sid, tid)
    if todo is None:
        return Response("No such todo", status_code=404)
    publish_todo(sid, "deleted", todo, await db.call(store.todo_list, sid))
    return ""


EXPORTS = {"markdown": (to_markdown, "text/markdown", "md"), "json": (to_json, "application/json", "json")}


@rt("/export/{fmt}")
async def export(session, fmt: str):
    "The whole transcript of this session (every finished message, not only the ones on screen)."
    if fmt not in EXPORTS:
        return Response("Export as markdown or json.", status_code=404)
    render, media, suffix = EXPORTS[fmt]
    lines = await db.call(store.transcript, session["sid"])
    return Response(render(lines), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="conversation.{suffix}"'})


@rt("/api/status")
async def status():
    "For scripts and tests: the brain's status and the workers the web knows (read on the loop that changes them)."
    workers = {w: {"pid": s.presence.pid, "busy": s.presence.busy, "model": s.presence.model,
                   "ollama": s.presence.ollama, "version": s.presence.version, "loading": s.presence.loading,
                   "models": s.presence.models}
               for w, s in broker.workers.items() if s.presence}
    status, text = broker.status_of("")
    return {"status": status.value, "text": text, "workers": workers, "models": broker.models,
            "clients": len(clients), "pending": len(broker.pending)}
