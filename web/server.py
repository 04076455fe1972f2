"""The web process: the page, the app's routes, the chat WebSocket, and the bus they all feed.

`create_app` builds one object graph per app and nothing exists before it is called:

    app (APP: its panel, routes, actions; web/apps.py)    store (SQLite, written on its own thread: disk)
      ├─ app_events (what the user did, told the model)     │
      └─ tool_calls (the model's actions, applied once)     sessions (each session's transcript, model, told digest)

    /ws ── tabs (a tab's connection: its rate, each frame read once) ── commands (a frame → one bus message at most)
                                                                            │ submit
                                                                            ▼
                switchboard (the bus without its sockets: routes each session to a brain worker, keeps the outbox)
                                                                            ▲ what the brains say, to be judged
                broker (the bus's sockets and loops)
                                                                            │ what is left for the listener (ChatLayer)
                                                                            ▼
                replies (each reply line's status) ── relay, views ── clients (the tabs)

Run: uvicorn --factory web.server:create_app --host 127.0.0.1 --port $PORT   (the Procfile does)
"""
import asyncio
import uuid
from dataclasses import dataclass
from pathlib import Path

from fasthtml.common import Beforeware, FastHTML, Response, to_xml
from starlette.middleware import Middleware
from starlette.responses import FileResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from shared.config import Settings, setup_logging
from shared.messages import AboutReply, Ack, Presence, Prompt, PullProgress, ToWeb
from shared.private import private_data_dir
from web import apps
from web.actions import Actions
from web.app_events import AppEvents
from web.broker import Broker
from web.clients import Clients
from web.commands import ChatControls, Commands, ModelControls
from web.components import Chat, Relay, head_assets, local_heads
from web.dispatch import GRANTS_REMEMBERED, Owner
from web.exchange import Exchanges, tab_id
from web.export import to_json, to_markdown
from web.interactions import InteractionTap
from web.limits import Admission, Bounds, Rate
from web.loop import adopt
from web.ports import BusAndBrains
from web.pulls import Pulls
from web.replies import Replies
from web.security import AllowedHosts, SecurityHeaders, same_origin
from web.sessions import Sessions
from web.status import ChainStatus, StatusBoard
from web.store import DiskOutbox, Store, StoreThread, Transcripts
from web.switchboard import Outlet, Switchboard
from web.tabs import Tabs
from web.tool_calls import ToolCalls
from web.views import Views

ROOT = Path(__file__).resolve().parent.parent
VENDOR = {
    "htmx.min.js": "htmx.org/dist/htmx.min.js",
    "ws.js": "htmx-ext-ws/dist/ws.min.js",
    "pico.min.css": "@picocss/pico/css/pico.min.css",
    "markdown-it.min.js": "markdown-it/dist/browser/markdown-it.umd.min.js",
    "purify.min.js": "dompurify/dist/purify.min.js",
}
POLICY_VIOLATION = 1008
EXPORTS = {"markdown": (to_markdown, "text/markdown", "md"), "json": (to_json, "application/json", "json")}


def vendor_file(req):
    path = VENDOR.get(req.path_params["name"])
    if path is None:
        return Response("Not found", status_code=404)
    return FileResponse(ROOT / "node_modules" / path)


def before(req, session):
    bounds = req.app.state.bounds
    if req.method not in ("GET", "HEAD") and not same_origin(req.headers):
        return Response("Cross-site request refused", status_code=403)
    if "sid" not in session:
        # A cookie costs nothing to get, so new sessions count against everyone's bound; not those
        # another site's page makes the browser ask for, which can write nothing.
        if req.headers.get("sec-fetch-site") != "cross-site" and (refusal := bounds.new_session()):
            return Response(refusal.text, status_code=refusal.status)
        session["sid"] = uuid.uuid4().hex
    if req.method not in ("GET", "HEAD"):
        # Changes count against the session's rate, as its WebSocket frames do (web/tabs.py).
        if req.app.state.chat.rate.take(session["sid"]) is not Admission.TAKEN:
            return Response("Too many changes at once; slow down (SESSION_RATE).", status_code=429)
        if refusal := bounds.change():
            return Response(refusal.text, status_code=refusal.status)


