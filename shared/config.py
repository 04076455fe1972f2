"""Settings for both processes, read from the environment (honcho loads `.env`).

Every variable is documented in `.env.example`; keep the two in step.
"""
import logging
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

class Routing(StrEnum):
    "How the web picks a brain worker for a session (BUS_ROUTING)."
    LOAD = "load"  # load-aware, with affinity
    HASH = "hash"  # affinity and rendezvous hashing only


def ollama_url(host: str) -> str:
    """Read OLLAMA_HOST the way Ollama's own client does: `host:port` and `:port` mean http with
    default port 11434, while an explicit `http://` or `https://` without a port means 80 or 443."""
    host = host.strip().rstrip("/") or "127.0.0.1:11434"
    scheme, sep, hostport = host.partition("://")
    if not sep:
        scheme, hostport, default_port = "http", host, 11434
    else:
        default_port = 443 if scheme == "https" else 80
    parts = urlsplit(f"{scheme}://{hostport}")
    name = parts.hostname or "127.0.0.1"
    name = f"[{name}]" if ":" in name else name
    return f"{scheme}://{name}:{parts.port or default_port}{parts.path}"


def setup_logging() -> None:
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO").upper(),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")


def _float(env, name, default):
    raw = env.get(name, "")
    try:
        return float(raw) if raw.strip() else default
    except ValueError:
        raise SystemExit(f"config: {name}={raw!r} is not a number") from None


def _int(env, name, default):
    return int(_float(env, name, default))


def _choice(env, name, choices):
    "One of `choices` (the first when unset)."
    raw = env.get(name, "").strip().lower() or choices[0]
    if raw not in choices:
        raise SystemExit(f"config: {name}={raw!r} is not one of {', '.join(choices)}")
    return raw


