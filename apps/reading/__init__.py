"""A reading list, each session's own, with a librarian who has opinions: a plain FastHTML app (fastlite,
htmx routes, FT components) with the model in its loop (web/loop.py). `make run APP=reading`."""
import os
from dataclasses import asdict, dataclass, replace
from typing import Annotated

from fasthtml.common import *
from fastlite import database

from web.apps import plain_text
from web.loop import Loop, Refused

PERSONA = "You are the librarian inside a reading-list app: well read, opinionated, brief (one or two sentences)."
MAX_CHARS, MAX_BOOKS = 200, 500  # books per session: the list is in every prompt, and nothing grows without a bound


@dataclass
class Book:
    id: int
    title: str
    author: str = ""
    read: bool = False


db = database(os.path.join(os.environ.get("DATA_DIR", "data"), "reading.db"))
books = db.t.books.create(dict(session=str, id=int, title=str, author=str, read=bool), pk=("session", "id"),
                          if_not_exists=True)
# Each session numbers its books from 1 and never gives a number twice: an Undo finds the book it means.
db.execute("create table if not exists numbers (session text primary key, last integer not null)")
NEXT = "insert into numbers values (?, 1) on conflict (session) do update set last = last + 1 returning last"
app, rt = fast_app()


def listed(sid: str) -> list[Book]:
    return [Book(r["id"], r["title"], r["author"], bool(r["read"])) for r in books.rows_where("session = ?", [sid], order_by="id")]


def describe(b: Book) -> str:
    return f"#{b.id} '{b.title}'" + (f" by {b.author}" if b.author else "")


def reading_list(session) -> str:
    lines = [f"- [{'x' if b.read else ' '}] {describe(b)}" for b in listed(session["sid"])]
    return "The reading list now:\n" + "\n".join(lines) if lines else "The reading list is now empty."


loop = Loop(app, PERSONA, state=reading_list, title="Reading list", placeholder="Ask the librarian…")


def find(session, ref, missing: str = "") -> Book:
    "A book by its number (2, '#2') or its title (any case), or Refused: `missing`, else that there is none."
    text = str(ref).strip().lstrip("#").lower()  # a number given as one is never taken for a title
    book = next((b for b in listed(session["sid"]) if text == str(b.id) or not isinstance(ref, int) and
                 text == b.title.lower()), None)
    if book is None:
        raise Refused(missing or f"no book is {ref!r}.")  # the layer adds the list (the brief) once
    return book


GONE = "That book is gone already; there is nothing to undo."
BookRef = Annotated[int | str, "The book's number: 2 for #2, or its title."]


@loop.action
def add_book(title: Annotated[str, "The book's title."],
             author: Annotated[str, "Who wrote it; empty if the user did not say."] = "", session=None) -> Book:
    "Add a book to the reading list. Only when the user asks to."
    title, author = (plain_text(t, "a title or an author") for t in (title, author))
    if not 0 < len(title) <= MAX_CHARS:
        raise Refused(f"a title must be 1 to {MAX_CHARS} characters.")
    if books.count_where("session = ?", [session["sid"]]) >= MAX_BOOKS:
        raise Refused(f"the reading list holds {MAX_BOOKS} books, as many as it may; remove some first.")
    [(number,)] = db.execute(NEXT, [session["sid"]])
    books.insert(dict(session=session["sid"], **asdict(book := Book(number, title, author[:MAX_CHARS]))))
    return book


@add_book.undo
def _(book: Book, session):
    books.delete((session["sid"], find(session, book.id, GONE).id))


@loop.action
def mark_read(id: BookRef, read: Annotated[bool, "true: read; false: not read yet."] = True, session=None) -> Book:
    "Mark a book read (read=true) or not read yet (read=false). Only when the user says so."
    book = find(session, id)
    if book.read == read:
        raise Refused(f"{describe(book)} is marked {'read' if read else 'not read'} already.")
    books.update(dict(session=session["sid"], id=book.id, read=read))
    return replace(book, read=read)


@mark_read.undo
def _(book: Book, session):
    books.update(dict(session=session["sid"], id=find(session, book.id, GONE).id, read=not book.read))


@loop.action
def remove_book(id: BookRef, session=None) -> Book:
    "Take a book off the list. Only when the user asks to."
    books.delete((session["sid"], (book := find(session, id)).id))
    return book


@remove_book.undo
def _(book: Book, session):
    books.insert(dict(session=session["sid"], **asdict(book)))


def BookItem(b: Book):  # its checkbox and its × swap the whole item (hx-target and hx-swap are inherited)
    return Li(id=f"book-{b.id}", cls="item done" if b.read else "item", hx_target="this", hx_swap="outerHTML")(
        Input(type="checkbox", checked=b.read, hx_post=f"/books/{b.id}/read",
              aria_label=f"Mark '{b.title}' {'not read' if b.read else 'read'}"),
        Span(b.title, cls="title"), Small(b.author, cls="by"),
        Button("×", hx_delete=f"/books/{b.id}", cls="delete outline secondary", aria_label=f"Remove '{b.title}'"))


@rt("/")
def get(session):
    form = Form(id="book-form", cls="app-form", hx_post="/books", hx_target="#book-list", hx_swap="beforeend")(
        Input(id="book-title", name="title", placeholder="A book to read", required=True, maxlength=MAX_CHARS, autocomplete="off"),
        Input(id="book-author", name="author", placeholder="by…", maxlength=MAX_CHARS, autocomplete="off"),
        Button("Add"))
    return Titled("Reading list", form, Div(id="app-notice", cls="notice", role="alert"),
                  Ul(*map(BookItem, listed(session["sid"])), id="book-list", cls="items"))


def changed(change, status: int):
    "A route's change, told in words, and what htmx swaps in; Refused: why, answered with `status`."
    try:
        what, book = change()
    except Refused as e:
        return Response(str(e) if status == 400 else "No such book", status_code=status)
    Loop.tell(f"{what} {describe(book)}" + (f" {'read' if book.read else 'not read'}" if what == "marked" else ""))
    return "" if what == "removed" else BookItem(book)


@app.post("/books")
def add(session, title: str = "", author: str = ""):
    return changed(lambda: ("added", add_book(title, author, session=session)), 400)


@app.post("/books/{bid}/read")
def toggle(session, bid: int):
    return changed(lambda: ("marked", mark_read(bid, not find(session, bid).read, session=session)), 404)


@app.delete("/books/{bid}")
def remove(session, bid: int):
    return changed(lambda: ("removed", remove_book(bid, session=session)), 404)
