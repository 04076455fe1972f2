"What the brain says about a reply (brain/reply_bus.py): every message names the reply and its epoch, chunks are numbered."
from brain.jobs import Turn
from brain.reply_bus import ReplyBus
from shared.messages import Chunk, Done, Failed, FailCode, decode, encode


class Copies:
    "The conversation cache's one answer the bus needs: the epoch of the copy held."

    def __init__(self, epoch=None):
        self.epoch = epoch

    def held(self, session):
        return None if self.epoch is None else type("Copy", (), {"epoch": self.epoch})()


def test_chunks_are_numbered_on_and_the_end_says_how_many_came_before_it():
    sent = []
    bus = ReplyBus(sent.append, "w1", Copies())
    turn = Turn("s1", "r1", "hi", epoch=4, sent=2)  # a resumed reply: the web had chunks 0 and 1
    bus.chunk(turn, "Hel", "")
    bus.chunk(turn, "lo", "hm")
    bus.done(turn, "Hello")
    assert [(type(m), m.seq) for m in sent] == [(Chunk, 2), (Chunk, 3), (Done, 4)]
    assert all((m.worker, m.session, m.reply, m.epoch) == ("w1", "s1", "r1", 4) for m in sent)
    assert [decode(encode(m)) for m in sent] == sent, "each is a valid bus message"


def test_a_failure_before_the_turn_ran_speaks_for_the_epoch_of_the_copy_held():
    sent = []
    ReplyBus(sent.append, "w1", Copies(epoch=9)).failed(Turn("s1", "c1", None), FailCode.BUSY, "Too much queued.")
    ReplyBus(sent.append, "w1", Copies()).failed(Turn("s1", "c2", None), FailCode.STOPPED, "Stopped.")
    assert [(m.reply, m.epoch, m.code) for m in sent] == [("c1", 9, FailCode.BUSY), ("c2", 0, FailCode.STOPPED)]
    assert all(isinstance(m, Failed) for m in sent)
