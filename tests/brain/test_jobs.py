"The jobs on a session's queue (brain/jobs.py): who asked for a turn, how one is stopped or cut off, and a trust's life."
import asyncio

from brain.jobs import Trust, Turn, Warm


def test_only_what_the_user_said_may_change_the_app():
    assert Turn("s", "r1", "add milk").asked_by_user
    assert Turn("s", "r2", None, regenerate=True).asked_by_user, "a regenerate answers the user's message again"
    assert Turn("s", "r3", None, resume="Sure, ", question="add milk").asked_by_user
    assert not Turn("s", "c1", None).asked_by_user, "a comment on app events"
    assert not Turn("s", "c2", None, resume="Ha, ").asked_by_user, "a resumed comment"


def test_a_stop_hangs_up_and_wakes_a_turn_waiting_for_ollama_and_a_cut_off_also_silences_it():
    async def scenario():
        stopped, cut = Turn("s", "r1", "hi").control, Turn("s", "r2", "hi").control
        stopped.cancel()
        cut.cut_off()
        assert stopped.cancelled and stopped.woken.is_set() and not stopped.silent
        assert cut.cancelled and cut.woken.is_set() and cut.silent
        warm = Warm(session="s")
        warm.control.cut_off()
        assert warm.control.hangup.fired
    asyncio.run(scenario())


def test_a_trust_is_decided_once():
    granted, revoked = Trust("m1"), Trust("m2")
    assert granted.waiting and granted.decide(True) and not granted.decide(False), "decided once"
    assert granted.granted.is_set() and not granted.revoked and not granted.waiting
    assert revoked.decide(False) and not revoked.decide(True) and revoked.revoked and not revoked.granted.is_set()


def test_a_turn_on_trust_waits_for_its_grant_and_a_granted_one_does_not():
    async def main():
        granted_before = Turn("s", "r0", "hi")
        await asyncio.wait_for(granted_before.until_granted(), 1)
        turn = Turn("s", "r1", "hi", trust=Trust("m1"))
        waiting = asyncio.ensure_future(turn.until_granted())
        await asyncio.sleep(0)
        assert not waiting.done()
        turn.trust.decide(True)
        await asyncio.wait_for(waiting, 1)
        cut = Turn("s", "r2", "hi", trust=Trust("m2"))
        cutting = asyncio.ensure_future(cut.until_granted())
        cut.control.cut_off()
        await asyncio.wait_for(cutting, 1)
    asyncio.run(main())
