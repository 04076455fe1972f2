"""Every htmx interaction reaches the bus and, by the brain's declared policy, the model."""
import time


def test_an_htmx_request_the_policy_does_not_know_reaches_the_models_next_turn(system, visitor, fake):
    tab = visitor.open_tab()
    answer = visitor.http.get(system.url + "/export/json", timeout=5,
                              headers={"HX-Request": "true", "HX-Trigger": "export-json"})
    assert answer.status_code == 200
    time.sleep(0.3)  # the event crosses the bus while the user reads
    tab.send("what did I just do?")
    tab.wait(lambda t: t.finished(1))
    assert fake.chat_requests()[-1]["messages"][-2:] == [
        {"role": "user", "content": "App note: The user used #export-json (GET /export/json → 200)."},
        {"role": "user", "content": "what did I just do?"}]
