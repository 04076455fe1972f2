"""The open tabs (web/clients.py): a tab that falls behind, in fragments or in bytes, is closed,
counted out at once, and its closing never leaves an error behind; the other tabs get everything."""
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


class ReadingSocket:
    "A tab that reads everything at once."

    def __init__(self):
        self.frames, self.closed = [], []

    async def send_text(self, text):
        self.frames.append(text)

    async def close(self, code):
        self.closed.append(code)


def test_a_tab_that_falls_behind_by_bytes_is_closed_and_the_others_get_everything():
    async def main():
        clients = Clients(queue_limit=2000, byte_limit=300_000)
        stuck, reading, elsewhere = StuckSocket(), ReadingSocket(), ReadingSocket()
        slow, fine, other = clients.add("s", stuck), clients.add("s", reading), clients.add("t", elsewhere)
        chunk = "x" * 100_000
        for i in range(5):  # far fewer fragments than the count bound, but 500 kB behind
            clients.send("s", f"<p>{i}{chunk}</p>")
            clients.send("t", f"<p>{i}</p>")
            await asyncio.sleep(0)  # the readers drain as they go; the stuck tab's first frame never ends
        assert slow.closing and not fine.closing and not other.closing
        await asyncio.sleep(0.05)
        assert stuck.closed == [1013] and reading.closed == elsewhere.closed == []
        assert "".join(reading.frames) == "".join(f"<p>{i}{chunk}</p>" for i in range(5))
        assert "".join(elsewhere.frames) == "".join(f"<p>{i}</p>" for i in range(5))
        assert len(clients) == 2 and slow.outbox.empty() and slow.queued == 0, "what it would be sent is let go"
    asyncio.run(main())


def test_what_goes_out_next_is_not_counted_so_a_snapshot_bigger_than_the_bound_gets_through():
    "A transcript bigger than the bound must still reach a fresh tab, or it would reconnect for ever."
    async def main():
        clients, ws = Clients(byte_limit=100_000), ReadingSocket()
        client = clients.add("s", ws)
        snapshot = "<div>" + "é" * 200_000 + "</div>"
        client.send(snapshot)
        for i in range(9):  # a reply streams into the session before the tab's sender first runs
            clients.send("s", f"<p>{i}{'x' * 10_000}</p>")
        await asyncio.sleep(0.01)
        assert not client.closing and "".join(ws.frames) == snapshot + "".join(f"<p>{i}{'x' * 10_000}</p>" for i in range(9))
        assert client.queued == 0
    asyncio.run(main())


def test_bytes_are_counted_as_sent_not_as_characters():
    async def main():
        clients = Clients(byte_limit=100_000)
        client = clients.add("s", StuckSocket())
        client.send("<p>first</p>")
        await asyncio.sleep(0)  # the first frame is under way and never ends
        client.send("<p>next</p>")  # goes out next: not counted
        client.send("é" * 40_000)  # 80 kB in UTF-8
        assert not client.closing
        client.send("é" * 20_000)  # 40 kB more: 120 kB waiting
        assert client.closing
    asyncio.run(main())


def test_a_change_is_sent_to_every_tab_of_the_session_but_the_one_that_made_it():
    async def main():
        clients = Clients()
        mine, other, scripted, elsewhere = ReadingSocket(), ReadingSocket(), ReadingSocket(), ReadingSocket()
        clients.add("s", mine, "a" * 32)
        clients.add("s", other, "b" * 32)
        clients.add("s", scripted)  # a tab that gave no id is never taken for the one that made a change
        clients.add("t", elsewhere, "a" * 32)
        clients.send("s", "<li>milk</li>", but="a" * 32)
        clients.send("s", "<li>eggs</li>")
        await asyncio.sleep(0.01)
        received = {name: "".join(ws.frames) for name, ws in
                    (("mine", mine), ("other", other), ("scripted", scripted), ("elsewhere", elsewhere))}
        assert received == {"mine": "<li>eggs</li>", "other": "<li>milk</li><li>eggs</li>",
                            "scripted": "<li>milk</li><li>eggs</li>", "elsewhere": ""}
    asyncio.run(main())


def test_only_a_tab_id_the_page_was_given_is_taken():
    from web.exchange import tab_id
    assert tab_id("0123456789abcdef" * 2) == "0123456789abcdef" * 2
    assert [tab_id(raw) for raw in (None, "", "abc", "0123456789ABCDEF" * 2, "0123456789abcdef" * 2 + "\n",
                                    "<script>" + "a" * 24)] == [""] * 6
