"""ZeroMQ socket setup shared by the web (which binds the bus) and brains and tails (which connect).

The web is the bus: it binds an XSUB socket that publishers connect to (BUS_PUB_ENDPOINT) and an
XPUB socket that subscribers connect to (BUS_SUB_ENDPOINT), and forwards between them. Brains come
and go; their connecting sockets reconnect by themselves.
"""
import zmq
import zmq.asyncio


def context(asyncio: bool = True) -> zmq.Context:
    ctx = zmq.asyncio.Context() if asyncio else zmq.Context()
    # Without LINGER 0, closing a socket with unsent messages blocks shutdown forever.
    ctx.setsockopt(zmq.LINGER, 0)
    return ctx


def socket(ctx: zmq.Context, kind: int, max_frame_bytes: int, *, bind: str = "", connect: str = "") -> zmq.Socket:
    sock = ctx.socket(kind)
    # A peer that sends a bigger message is disconnected before it can eat memory; the
    # allowance covers the topic frame and the JSON envelope around a maximal payload.
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes + 4096)
    if bind:
        sock.bind(bind)
    if connect:
        sock.connect(connect)
    return sock
