"The jobs on a session's queue (brain/jobs.py): who asked for a turn, and how one is stopped or cut off."
import asyncio

from brain.jobs import Turn, Warm


def test_only_what_the_user_said_may_change_the_app():
    assert Turn("s", "r1", "add milk").asked_by_user
    assert Turn("s", "r2", None, regenerate=True).asked_by_user, "a regenerate answers the user's message again"
    assert Turn("s", "r3", None, resume="Sure, ", question="add milk").asked_by_user
    assert not Turn("s", "c1", None).asked_by_user, "a comment on app events"
    assert not Turn("s", "c2", None, resume="Ha, ").asked_by_user, "a resumed comment"


def test_a_stop_hangs_up_and_wakes_a_turn_waiting_for_ollama_and_a_cut_off_also_silences_it():
    async def scenario():
        stopped, cut = Turn("s", "r1", "hi"), Turn("s", "r2", "hi")
        stopped.cancel()
        cut.cut_off()
        assert stopped.cancelled and stopped.woken.is_set() and not stopped.silent
        assert cut.cancelled and cut.woken.is_set() and cut.silent
        warm = Warm(session="s")
        warm.cut_off()
        assert warm.hangup.fired
    asyncio.run(scenario())