@dataclass
class ChatLayer:
    """The chat layer, wired: what the routes and the /ws handler reach (tests: the pulls' clock, the
    tasks too), and the broker's listener, which hands each thing a brain says to its piece."""
    prompt: Prompt
    rate: Rate
    clients: Clients
    sessions: Sessions
    pulls: Pulls
    views: Views
    events: AppEvents
    tools: ToolCalls
    replies: Replies
    tabs: Tabs
    relay: Relay
    board: StatusBoard

    def brain_message(self, msg: ToWeb) -> None:
        match msg:
            case Presence():
                self.board.show(self.pulls.presence(msg))
            case PullProgress():
                self.board.show(self.pulls.progress(msg))
            case Ack(reply=""):  # a claim on a message that makes no reply: a pull's, say
                self.pulls.acked(msg)
            case Ack() | AboutReply():
                self.replies.brain_message(msg)

    def brain_status(self, status: ChainStatus) -> None:
        self.board.changed()

    def brain_lost(self, worker: str) -> None:
        self.board.show(self.pulls.lost(worker))
        self.replies.brain_lost(worker)

    def reply_lost(self, session: str, reply: str) -> None:
        self.replies.reply_lost(session, reply)

    async def heard(self, sid: str, lines: list[str], change: bool, tab: str) -> None:
        "An htmx interaction of the app (web/interactions.py): a change is shown in the session's other tabs."
        if change:
            self.relay.refresh(sid, but=tab)
            await self.events.changed(sid, lines)
        else:
            self.events.tell(sid, lines)


def wire_chat(settings: Settings, store: Store, disk: StoreThread, clients: Clients, bus: BusAndBrains,
              app_: apps.App) -> ChatLayer:
    "Each piece of the chat layer, given the collaborators it works through."
    prompt = app_.prompt(settings)  # made once: the same bytes in every message
    relay = Relay(clients)
    rate = Rate(settings.session_rate, settings.session_burst)  # frames in web/tabs.py, changes in `before`
    sessions = Sessions(Transcripts(store, disk), clients.watching, bus)
    pulls = Pulls(bus, settings.heartbeat_s)
    views = Views(settings, sessions, bus, pulls)
    # The pull offer depends on what the status line does (the session's model, Ollama's list).
    board = StatusBoard(clients, lambda sid: to_xml(views.status_line(sid)) + to_xml(views.pull_panel(sid)),
                        lambda sid: to_xml(views.picker(sid)), lambda: bus.models)
    events = AppEvents(sessions, bus, app_, disk, prompt)
    tools = ToolCalls(sessions, relay, Actions(store.db, app_), disk, events)
    replies = Replies(sessions, relay, bus, tools, prompt)
    commands = Commands(ChatControls(settings, sessions, bus, relay, prompt),
                        ModelControls(sessions, bus, views, relay, pulls), tools, events)
    return ChatLayer(prompt, rate, clients, sessions, pulls, views, events, tools, replies,
                     Tabs(clients, sessions, views, commands, rate, settings.ws_max_frame_chars), relay, board)


