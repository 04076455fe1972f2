"""A session's conversation as the model sees it (brain/conversation.py): the append-only prompt,
the app's state the model can always work out, the context window. The app is a fake one
(tests/fake_app.py): the conversation only ever sees its lines, its state text and its prompt."""
from apps.todo.store import Todo
from brain.conversation import Conversation
from shared.messages import Prompt, digest
from tests.fake_app import PROMPT, SYSTEM, said, stated
from tests.replay import known_list


def change(c: Conversation, action: str, todo: Todo, todos: list[Todo]) -> None:
    "The user changed the list: the app's line for it and the list after it."
    c.record([said(action, todo)], stated(todos))


def test_conversation_folds_events_into_one_app_turn_in_the_apps_words():
    c = Conversation(prompt=PROMPT)
    milk, eggs = Todo(1, "milk", False), Todo(2, "eggs", False)
    change(c, "added", milk, [milk])
    change(c, "added", eggs, [milk, eggs])
    assert c.begin_turn(None)
    assert not c.begin_turn(None), "nothing new: no comment"
    done = Todo(1, "milk", True)
    change(c, "toggled", done, [done, eggs])
    assert c.begin_turn("what's left?")
    system, *turns = c.messages()
    assert system == {"role": "system", "content": SYSTEM}
    assert turns == [
        {"role": "user", "content": "App note: The user added #1 'milk'; then added #2 'eggs'.\n"
                                    "The todo list now:\n- [ ] #1 milk\n- [ ] #2 eggs"},
        {"role": "user", "content": "App note: The user marked #1 'milk' done."},
        {"role": "user", "content": "what's left?"},
    ], "the first note states the list whole (the model never saw it); later ones only say what changed"
    assert known_list(c.messages()) == [done, eggs]


def test_two_requests_share_everything_but_the_newest_turn_even_with_an_app_change_between():
    c = Conversation(prompt=PROMPT)
    c.begin_turn("hello")
    first = c.messages()
    c.add_reply("hi")
    milk, eggs = Todo(1, "milk", False), Todo(2, "eggs", False)
    change(c, "added", milk, [milk])
    c.begin_turn("and now?")
    second = c.messages()
    assert second[:len(first)] == first, "the earlier request is a prefix of the next one"
    assert second[len(first):] == [{"role": "assistant", "content": "hi"},
                                   {"role": "user", "content": "App note: The user added #1 'milk'.\n"
                                                               "The todo list now:\n- [ ] #1 milk"},
                                   {"role": "user", "content": "and now?"}]
    c.add_reply("ok")
    change(c, "added", eggs, [milk, eggs])
    c.begin_turn("a plain turn")
    third = c.messages()
    assert third[:len(second)] == second
    assert third[len(second) + 1:] == [{"role": "user", "content": "App note: The user added #2 'eggs'."},
                                       {"role": "user", "content": "a plain turn"}]


def test_the_system_message_is_the_apps_prompt_as_it_last_came():
    c = Conversation()
    c.begin_turn("hi")
    assert c.messages()[0] == {"role": "system", "content": ""}, "no app has spoken yet"
    c.prompt = Prompt("A persona of the app's own", [])
    assert c.messages() == [{"role": "system", "content": "A persona of the app's own"},
                            {"role": "user", "content": "hi"}]


def test_the_whole_state_is_stated_when_the_lines_alone_would_not_lead_to_it():
    kept = [Todo(3, "call mum", False), Todo(4, "pay rent", True)]
    c = Conversation(state=stated(kept))  # a new chat: the state stays, the model has never seen it
    c.begin_turn("hi")
    assert c.messages()[1]["content"] == "App note: The todo list now:\n- [ ] #3 call mum\n- [x] #4 pay rent"
    lamp = Todo(5, "buy a lamp", False)
    fresh = Conversation(state=stated(kept))
    change(fresh, "added", lamp, [*kept, lamp])
    fresh.begin_turn(None)
    assert fresh.messages()[1]["content"] == ("App note: The user added #5 'buy a lamp'.\nThe todo list now:\n"
                                              "- [ ] #3 call mum\n- [x] #4 pay rent\n- [ ] #5 buy a lamp")
    empty = Conversation()
    empty.begin_turn("hi")
    assert empty.messages()[1:] == [{"role": "user", "content": "hi"}], "no app state, nothing to state"


