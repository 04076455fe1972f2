"""A reading list, with a librarian who has opinions: the second app on the app layer (web/apps.py).

It shows how little an app needs: its data (one fastlite table), three actions the model may take
(each with its undo), how a change is told and shown, and its htmx routes. The chat, the bus, the
brain, the cards with Undo and every safeguard come from the layer. Run it with `make run APP=reading`.
"""
from dataclasses import dataclass
from typing import Annotated

import msgspec
from fasthtml.common import H2, Button, Div, Form, Input, Li, Response, Section, Small, Span, Ul, to_xml

from web.apps import Action, App, Host, Outcome, Refused, Route, plain_text

PERSONA = (
    "You are the librarian inside a reading-list app: well read, opinionated, brief (one or two sentences).\n\n"
    "Call a tool only when the user asks you to change the list (add a book, mark one read or unread, remove "
    "one); otherwise answer in words.\n\n"
    "Messages that start with 'App note:' are not typed by the user: the app tells you what the user just did and "
    "the reading list after it. Comment on those briefly, in character. The newest app note holds the list as it is now."
)
MAX_CHARS = 200
MAX_BOOKS = 500  # per session: the list is in every prompt, and nothing grows without a bound


@dataclass
class Book:
    id: int | None = None
    session: str = ""
    title: str = ""
    author: str = ""
    read: bool = False


BookRef = Annotated[int | str, msgspec.Meta(description="The book's number: 2 for #2, or its title.")]


class AddBook(msgspec.Struct):
    title: Annotated[str, msgspec.Meta(description="The book's title.")]
    author: Annotated[str, msgspec.Meta(description="Who wrote it; empty if the user did not say.")] = ""


class MarkRead(msgspec.Struct):
    id: BookRef
    read: Annotated[bool, msgspec.Meta(description="true: read; false: not read yet.")] = True


class RemoveBook(msgspec.Struct):
    id: BookRef


def describe(b: Book) -> str:
    return f"#{b.id} '{b.title}'" + (f" by {b.author}" if b.author else "")


def tell(change: tuple[str, Book]) -> str:
    what, book = change
    return f"marked {describe(book)} {'read' if book.read else 'not read'}" if what == "marked" else f"{what} {describe(book)}"


def BookItem(b: Book, oob: bool = False):
    bid = f"book-{b.id}"
    return Li(id=bid, cls="item done" if b.read else "item", hx_swap_oob="true" if oob else None)(
        Input(type="checkbox", checked=b.read, hx_post=f"/books/{b.id}/read", hx_target=f"#{bid}", hx_swap="outerHTML",
              aria_label=f"Mark '{b.title}' {'not read' if b.read else 'read'}"),
        Span(b.title, cls="title"), Small(b.author, cls="by"),
        Button("×", hx_delete=f"/books/{b.id}", hx_target=f"#{bid}", hx_swap="outerHTML",
               cls="delete outline secondary", aria_label=f"Remove '{b.title}'"))


def shown(change: tuple[str, Book]):
    what, book = change
    if what in ("added", "restored"):
        return Ul(BookItem(book), id="book-list", hx_swap_oob="beforeend")
    return Li(id=f"book-{book.id}", hx_swap_oob="delete") if what == "removed" else BookItem(book, oob=True)