def create_app(settings: Settings | None = None, fake_bus=None) -> FastHTML:
    """The app and its object graph. The broker binds the bus's sockets when the app starts; a test
    may pass `fake_bus`, a class that stands in for the switchboard and the broker both."""
    if settings is None:
        setup_logging()
        settings = Settings.from_env()
    private_data_dir(settings.data_dir)  # before web.db and .sesskey are written
    store, disk, clients = Store(settings.data_dir), StoreThread(), Clients(settings.ws_tab_queue, settings.ws_tab_queue_bytes)
    outbox, outlet = DiskOutbox(store, disk, GRANTS_REMEMBERED), Outlet()
    board = fake_bus(settings, None, outbox) if fake_bus else Switchboard(settings, outbox, outlet)

    host = apps.Host(settings)
    bounds = Bounds(settings)
    app_ = bounds.guard(apps.load(settings.app, host))  # the model's actions count as changes too
    chat = wire_chat(settings, store, disk, clients, board, app_)
    broker = board if fake_bus else Broker(settings, chat, board, outlet)

    async def lifespan(app):
        missing = [p for p in VENDOR.values() if not (ROOT / "node_modules" / p).exists()]
        if missing:
            raise SystemExit(f"browser assets missing ({', '.join(missing)}): run `npm ci` (`make run` does)")
        host.loop = asyncio.get_running_loop()  # where an app's async action is awaited
        broker.open()
        board.resume(await disk.call(store.pending, settings.max_frame_bytes),
                     {row.session: Owner(row.worker, row.epoch) for row in await disk.call(store.assignments)},
                     {row.id: Owner(row.worker, row.epoch) for row in await disk.call(store.granted)})
        task = asyncio.create_task(broker.run())
        yield
        task.cancel()

    async def chat_socket(ws: WebSocket):
        """One browser tab, in the shape of a WebSocket endpoint: connect, a small loop handing each
        frame to the tab's connection as it arrives (replies come later through the relay), and
        cleanup in one place."""
        sid = ws.session.get("sid")
        if not same_origin(ws.headers) or not sid:
            await ws.close(POLICY_VIOLATION)  # before accept: the handshake is refused with 403
            return
        await ws.accept()
        tab = await chat.tabs.connect(sid, ws, tab_id(ws.query_params.get("tab")))
        try:
            tab.opened()
            while not tab.closing:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                tab.receive(message.get("text"))
        except WebSocketDisconnect:
            pass
        finally:
            tab.close()

    app = FastHTML(
        title=app_.title, default_hdrs=False, canonical=False, hdrs=head_assets(), lifespan=lifespan,
        before=Beforeware(before, skip=[r"/static/.*", r"/vendor/.*", r"/api/status"]),  # status polls need no session
        key_fname=str(settings.data_dir / ".sesskey"),
        middleware=[Middleware(AllowedHosts, names=settings.allowed_hosts), Middleware(SecurityHeaders), Middleware(Exchanges),
                    Middleware(InteractionTap, tell=chat.heard)],
        routes=[
            WebSocketRoute("/ws", chat_socket),
            Route("/vendor/{name}", vendor_file),
            Mount("/static", StaticFiles(directory=ROOT / "web" / "static")),
        ],
    )
    app.state.chat, app.state.broker, app.state.bounds = chat, broker, bounds
    rt = app.route

    def chat_of(sid: str) -> Chat:
        "The chat beside a page of the app, for a new tab (its session opened by `open_chat`)."
        views = chat.views
        return Chat(uuid.uuid4().hex, views.bubbles(sid), views.status_line(sid), settings.max_chat_chars,
                    chat.prompt.system, views.picker(sid), views.pull_panel(sid), app_.placeholder)

    async def open_chat(req, session):
        "Before a page of the app: its session's transcript, read once, for the chat beside it."
        if req.method == "GET" and "hx-request" not in req.headers:
            await chat.sessions.open(session["sid"])

    @rt("/export/{fmt}", methods=["get"])
    async def export(session, fmt: str):
        "The whole transcript of this session (every line, not only the ones on screen)."
        if fmt not in EXPORTS:
            return Response("Export as markdown or json.", status_code=404)
        render, media, suffix = EXPORTS[fmt]
        lines = await disk.call(store.transcript, session["sid"])
        return Response(render(lines, app_.title), media_type=media,
                        headers={"Content-Disposition": f'attachment; filename="conversation.{suffix}"'})

    @rt("/api/status", methods=["get"])
    async def status():
        "For scripts and tests: the brain's status and the workers the web knows (read on the loop that changes them)."
        workers = {w: {"pid": s.presence.pid, "ready": board.ready(w), "busy": s.presence.busy, "model": s.presence.model,
                       "ollama": s.presence.ollama, "version": s.presence.version, "loading": s.presence.loading,
                       "models": s.presence.models}
                   for w, s in board.workers.items() if s.presence}
        state, text = board.status_of("")
        return {"status": state.value, "text": text, "workers": workers, "models": board.models,
                "clients": len(chat.clients), "pending": len(board.pending)}

    adopt(app, app_.fasthtml, [app.before[0], open_chat], lambda req: chat_of(req.scope["session"]["sid"]), local_heads)
    return app
