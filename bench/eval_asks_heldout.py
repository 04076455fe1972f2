"""The held-out asks of `make eval` (bench/eval.py): single asks in phrasings the tuned set (`ASKS`
there) does not use, each played in a fresh session from the same starting list (`START`) and judged
by the same `judge`, reported in a table of their own.

Written on 2026-12-06; do not change these to make a figure better. They exist to tell whether a
change to prompts, personas or the app helps asks nobody looked at while making it: tune against
them and they stop telling. If one is found to be judged wrongly (its expected change is not what
the words ask), fix that and say so in the commit; never reword an ask because the model fails it.
"""
from bench.eval import Ask

ASKS = [
    Ask("add", "could you note down 'take out the bins'?", added=["bins"]),
    Ask("add", "I must get batteries at some point, add that", added=["batteries"]),
    Ask("add", "new todo: email the landlord", added=["landlord"]),
    Ask("tick", "the stamps are bought", done={"stamps": True}),
    Ask("tick", "check off call the plumber", done={"plumber": True}),
    Ask("tick", "the dentist is booked now, you can cross that off", done={"dentist": True}),
    Ask("untick", "set 'water the plants' back to not done", done={"plants": False}),
    Ask("untick", "oops, the plants still need watering after all", done={"plants": False}),
    Ask("rename", "call 'buy stamps' 'buy 10 stamps' instead", added=["10 stamps"], was="buy stamps"),
    Ask("rename", "retitle the plumber todo as 'call the plumber about the leak'", added=["leak"], was="call the plumber"),
    Ask("rename", "edit the dentist todo so it reads 'book the dentist for Monday'", added=["monday"], was="book the dentist"),
    Ask("delete", "get rid of the plumber todo", gone=["plumber"]),
    Ask("delete", "scratch 'buy stamps', I don't need it", gone=["stamps"]),
    Ask("delete", "the dentist one can go, please drop it", gone=["dentist"]),
    Ask("clear done", "delete all the completed items", gone=["plants"]),
    Ask("clear done", "tidy up by dropping whatever is already ticked", gone=["plants"]),
    Ask("several", "I need to post a parcel and phone my mum, add both", added=["parcel", "mum"]),
    Ask("several", "the dentist and the stamps are both done", done={"dentist": True, "stamps": True}),
    Ask("several", "untick the plants and get rid of the plumber one", done={"plants": False}, gone=["plumber"]),
    Ask("question", "show me my todos", mentions=["stamps", "plumber", "plants", "dentist"]),
    Ask("question", "what haven't I done yet?", mentions=["stamps", "plumber", "dentist"]),
    Ask("question", "have I finished anything?", mentions=["plants"]),
    Ask("chit-chat", "what do you like doing in your free time?"),
    Ask("chit-chat", "you're pretty clever for a computer"),
    Ask("greeting", "good morning!"),
    Ask("greeting", "hey, anyone there?"),
]