def test_an_event_that_comes_from_another_state_than_ours_has_the_next_note_state_the_whole_state():
    "`since` is the digest of the state the web last sent: when it is not ours, an event was lost on the way."
    milk, eggs = Todo(1, "milk", False), Todo(2, "eggs", False)
    ticked = Todo(1, "milk", True)

    def knowing_milk() -> Conversation:
        c = Conversation()
        change(c, "added", milk, [milk])
        c.begin_turn(None)
        c.add_reply("noted")
        return c

    c = knowing_milk()
    c.record([said("added", eggs)], stated([milk, eggs]), since=digest(stated([milk])))
    c.begin_turn(None)
    assert c.turns[-1]["content"] == "App note: The user added #2 'eggs'.", "from our state: the line alone will do"
    lost = knowing_milk()  # the add of #2 never reached the brain
    lost.record([said("toggled", ticked)], stated([ticked, eggs]), since=digest(stated([milk, eggs])))
    lost.begin_turn(None)
    assert lost.turns[-1]["content"] == ("App note: The user marked #1 'milk' done.\n"
                                         "The todo list now:\n- [x] #1 milk\n- [ ] #2 eggs")
    assert known_list(lost.messages()) == [ticked, eggs]
    unknown = knowing_milk()  # a web that does not know what it last sent (it restarted) says ""
    unknown.record([said("toggled", ticked)], stated([ticked]), since="")
    unknown.begin_turn(None)
    assert unknown.turns[-1]["content"].endswith("\nThe todo list now:\n- [x] #1 milk")
    plain = knowing_milk()
    plain.record(["used #export-md (GET /export/md → 200)"], since=digest(stated([eggs])))
    plain.begin_turn(None)
    assert known_list(plain.messages()) == [milk] and "The todo list now:" in plain.turns[-1]["content"], \
        "an interaction that changes nothing states the state too when it comes from another one"


def test_an_interaction_that_changes_nothing_is_told_without_the_state():
    milk = Todo(1, "milk", False)
    c = Conversation()
    change(c, "added", milk, [milk])
    c.begin_turn(None)
    c.record(["used #export-md (GET /export/md → 200)"])
    assert c.upcoming()[-1] == {"role": "user", "content": "App note: The user used #export-md (GET /export/md → 200)."}
    first = Conversation()
    first.record(["used #export-md (GET /export/md → 200)"])
    first.begin_turn("hi")
    assert [t["content"] for t in first.turns] == ["App note: The user used #export-md (GET /export/md → 200).", "hi"]


def test_upcoming_shows_the_next_request_without_committing_it():
    c = Conversation(prompt=PROMPT)
    assert c.upcoming() is None, "nothing pending"
    milk = Todo(1, "milk", False)
    change(c, "added", milk, [milk])
    ahead = c.upcoming()
    assert ahead[:-1] == c.messages() and ahead[-1]["content"].startswith("App note: The user added #1 'milk'.")
    assert c.turns == [] and c.unseen == ["added #1 'milk'"], "nothing committed"
    c.begin_turn("so?")
    assert c.messages()[:len(ahead)] == ahead, "the next request starts with what was warmed"


def test_a_tool_round_tells_the_model_the_state_so_the_next_note_does_not_restate_it():
    milk, eggs = Todo(1, "milk", False), Todo(2, "eggs", False)
    c = Conversation(state=stated([milk]))
    c.begin_turn("add eggs")
    calls = [{"id": "call_1", "function": {"index": 0, "name": "add_todo", "arguments": {"title": "eggs"}}}]
    c.add_tool_round("", calls, [("add_todo", "Added #2 'eggs'. The todo list is now: #1 milk; #2 eggs.")],
                     stated([milk, eggs]))
    assert c.turns[-2:] == [{"role": "assistant", "content": "", "tool_calls": calls},
                            {"role": "tool", "tool_name": "add_todo",
                             "content": "Added #2 'eggs'. The todo list is now: #1 milk; #2 eggs."}]
    assert (c.state, c.told) == (stated([milk, eggs]), stated([milk, eggs]))
    c.add_reply("Eggs, then.")
    assert not c.begin_turn(None), "the model knows the list already: nothing to tell"
    c.add_tool_round("", calls, [("add_todo", "Error: no such thing.")], "")
    assert c.state == stated([milk, eggs]), "a round that changed nothing leaves the state as it was"