def make(host: Host) -> App:
    books = host.db.create(Book, name="books", pk=("id", "session"), transform=True)
    host.db.execute("create table if not exists book_numbers (session text primary key, last integer not null)")

    def next_id(session: str) -> int:
        """Each session numbers its own books from 1, past every number it gave: a removed book's
        number never names another, so an Undo finds the book it means."""
        [(bid,)] = host.db.execute(
            "insert into book_numbers (session, last) values (?, (select coalesce(max(id), 0) + 1 from books "
            "where session = ?)) on conflict (session) do update set last = last + 1 returning last", [session, session])
        return bid

    def kept(b: Book) -> Book:
        "A row as the table gives it back (SQLite's 0 and 1 for read)."
        return Book(b.id, b.session, b.title, b.author, bool(b.read))

    def listed(session: str) -> list[Book]:
        return [kept(b) for b in books(where="session = ?", where_args=[session], order_by="id")]

    def state(session: str) -> str:
        lines = [f"- [{'x' if b.read else ' '}] {describe(b)}" for b in listed(session)]
        return "The reading list now:\n" + "\n".join(lines) if lines else "The reading list is now empty."

    def find(session: str, ref) -> Book:
        text = str(ref).strip().lstrip("#")
        found = [b for b in listed(session) if str(b.id) == text or b.title.lower() == text.lower()]
        if not found:
            raise Refused(f"no book is {ref!r}. {state(session)}")
        return found[0]

    def clean(text) -> str:
        text = plain_text(text, "a title or an author")
        if not 0 < len(text) <= MAX_CHARS:
            raise Refused(f"a title must be 1 to {MAX_CHARS} characters.")
        return text

    def add(session: str, args: AddBook) -> Outcome:
        title, author = clean(args.title), plain_text(args.author, "a title or an author")[:MAX_CHARS]
        if books.count_where("session = ?", [session]) >= MAX_BOOKS:
            raise Refused(f"the reading list holds {MAX_BOOKS} books, as many as it may; remove some first.")
        book = kept(books.insert(Book(id=next_id(session), session=session, title=title, author=author)))
        return Outcome(f"Added {describe(book)}.", [("added", book)], {"added": book.id})

    def mark(session: str, args: MarkRead) -> Outcome:
        book = find(session, args.id)
        now = kept(books.update(Book(book.id, session, book.title, book.author, args.read)))
        return Outcome(f"Marked {describe(now)} {'read' if args.read else 'not read'}.", [("marked", now)],
                       {"marked": book.id, "read": book.read})

    def remove(session: str, args: RemoveBook) -> Outcome:
        book = find(session, args.id)
        books.delete((book.id, session))
        return Outcome(f"Removed {describe(book)}.", [("removed", book)], {"removed": msgspec.to_builtins(book)})

    def undo(session: str, done: dict) -> list:
        if "added" in done:
            book = listed_one(session, done["added"])
            books.delete((book.id, session))
            return [("removed", book)]
        if "marked" in done:
            book = listed_one(session, done["marked"])
            return [("marked", kept(books.update(Book(book.id, session, book.title, book.author, done["read"]))))]
        return [("restored", kept(books.insert(msgspec.convert(done["removed"], Book))))]

    def listed_one(session: str, bid: int) -> Book:
        book = next((b for b in listed(session) if b.id == bid), None)
        if book is None:
            raise Refused("That book is gone already; there is nothing to undo.")
        return book

    async def changed(session, change):
        await host.changed(session["sid"], [change])
        return BookItem(change[1]) if change[0] != "removed" else ""

    async def add_route(session, title: str = "", author: str = ""):
        try:
            outcome = await host.disk.call(add, session["sid"], AddBook(title, author))
        except Refused as e:
            return Response(str(e), status_code=400)
        return await changed(session, outcome.changes[0])

    async def read_route(session, bid: int):
        try:
            book = await host.disk.call(find, session["sid"], bid)
            outcome = await host.disk.call(mark, session["sid"], MarkRead(bid, not book.read))
        except Refused:
            return Response("No such book", status_code=404)
        return await changed(session, outcome.changes[0])

    async def remove_route(session, bid: int):
        try:
            outcome = await host.disk.call(remove, session["sid"], RemoveBook(bid))
        except Refused:
            return Response("No such book", status_code=404)
        return await changed(session, outcome.changes[0])

    async def panel(session: str):
        return Section(H2("Reading list"), cls="app")(
            Form(id="book-form", cls="app-form", hx_post="/books", hx_target="#book-list", hx_swap="beforeend")(
                Input(id="book-title", name="title", placeholder="A book to read", required=True, maxlength=MAX_CHARS,
                      autocomplete="off"),
                Input(id="book-author", name="author", placeholder="by…", maxlength=MAX_CHARS, autocomplete="off"),
                Button("Add")),
            Div(id="app-notice", cls="notice", role="alert"),
            Ul(*[BookItem(b) for b in await host.disk.call(listed, session)], id="book-list", cls="items"))

    return App(
        title="Reading list", persona=PERSONA, panel=panel, state=state, brief=lambda s: state(s).replace("\n", " "),
        tell=tell, show=lambda changes: "".join(to_xml(shown(c)) for c in changes), placeholder="Ask the librarian…",
        actions=[Action("add_book", "Add a book to the reading list. Only when the user asks to.", AddBook, add, undo),
                 Action("mark_read", "Mark a book read (read=true) or not read yet (read=false). Only when the user "
                                     "says so.", MarkRead, mark, undo),
                 Action("remove_book", "Take a book off the list. Only when the user asks to.", RemoveBook, remove, undo)],
        routes=[Route("post", "/books", add_route), Route("post", "/books/{bid}/read", read_route),
                Route("delete", "/books/{bid}", remove_route)])
