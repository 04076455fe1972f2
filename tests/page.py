"""A browser session without the browser: a cookie jar, same-origin requests, and WebSocket tabs
that apply the server's fragments the way htmx-ext-ws does, so tests can read what a user sees."""
import base64
import json
import queue
import re
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field

import requests
from bs4 import BeautifulSoup
from websockets.sync.client import connect

ITEM_ID = re.compile(r"[a-z]+-\d+")  # an app's item: #todo-3, #book-2


@dataclass
class Bubble:
    role: str
    status: str
    text: str
    note: str = ""
    thinking: str = ""
    cards: list[tuple[str, str]] = field(default_factory=list)  # (the action's text, its button or state)


def _bubble(article) -> tuple[str, Bubble]:
    classes = article.get("class", [])
    body = article.find(class_="body")
    note = article.find(class_="note")
    thinking = article.find(class_="thinking-body")
    role = next(c for c in classes if c in ("user", "reply", "note"))
    status = next((c for c in classes if c not in ("msg", role)), "")
    cards = [(c.span.get_text(), (c.button or c.small).get_text()) for c in article.find_all(class_="card")]
    return article["id"], Bubble(role, status, body.get_text() if body else "", note.get_text() if note else "",
                                 thinking.get_text() if thinking else "", cards)


@dataclass
class Tab:
    "One WebSocket tab. `bubbles` mirrors #msg-list; `appends` logs each streamed text append."
    ws: object
    id: str = ""  # the tab id the page was given: its WebSocket and its htmx requests carry it
    bubbles: dict[str, Bubble] = field(default_factory=dict)
    appends: list[tuple[str, str]] = field(default_factory=list)
    status: str = ""  # the status line's classes, e.g. "brain ready"
    status_text: str = ""
    picker: list[str] = field(default_factory=list)  # the model picker's options as shown
    model: str = ""  # the model selected in the picker
    notice: str = ""
    items: dict[str, tuple[str, bool]] = field(default_factory=dict)  # app items pushed to this tab: "todo-1" -> (title, done)
    refreshes: int = 0  # signals to fetch the app's part of the page again (web/loop.py)
    refetch: object = None  # tab id -> the app's part of the page, fetched again (Visitor's); its items replace `items`
    frames: list[str] = field(default_factory=list)

    def __post_init__(self):
        self.inbox: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        try:
            for frame in self.ws:
                self.inbox.put(frame)
        except Exception as e:  # noqa: BLE001 - the test sees it as a closed tab
            self.inbox.put(e)
        self.inbox.put(None)

    def send(self, text: str) -> None:
        self.ws.send(json.dumps({"msg": text, "HEADERS": {"HX-Request": "true", "HX-Trigger": "chat-form"}}))

    def click(self, action: str, bubble_id: str) -> None:
        "Press a bubble's Stop or Retry button: htmx-ext-ws sends its hx-vals."
        self.ws.send(json.dumps({action: bubble_id.removeprefix("reply-"), "HEADERS": {"HX-Request": "true"}}))

    def closed_code(self, timeout: float = 10.0) -> int:
        "Wait for the server to close this tab; the close code tells htmx whether to reconnect."
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.pump(0.2)
            except ConnectionError:
                return self.ws.close_code
        raise AssertionError("the tab was not closed")

    def send_raw(self, data) -> None:
        self.ws.send(data)

    def pump(self, timeout: float) -> bool:
        "Apply the next frame; False if none came in time. Raises if the socket closed."
        try:
            frame = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return False
        if frame is None or isinstance(frame, Exception):
            self.inbox.put(frame)
            raise ConnectionError(f"tab closed: {frame!r}")
        self.frames.append(frame)
        self._apply(frame)
        return True

    def wait(self, predicate, timeout: float = 10.0, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while not (result := predicate(self)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"tab: {what} not met in {timeout}s; bubbles {self.bubbles}")
            self.pump(min(left, 0.2))
        return result

    def reply_ids(self, status: str | None = None) -> list[str]:
        return [k for k, b in self.bubbles.items() if b.role == "reply" and (status is None or b.status == status)]

    def replies(self, status: str | None = None) -> list[Bubble]:
        return [b for b in self.bubbles.values() if b.role == "reply" and (status is None or b.status == status)]

    def finished(self, n: int):
        "Wait predicate: at least n replies are final (done, failed or interrupted)."
        final = [b for b in self.replies() if b.status in ("done", "failed", "interrupted")]
        return final if len(final) >= n else None

    def _apply(self, frame: str) -> None:
        for el in BeautifulSoup(frame, "html.parser").find_all(recursive=False):
            oob, eid = el.get("hx-swap-oob", "true"), el.get("id")
            if eid == "msg-list" and oob == "beforeend":
                for article in el.find_all("article", recursive=False):
                    bid, bubble = _bubble(article)
                    self.bubbles[bid] = bubble
            elif eid == "msg-list":
                self.bubbles = dict(_bubble(a) for a in el.find_all("article", recursive=False))
            elif el.name == "ul" and eid and eid.endswith("-list"):  # an app's list (#todo-list, #book-list)
                for li in el.find_all("li", recursive=False):
                    self._item(li)
            elif el.name == "li" and eid and ITEM_ID.fullmatch(eid) and oob == "delete":
                self.items.pop(eid, None)
            elif el.name == "li" and eid and ITEM_ID.fullmatch(eid):
                self._item(el)
            elif oob == "beforeend" and eid and eid.endswith("-body"):
                bid = eid[: -len("-body")]
                self.appends.append((bid, el.get_text()))
                self.bubbles[bid].text += el.get_text()
            elif oob == "beforeend" and eid and eid.endswith("-thinking"):
                self.bubbles[eid[: -len("-thinking")]].thinking += el.get_text()
            elif el.name == "article":
                bid, bubble = _bubble(el)
                self.bubbles[bid] = bubble
            elif eid == "brain-status":
                self.status, self.status_text = " ".join(el.get("class", [])), el.get_text()
            elif eid == "model-picker":
                options = el.find_all("option")
                self.picker = [o.get_text() for o in options]
                self.model = next((o.get("value") for o in options if o.has_attr("selected")), "")
            elif eid == "notice":
                self.notice = el.get_text()
            elif eid == "loop-refresh":
                self.refreshes += 1
                if self.refetch:  # as app.js does: the app's part of the page, fetched again
                    part = BeautifulSoup(self.refetch(self.id), "html.parser")
                    self.items = {}
                    for li in part.find_all("li", id=ITEM_ID):
                        self._item(li)

    def _item(self, li) -> None:
        self.items[li["id"]] = (li.find(class_="title").get_text(), "done" in li.get("class", []))

    def listed(self, kind: str) -> dict[int, tuple[str, bool]]:
        "The app's items of one kind (the prefix of their ids: todo, book) as this tab shows them: id -> (title, done)."
        return {int(eid.rsplit("-", 1)[1]): item for eid, item in self.items.items() if eid.startswith(f"{kind}-")}

    @property
    def todos(self) -> dict[int, tuple[str, bool]]:
        return self.listed("todo")

    def undo(self, call: str) -> None:
        self.ws.send(json.dumps({"undo": call, "HEADERS": {"HX-Request": "true"}}))

    def close(self):
        self.ws.close()


def notices(sent: list[str]) -> list[str]:
    "What a tab sent these frames was told, each as its page shows it."
    told = []
    for html in sent:
        tab = Tab(ws=[])
        tab._apply(html)
        told.append(tab.notice)
    return told


class Visitor:
    "One browser: a session cookie shared by its tabs."

    def __init__(self, base_url: str):
        self.base = base_url
        self.http = requests.Session()
        self.http.headers.update({"Origin": base_url})
        self.page = self.http.get(base_url + "/", timeout=5)
        self.page.raise_for_status()
        self.tabs: list[Tab] = []
        self.sockets = ExitStack()

    def sid(self) -> str:
        "The session id inside the signed session cookie (base64 JSON, then the signature)."
        data = self.http.cookies["session_"].split(".")[0]
        return json.loads(base64.b64decode(data + "=" * (-len(data) % 4)))["sid"]

    def cookie(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())

    def open_tab(self, origin: str | None = None) -> Tab:
        tab_id = uuid.uuid4().hex
        ws = self.sockets.enter_context(connect(
            self.base.replace("http", "ws", 1) + f"/ws?tab={tab_id}", open_timeout=5,
            additional_headers={"Cookie": self.cookie(), "Origin": origin or self.base}))
        tab = Tab(ws, tab_id, refetch=self.app_part)
        tab.wait(lambda t: t.status, what="initial state")
        self.tabs.append(tab)
        return tab

    def htmx(self, method: str, path: str, from_tab: Tab | None = None, **data) -> requests.Response:
        "An htmx request, as the page `from_tab` makes it (none: as a script would, from no tab)."
        headers = {"HX-Request": "true"} | ({"X-Tab": from_tab.id} if from_tab else {})
        return self.http.request(method, self.base + path, data=data, headers=headers, timeout=5)

    def app_part(self, tab: str) -> str:
        "The app's part of the page (#loop-app), fetched again as a tab's script fetches it when told to."
        headers = {"HX-Request": "true", "X-Loop-Refresh": "1", "X-Tab": tab}
        return self.http.get(self.base + "/", headers=headers, timeout=5).text

    def add_todo(self, title: str, from_tab: Tab | None = None) -> int:
        r = self.htmx("POST", "/todos", from_tab, title=title)
        r.raise_for_status()
        return int(BeautifulSoup(r.text, "html.parser").li["id"].removeprefix("todo-"))

    def add_book(self, title: str, author: str = "") -> int:
        "The reading app's form (APP=reading), as htmx posts it: the new book's id."
        r = self.htmx("POST", "/books", title=title, author=author)
        r.raise_for_status()
        return int(BeautifulSoup(r.text, "html.parser").li["id"].removeprefix("book-"))

    def listed(self, kind: str) -> dict[int, tuple[str, bool]]:
        "The app's items of one kind (todo, book) on a fresh load of the page: id -> (title, done)."
        page = BeautifulSoup(self.http.get(self.base + "/", timeout=5).text, "html.parser")
        return {int(li["id"].rsplit("-", 1)[1]): (li.find(class_="title").get_text(), "done" in li.get("class", []))
                for li in page.select(f"#{kind}-list > li")}

    def close(self):
        self.sockets.close()