@dataclass(frozen=True)
class Settings:
    web_host: str
    allowed_hosts: list[str]
    port: int
    data_dir: Path
    bus_pub: str
    bus_sub: str
    bus_curve_dir: str
    heartbeat_s: float
    max_frame_bytes: int
    bus_window: int
    ollama_url: str
    model: str
    connect_timeout_s: float
    read_timeout_s: float
    keep_alive: str
    ollama_check_s: float
    num_ctx: int
    reply_max_tokens: int  # sent as num_predict with every reply's request (REPLY_MAX_TOKENS)
    reply_max_s: float  # wall-clock bound on one reply, from its first request (REPLY_MAX_S)
    parallel: int
    brain_database_url: str  # "" keeps conversations in DATA_DIR/brain.db (SQLite)
    routing: Routing
    comment_delay_s: float
    system_prompt: str  # SYSTEM_PROMPT(_FILE): replaces the app's own persona; "" keeps it
    app: str  # the app the web serves (APP): a package under apps/ or any importable module; "" for the web's default
    max_chat_chars: int
    tools: bool
    tool_rounds: int  # rounds of tool calls in one reply (MODEL_TOOL_ROUNDS)
    tool_mode: str  # MODEL_TOOL_MODE: "auto" (by the model's size), "native" tool calls, or "decide" (brain/tools.py)
    # Bounds on what one session may ask of the app (see README, "Limits").
    session_max_pending: int  # messages waiting for a brain (memory and outbox), and jobs queued in a brain
    session_max_replies: int  # replies queued or under way
    session_rate: float  # frames and changes a second, in bursts of up to session_burst
    session_burst: int
    ws_max_frame_chars: int
    ws_tab_queue: int  # fragments queued for a tab before it is closed to resync
    ws_tab_queue_bytes: int  # bytes waiting behind the frame a tab is being sent, before it is closed to resync
    # Bounds on all sessions together (see web/limits.py).
    new_sessions_rate: float  # new sessions a minute, in bursts of up to new_sessions_burst
    new_sessions_burst: int
    changes_rate: float  # the app's changes (its POST/DELETE routes, the model's actions) a second, in bursts
    changes_burst: int
    data_max_mb: float  # DATA_DIR's databases; past it changes and messages are refused

    @property
    def bus_endpoints(self) -> list[str]:
        return [self.bus_pub, self.bus_sub]

    @classmethod
    def from_env(cls, env=None) -> "Settings":
        env = os.environ if env is None else env
        prompt_file = env.get("SYSTEM_PROMPT_FILE", "").strip()
        prompt = Path(prompt_file).read_text().strip() if prompt_file else env.get("SYSTEM_PROMPT", "").strip()
        app = env.get("APP", "").strip()
        # Another app keeps its data (sessions, conversations, the bus) apart from the default one's.
        data_dir = Path(env.get("DATA_DIR", "").strip() or (f"data/{app.removeprefix('apps.')}" if app else "data"))
        web_host = env.get("WEB_HOST", "127.0.0.1").strip() or "127.0.0.1"
        return cls(
            web_host=web_host,
            # The address the web binds is one of its names too (a wildcard is not a name).
            allowed_hosts=list(dict.fromkeys(["127.0.0.1", "localhost", "::1"]
                                             + ([web_host] if web_host not in ("0.0.0.0", "::") else [])
                                             + [h.strip() for h in env.get("ALLOWED_HOSTS", "").split(",") if h.strip()])),
            port=_int(env, "PORT", 5000),
            data_dir=data_dir,
            # Private by default: Unix sockets in a directory only this account can enter.
            bus_pub=env.get("BUS_PUB_ENDPOINT", "").strip() or f"ipc://{data_dir.resolve() / 'bus' / 'pub'}",
            bus_sub=env.get("BUS_SUB_ENDPOINT", "").strip() or f"ipc://{data_dir.resolve() / 'bus' / 'sub'}",
            bus_curve_dir=env.get("BUS_CURVE_DIR", "").strip(),
            heartbeat_s=_float(env, "BUS_HEARTBEAT_S", 1.0),
            max_frame_bytes=_int(env, "BUS_MAX_FRAME_BYTES", 1 << 20),
            bus_window=max(16, _int(env, "BUS_WINDOW", 1000)),
            ollama_url=ollama_url(env.get("OLLAMA_HOST", "") or "127.0.0.1:11434"),
            model=env.get("OLLAMA_MODEL", "llama3.2"),
            connect_timeout_s=_float(env, "OLLAMA_CONNECT_TIMEOUT_S", 3.0),
            read_timeout_s=_float(env, "OLLAMA_READ_TIMEOUT_S", 120.0),
            keep_alive=env.get("OLLAMA_KEEP_ALIVE", "30m"),
            ollama_check_s=max(0.1, _float(env, "OLLAMA_CHECK_S", 2.0)),
            num_ctx=max(256, _int(env, "OLLAMA_NUM_CTX", 8192)),
            reply_max_tokens=max(1, _int(env, "REPLY_MAX_TOKENS", 2048)),
            reply_max_s=max(1.0, _float(env, "REPLY_MAX_S", 300.0)),
            parallel=max(1, _int(env, "BRAIN_PARALLEL", 4)),
            brain_database_url=env.get("BRAIN_DATABASE_URL", "").strip(),
            routing=Routing.HASH if env.get("BUS_ROUTING", "").strip().lower() == "hash" else Routing.LOAD,
            comment_delay_s=_float(env, "COMMENT_DELAY_S", 1.5),
            system_prompt=prompt,
            app=app,
            max_chat_chars=_int(env, "MAX_CHAT_CHARS", 8000),
            tools=env.get("MODEL_TOOLS", "1").strip().lower() not in ("0", "off", "false", "no"),
            tool_rounds=max(1, _int(env, "MODEL_TOOL_ROUNDS", 1)),
            tool_mode=_choice(env, "MODEL_TOOL_MODE", ("auto", "native", "decide")),
            session_max_pending=max(1, _int(env, "SESSION_MAX_PENDING", 100)),
            session_max_replies=max(1, _int(env, "SESSION_MAX_REPLIES", 3)),
            session_rate=max(0.1, _float(env, "SESSION_RATE", 10.0)),
            session_burst=max(1, _int(env, "SESSION_BURST", 40)),
            ws_max_frame_chars=max(1024, _int(env, "WS_MAX_FRAME_CHARS", 65536)),
            ws_tab_queue=max(10, _int(env, "WS_TAB_QUEUE", 2000)),
            ws_tab_queue_bytes=max(65536, _int(env, "WS_TAB_QUEUE_BYTES", 4 << 20)),
            new_sessions_rate=max(1.0, _float(env, "NEW_SESSIONS_RATE", 30.0)),
            new_sessions_burst=max(1, _int(env, "NEW_SESSIONS_BURST", 60)),
            changes_rate=max(0.1, _float(env, "CHANGES_RATE", 20.0)),
            changes_burst=max(1, _int(env, "CHANGES_BURST", 200)),
            data_max_mb=max(1.0, _float(env, "DATA_MAX_MB", 1024.0)),
        )