def test_200_todos_and_500_clicks_later_the_window_still_tells_the_current_list():
    c, todos, set_aside = Conversation(prompt=PROMPT), [], 0
    for i in range(200):
        todos = [*todos, Todo(i + 1, f"thing {i}", False)]
        change(c, "added", todos[-1], todos)
    for click in range(500):
        i = click * 7 % len(todos)
        flipped = Todo(todos[i].id, todos[i].title, not todos[i].done)
        todos = [*todos[:i], flipped, *todos[i + 1:]]
        change(c, "toggled", flipped, todos)
        if click % 10 == 9:
            c.begin_turn(None if click % 20 else f"question {click}")
            set_aside += c.fit(6000)
            c.add_reply("noted")
            assert known_list(c.messages()) == todos
            assert c.estimate(c.messages()) <= 6000
    assert set_aside > 0, "the test reached the point where turns are set aside"


def test_conversation_sets_old_turns_aside_to_fit_the_window_and_restates_the_state():
    water = Todo(1, "water plants", False)
    c = Conversation(prompt=PROMPT)
    change(c, "added", water, [water])
    for i in range(60):
        c.begin_turn(f"question {i} " + "x" * 90)
        c.add_reply(f"answer {i} " + "y" * 90)
    c.begin_turn("the newest question")
    budget = 600
    set_aside = c.fit(budget)
    messages = c.messages()
    assert set_aside > 0 and c.estimate(messages) <= 0.6 * budget
    assert messages[0] == {"role": "system", "content": SYSTEM} and messages[1]["role"] == "user"
    assert messages[-2:] == [{"role": "user", "content": "the newest question"},
                             {"role": "user", "content": "App note: Earlier messages were set aside. "
                                                         "The todo list now:\n- [ ] #1 water plants"}]
    assert c.fit(budget) == 0, "nothing more to set aside until the window fills again"
    c.add_reply("fine")
    c.begin_turn("next")
    assert c.messages()[:len(messages)] == messages, "between set-asides the prefix holds"


def test_the_tools_take_their_share_of_the_window():
    c = Conversation(prompt=PROMPT)
    for i in range(20):
        c.begin_turn(f"question {i} " + "x" * 90)
        c.add_reply(f"answer {i} " + "y" * 90)
    budget = c.estimate(c.messages()) + 10
    assert c.fit(budget) == 0, "it fits without tools"
    assert c.fit(budget, PROMPT.tools) > 0, "the tool definitions are in every request: turns make room for them"
    assert c.estimate(c.messages(), PROMPT.tools) <= budget


def test_the_token_estimate_only_ever_rises_to_what_ollama_counted():
    c = Conversation()
    messages = [{"role": "user", "content": "z" * 1000}]
    c.learn(messages, prompt_eval_count=504)  # 0.5 tokens a character
    assert c.tokens_per_char == 0.5
    c.learn(messages, prompt_eval_count=104)  # a cached prefix: Ollama counted only the new part
    assert c.tokens_per_char == 0.5


def test_a_retry_of_a_question_whose_reply_was_saved_but_never_seen_to_end_answers_it_anew():
    c = Conversation()
    c.begin_turn("what now?")
    c.add_reply("the reply the web never saw end")
    assert c.begin_turn("what now?", retry=True)
    assert [t["content"] for t in c.turns] == ["what now?"], "asked once, the unseen reply replaced"
    c.add_reply("again")
    c.begin_turn("what now?")  # not a retry: the user really asks again
    assert [t["content"] for t in c.turns] == ["what now?", "again", "what now?"]


