"""The open tabs (web/clients.py): a tab that falls behind is closed, counted out at once, and its
closing never leaves an error behind."""
import asyncio

from starlette.websockets import WebSocketDisconnect

from web.clients import Clients


class StuckSocket:
    "A tab that never reads: every send waits for ever; closing it finds the peer gone."

    def __init__(self):
        self.closed = []

    async def send_text(self, text):
        await asyncio.Event().wait()

    async def close(self, code):
        self.closed.append(code)
        raise WebSocketDisconnect(1006)


def test_a_tab_that_falls_behind_is_closed_and_counted_out_at_once():
    async def main():
        errors = []
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        clients, ws = Clients(queue_limit=10), StuckSocket()
        client = clients.add("s", ws)
        for i in range(12):
            clients.send("s", f"<p>{i}</p>")
        assert len(clients) == 0 and client.closing
        await asyncio.sleep(0.05)
        assert ws.closed == [1013] and client.closing.done() and client.closing.exception() is None
        clients.remove(client)  # the handler's own cleanup, later, is harmless
        del client
        import gc
        gc.collect()
        await asyncio.sleep(0)
        assert errors == []
    asyncio.run(main())
