"""A session's conversation as the model sees it (brain/conversation.py): the append-only prompt,
the todo list the model can always work out, the context window."""
from brain.conversation import Conversation
from shared.messages import Todo, TodoEvent
from tests.replay import known_list


def event(action, todo, todos):
    return TodoEvent(session="s", request="r", action=action, todo=todo, todos=todos)


def test_conversation_folds_events_into_one_app_turn_naming_each_todo():
    c = Conversation()
    milk, eggs = Todo(1, "milk", False), Todo(2, "eggs", False)
    c.record(event("added", milk, [milk]))
    c.record(event("added", eggs, [milk, eggs]))
    assert c.begin_turn(None)
    assert not c.begin_turn(None), "nothing new: no comment"
    done = Todo(1, "milk", True)
    c.record(event("toggled", done, [done, eggs]))
    assert c.begin_turn("what's left?")
    system, *turns = c.messages("PERSONA")
    assert system == {"role": "system", "content": "PERSONA"}
    assert turns == [
        {"role": "user", "content": "App note: The user added #1 'milk'; then added #2 'eggs'."},
        {"role": "user", "content": "App note: The user marked #1 'milk' done."},
        {"role": "user", "content": "what's left?"},
    ]
    assert known_list(c.messages("PERSONA")) == [done, eggs]


def test_two_requests_share_everything_but_the_newest_turn_even_with_a_todo_change_between():
    c = Conversation()
    c.begin_turn("hello")
    first = c.messages("PERSONA")
    c.add_reply("hi")
    milk = Todo(1, "milk", False)
    c.record(event("added", milk, [milk]))
    c.begin_turn("and now?")
    second = c.messages("PERSONA")
    assert second[:len(first)] == first, "the earlier request is a prefix of the next one"
    assert second[len(first):] == [{"role": "assistant", "content": "hi"},
                                   {"role": "user", "content": "App note: The user added #1 'milk'."},
                                   {"role": "user", "content": "and now?"}]
    c.add_reply("ok")
    c.begin_turn("a plain turn")
    assert c.messages("PERSONA")[:len(second)] == second


def test_the_whole_list_is_stated_when_the_changes_alone_would_not_lead_to_it():
    kept = [Todo(3, "call mum", False), Todo(4, "pay rent", True)]
    c = Conversation(todos=kept)  # a new chat: the list stays, the model has never seen it
    c.begin_turn("hi")
    assert c.messages("P")[1]["content"] == "App note: The todo list now:\n- [ ] #3 call mum\n- [x] #4 pay rent"
    lamp = Todo(5, "buy a lamp", False)
    fresh = Conversation(todos=kept)
    fresh.record(event("added", lamp, [*kept, lamp]))
    fresh.begin_turn(None)
    assert fresh.messages("P")[1]["content"] == ("App note: The user added #5 'buy a lamp'.\nThe todo list now:\n"
                                                 "- [ ] #3 call mum\n- [x] #4 pay rent\n- [ ] #5 buy a lamp")
    empty = Conversation()
    empty.begin_turn("hi")
    assert empty.messages("P")[1:] == [{"role": "user", "content": "hi"}]


def test_200_todos_and_500_clicks_later_the_window_still_tells_the_current_list():
    c, todos, set_aside = Conversation(), [], 0
    for i in range(200):
        todos = [*todos, Todo(i + 1, f"thing {i}", False)]
        c.record(event("added", todos[-1], todos))
    for click in range(500):
        i = click * 7 % len(todos)
        flipped = Todo(todos[i].id, todos[i].title, not todos[i].done)
        todos = [*todos[:i], flipped, *todos[i + 1:]]
        c.record(event("toggled", flipped, todos))
        if click % 10 == 9:
            c.begin_turn(None if click % 20 else f"question {click}")
            set_aside += c.fit("PERSONA", 6000)
            c.add_reply("noted")
            assert known_list(c.messages("PERSONA")) == todos
            assert c.estimate(c.messages("PERSONA")) <= 6000
    assert set_aside > 0, "the test reached the point where turns are set aside"


def test_conversation_sets_old_turns_aside_to_fit_the_window_and_restates_the_list():
    water = Todo(1, "water plants", False)
    c = Conversation()
    c.record(event("added", water, [water]))
    for i in range(60):
        c.begin_turn(f"question {i} " + "x" * 90)
        c.add_reply(f"answer {i} " + "y" * 90)
    c.begin_turn("the newest question")
    budget = 600
    set_aside = c.fit("PERSONA", budget)
    messages = c.messages("PERSONA")
    assert set_aside > 0 and c.estimate(messages) <= 0.6 * budget
    assert messages[0] == {"role": "system", "content": "PERSONA"} and messages[1]["role"] == "user"
    assert messages[-2:] == [{"role": "user", "content": "the newest question"},
                             {"role": "user", "content": "App note: Earlier messages were set aside. "
                                                         "The todo list now:\n- [ ] #1 water plants"}]
    assert c.fit("PERSONA", budget) == 0, "nothing more to set aside until the window fills again"
    c.add_reply("fine")
    c.begin_turn("next")
    assert c.messages("PERSONA")[:len(messages)] == messages, "between set-asides the prefix holds"


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


def test_app_events_the_model_has_not_seen_are_bounded_and_the_list_is_stated_when_some_are_left_out():
    from brain.conversation import UNSEEN_KEPT
    c = Conversation()
    milk = Todo(1, "milk", False)
    c.record(event("added", milk, [milk]))
    for i in range(5000):
        c.notice(f"used #lamp ({i})")
    assert len(c.unseen) <= UNSEEN_KEPT
    c.begin_turn("hi")
    note = c.messages("PERSONA")[1]["content"]
    assert "used #lamp (4999)" in note and "used #lamp (0)" not in note and "earlier" in note
    assert known_list(c.messages("PERSONA")) == [milk], "the add was left out, so the list is stated whole"
