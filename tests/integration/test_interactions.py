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
