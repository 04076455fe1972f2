"""Process-level: every htmx interaction reaches the model once, in the words of whoever handles it.
The app's own routes tell what they changed (and the model comments), a chat message is a chat
turn, and any other request or WebSocket control is told as used with the next turn (web/interactions.py)."""
import json
import time


def test_an_htmx_request_the_app_does_not_own_reaches_the_models_next_turn(system, visitor, fake):
    tab = visitor.open_tab()
    answer = visitor.http.get(system.url + "/export/json", timeout=5,
                              headers={"HX-Request": "true", "HX-Trigger": "export-json"})
    assert answer.status_code == 200
    tab.send_raw(json.dumps({"lamp": "on", "api_token": "hunter2",
                             "HEADERS": {"HX-Request": "true", "HX-Trigger": "lamp-switch"}}))
    time.sleep(0.3)  # the events cross the bus while the user reads
    tab.send("what did I just do?")
    tab.wait(lambda t: t.finished(1))
    assert len(tab.replies()) == 1, "no comment on a mere use of the page"
    assert fake.chat_requests()[-1]["messages"][-2:] == [
        {"role": "user", "content": "App note: The user used #export-json (GET /export/json → 200); "
                                    "then used #lamp-switch (WS /ws lamp='on')."},
        {"role": "user", "content": "what did I just do?"}], "in order, the secret left out"


def test_the_apps_own_route_and_a_chat_message_are_each_told_once_in_their_own_words(system, visitor, fake):
    tab = visitor.open_tab()
    added = visitor.http.post(system.url + "/todos", data={"title": "milk"}, timeout=5,
                              headers={"HX-Request": "true", "HX-Trigger": "todo-form"})
    assert added.status_code == 200
    tab.wait(lambda t: t.finished(1), what="the comment on the change")
    for n, text in enumerate(["hello", "and again"], start=2):
        tab.send(text)  # as the chat form sends it: HX-Trigger chat-form
        tab.wait(lambda t, n=n: t.finished(n))
    said = [m["content"] for m in fake.chat_requests()[-1]["messages"] if m["role"] == "user"]
    assert said == ["App note: The user added #1 'milk'.\nThe todo list now:\n- [ ] #1 milk", "hello", "and again"], \
        "no 'used #todo-form' nor 'used #chat-form' besides"


def test_a_users_own_change_shows_in_the_sessions_other_tabs_and_is_not_sent_back_to_its_own(system, visitor, fake):
    "The tab that made a change has it from its own response; every other tab of the session is sent it."
    mine, other = visitor.open_tab(), visitor.open_tab()
    milk = visitor.add_todo("milk", from_tab=mine)
    other.wait(lambda t: t.todos.get(milk) == ("milk", False), what="milk added in the other tab")
    visitor.htmx("POST", f"/todos/{milk}/toggle", from_tab=other)
    eggs = visitor.add_todo("eggs")  # from no tab (a script): every tab is sent it
    mine.wait(lambda t: t.todos == {milk: ("milk", True), eggs: ("eggs", False)},
              what="the other tab's tick and the script's eggs, and milk only as ticked")
    mine.wait(lambda t: t.refreshes == 2, what="fetched again for the other tab's tick and the script's eggs")
    other.wait(lambda t: t.refreshes == 2 and t.todos == mine.todos, what="the other tab: for milk and the eggs")

    def told(f):
        said = "\n".join(m["content"] for r in f.chat_requests() for m in r["messages"] if m["role"] == "user")
        return all(s in said for s in ("added #1 'milk'", "marked #1 'milk' done", "added #2 'eggs'"))
    fake.wait(told)  # the model is told of every change, whichever tab made it
    for tab in (mine, other):
        while tab.pump(0.5):  # whatever else is on its way to the tab
            pass
        assert tab.refreshes == 2, "a tab's own change is not sent back to it"
