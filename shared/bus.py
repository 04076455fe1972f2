"""ZeroMQ socket setup shared by the web (which binds the bus) and brains and tails (which connect).

The web is the bus: it binds an XSUB socket that publishers connect to (BUS_PUB_ENDPOINT) and an
XPUB socket that subscribers connect to (BUS_SUB_ENDPOINT), and forwards between them. Brains come
and go; their connecting sockets reconnect by themselves.

By default the bus is two Unix sockets (ipc://) in DATA_DIR/bus, a directory only the account that
runs the app may enter: other local accounts can neither read nor publish. Over TCP on loopback it
is open to local processes, like any local port (set BUS_*_ENDPOINT for that). Beyond loopback it must be
encrypted and authenticated with CURVE: keys come from BUS_CURVE_DIR (made by
`python -m shared.curve_keys DIR`), and a process refuses to start without them.
"""
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import zmq
import zmq.asyncio
import zmq.auth


class BusConfigError(SystemExit):
    pass


@dataclass(frozen=True)
class Curve:
    "The keys of a CURVE-protected bus, as laid out by shared.curve_keys."
    directory: Path

    def server(self) -> tuple[bytes, bytes]:
        return zmq.auth.load_certificate(self.directory / "server.key_secret")

    def client(self) -> tuple[bytes, bytes]:
        return zmq.auth.load_certificate(self.directory / "client.key_secret")

    def server_public(self) -> bytes:
        return zmq.auth.load_certificate(self.directory / "server.key")[0]

    @property
    def authorized(self) -> Path:
        return self.directory / "authorized"


def is_local(endpoint: str) -> bool:
    """ipc:// and inproc:// are local; tcp:// is local only on a loopback address. Every other
    transport (tipc, pgm, udp, ws, ...) may reach beyond this machine, so it is not."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = urlsplit(endpoint).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def curve_for(endpoints: list[str], curve_dir: str) -> Curve | None:
    "The CURVE keys to use, or None for a plain loopback bus; refuses an unprotected remote bus."
    if curve_dir:
        curve = Curve(Path(curve_dir))
        if not (curve.directory / "server.key").exists():
            raise BusConfigError(f"BUS_CURVE_DIR={curve_dir} holds no keys: make them with "
                                 f"`python -m shared.curve_keys {curve_dir}`")
        return curve
    remote = [e for e in endpoints if not is_local(e)]
    if remote:
        raise BusConfigError(f"the bus endpoint {remote[0]} is reachable beyond this machine: set BUS_CURVE_DIR "
                             "to a key directory (`python -m shared.curve_keys DIR`) so it is encrypted and "
                             "authenticated, or keep the endpoints on 127.0.0.1")
    return None


# Messages queued per peer and direction. Flow control (brain/outlet.py) keeps a brain within BUS_WINDOW
# chunk messages of what the web has taken, plus a few messages per live reply, so this is a
# safety net that is never reached, not a buffer: the web's memory stays flat under overload.
HIGH_WATER_MARK = 10_000
IPC_PATH_LIMIT = 100  # a Unix socket's path must fit in about 107 bytes (sun_path)


def ipc_dir(endpoint: str) -> Path | None:
    return Path(endpoint.removeprefix("ipc://")).parent if endpoint.startswith("ipc://") else None


def make_private(endpoints: list[str]) -> None:
    """For the process that binds: the ipc sockets' directory, made so only this account can enter
    it (0700), which is what keeps other local accounts off the bus."""
    for endpoint in endpoints:
        directory = ipc_dir(endpoint)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            directory.chmod(0o700)


def check_reachable(endpoint: str) -> None:
    "Refuse at once, with a reason, an ipc bus this account may not enter (ZeroMQ would just keep retrying)."
    path, directory = endpoint.removeprefix("ipc://"), ipc_dir(endpoint)
    if directory is None:
        return
    if len(path.encode()) > IPC_PATH_LIMIT:
        raise BusConfigError(f"the bus socket path {path} is longer than {IPC_PATH_LIMIT} bytes, which Unix sockets "
                             "do not allow: use a shorter DATA_DIR or set BUS_PUB_ENDPOINT / BUS_SUB_ENDPOINT")
    if not enterable(directory):
        raise BusConfigError(f"cannot reach the bus at {endpoint}: permission denied. The bus is private to the "
                             f"account that runs the app (uid {owner(directory)}); run this as that account.")


def enterable(directory: Path) -> bool:
    "False when this account is refused on the way to the directory (not when the web has yet to make it)."
    try:
        directory.stat()
    except FileNotFoundError:
        return True
    except PermissionError:
        return False  # DATA_DIR itself is private (0700), so another account cannot even look inside
    return os.access(directory, os.X_OK)


def owner(directory: Path) -> int:
    "The uid of the directory, or of the nearest one above it this account may look at."
    for path in (directory, *directory.parents):
        try:
            return path.stat().st_uid
        except OSError:
            continue
    return -1


def context(asyncio: bool = True) -> zmq.Context:
    ctx = zmq.asyncio.Context() if asyncio else zmq.Context()
    # Without LINGER 0, closing a socket with unsent messages blocks shutdown forever.
    ctx.setsockopt(zmq.LINGER, 0)
    return ctx


def socket(ctx: zmq.Context, kind: int, max_frame_bytes: int, *, bind: str = "", connect: str = "",
           curve: Curve | None = None) -> zmq.Socket:
    sock = ctx.socket(kind)
    # A peer that sends a bigger message is disconnected before it can eat memory; the
    # allowance covers the topic frame and the JSON envelope around a maximal payload.
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes + 4096)
    # PUB and XPUB drop what does not fit (1,000 messages by default, which a burst of replies' ends
    # and claims could pass); chunks are held back by flow control long before this.
    sock.setsockopt(zmq.SNDHWM, HIGH_WATER_MARK)
    sock.setsockopt(zmq.RCVHWM, HIGH_WATER_MARK)
    if curve and bind:
        public, secret = curve.server()
        sock.curve_publickey, sock.curve_secretkey, sock.curve_server = public, secret, True
    elif curve:
        sock.curve_publickey, sock.curve_secretkey = curve.client()
        sock.curve_serverkey = curve.server_public()
    for endpoint in (bind, connect):
        if endpoint:
            check_reachable(endpoint)
    if bind:
        sock.bind(bind)
    if connect:
        sock.connect(connect)
    return sock


def start_authenticator(ctx: zmq.asyncio.Context, curve: Curve | None):
    "The web's gate: only clients whose public key is in BUS_CURVE_DIR/authorized may connect."
    if curve is None:
        return None
    from zmq.auth.asyncio import AsyncioAuthenticator

    auth = AsyncioAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(curve.authorized))
    return auth
