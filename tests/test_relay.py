"""The relay's reply lifecycle with fake collaborators: what each session's tabs are sent."""
from shared.messages import Ack, Chunk, Done, Stats
from web.relay import Relay


class Fakes:
    "Clients, store and store thread in one: frames per session, writes in order."

    def __init__(self):
        self.frames, self.writes = {}, []

    def send(self, session, html): self.frames.setdefault(session, []).append(html)
    def send_all(self, html): pass
    def post(self, fn, *args): self.writes.append((fn.__name__, args))
    def add_line(self, *args): pass
    def clear_transcript(self, *args): pass


def relay():
    fakes = Fakes()
    return Relay(fakes, fakes, fakes), fakes


def chunk(seq, text, request="r1", session="s"):
    return Chunk(worker="w1", session=session, request=request, seq=seq, text=text)


def test_a_reply_marked_interrupted_carries_on_when_its_worker_was_only_slow():
    r, fakes = relay()
    r.user_said("s", "r1", "hello", sent=True)
    r.brain_message(Ack(worker="w1", session="s", request="r1"))
    r.brain_message(chunk(0, "Hel"))
    r.brain_lost("w1")
    assert r.live("s", "r1") is None and 'class="msg reply interrupted"' in fakes.frames["s"][-1]
    r.brain_message(chunk(1, "lo"))
    assert r.live("s", "r1").status == "streaming" and r.live("s", "r1").text == "Hello"
    r.brain_message(Done(worker="w1", session="s", request="r1", seq=2, text="Hello", stats=Stats()))
    assert 'class="msg reply done"' in fakes.frames["s"][-1]
    assert [w for w in fakes.writes if w[1][2] == "reply"][-1][1][4] == "done"


def test_chunks_go_only_to_their_session_and_the_final_text_repairs_a_gap():
    r, fakes = relay()
    r.user_said("a", "r1", "hi", sent=True)
    r.brain_message(chunk(0, "one", session="a"))
    r.brain_message(chunk(2, " three", session="a"))
    r.brain_message(Done(worker="w1", session="a", request="r1", seq=3, text="one two three", stats=Stats()))
    assert set(fakes.frames) == {"a"}
    assert "one two three" in fakes.frames["a"][-1]


def test_after_new_chat_late_words_of_old_replies_are_ignored():
    r, fakes = relay()
    r.user_said("s", "r1", "hi", sent=True)
    r.brain_message(chunk(0, "old"))
    r.reset("s")
    before = len(fakes.frames["s"])
    r.brain_message(chunk(1, " words"))
    r.brain_message(Done(worker="w1", session="s", request="r1", seq=2, text="old words", stats=Stats()))
    assert len(fakes.frames["s"]) == before
    assert 'id="msg-list"' in fakes.frames["s"][-1] and "<article" not in fakes.frames["s"][-1]