def test_app_events_the_model_has_not_seen_are_bounded_and_the_state_is_stated_when_some_are_left_out():
    from brain.conversation import UNSEEN_KEPT
    milk, eggs = Todo(1, "milk", False), Todo(2, "eggs", False)
    c = Conversation()
    change(c, "added", milk, [milk])
    c.begin_turn(None)
    c.add_reply("noted")
    change(c, "added", eggs, [milk, eggs])  # alone, its line would tell the model the list
    for i in range(5000):
        c.record([f"used #lamp ({i})"])
    assert len(c.unseen) <= UNSEEN_KEPT
    c.begin_turn("hi")
    note = c.messages()[-2]["content"]
    assert "used #lamp (4999)" in note and "used #lamp (0)" not in note and "earlier" in note
    assert "added #2" not in note, "the add was left out"
    assert known_list(c.messages()) == [milk, eggs], "so the list is stated whole"


CALL = {"id": "call_a", "function": {"index": 0, "name": "add_todo", "arguments": {"title": "milk"}}}


def test_a_late_result_is_told_with_the_next_turn_unless_its_round_is_in_the_conversation_already():
    told = Conversation(state="empty", told="empty")
    told.late_result("call_a", "Added #1 'milk'. The list is now: #1 milk.", "- [ ] #1 milk")
    assert told.unseen == ["saw your action from a reply that was cut off: Added #1 'milk'. The list is now: #1 milk"]
    put_back = Conversation(state="empty", told="empty")
    put_back.begin_turn("add milk")
    put_back.add_carried_round("On it. ", [CALL], [("add_todo", "Added #1 'milk'.")])
    assert put_back.holds_call("call_a") and not put_back.holds_call("call_b")
    put_back.late_result("call_a", "Added #1 'milk'. The list is now: #1 milk.", "- [ ] #1 milk")
    assert put_back.unseen == [], "the round told it: not told twice"
    assert put_back.state == put_back.told == "- [ ] #1 milk", "the state after it is news all the same"
    assert put_back.begin_turn("thanks") and put_back.turns[-1] == {"role": "user", "content": "thanks"}


def test_a_late_result_the_app_refused_tells_the_model_nothing_but_its_state():
    conversation = Conversation()
    conversation.late_result("call_a", "Error: the user's message does not name #3.", "- [ ] #1 milk", ok=False)
    assert conversation.unseen == [] and conversation.state == "- [ ] #1 milk"


def test_a_round_put_back_after_its_late_result_was_told_takes_the_late_note_back():
    conversation = Conversation(state="empty", told="empty")
    conversation.begin_turn("add milk")
    conversation.late_result("call_b", "Ticked #2 'tea'. The list is now: …", "")
    conversation.late_result("call_a", "Added #1 'milk'. The list is now: #1 milk.", "- [ ] #1 milk")
    conversation.add_carried_round("On it. ", [CALL], [("add_todo", "Added #1 'milk'.")])
    assert conversation.turns[1:] == [{"role": "assistant", "content": "On it. ", "tool_calls": [CALL]},
                                      {"role": "tool", "tool_name": "add_todo", "content": "Added #1 'milk'."}]
    assert conversation.unseen == ["saw your action from a reply that was cut off: Ticked #2 'tea'. The list is now: …"]


def test_a_reply_cut_off_before_a_word_and_followed_by_later_turns_is_not_taken_for_their_answer():
    "Its brain died before it said anything; the next question was answered meanwhile (the review's case)."
    c = Conversation()
    c.begin_turn("add milk", reply="r6")
    c.begin_turn("what is on my list?", reply="r7")
    c.add_reply("Your list has eggs.")
    assert c.resume_point("add milk", "", "r6") is None, "not answered: it cannot be carried on in place"
    assert c.resume_point("what is on my list?", "", "r7") == (True, "Your list has eggs.")
    c.record(["added #1 'milk'"], "- [ ] #1 milk")
    c.begin_turn(None)  # a comment on an app event: its note comes as a user turn after r7's answer
    c.add_reply("Milk, how bold.")
    assert c.resume_point("what is on my list?", "", "r7") == (True, "Your list has eggs."), "its own answer, not the comment"

