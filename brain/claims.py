"""A reply that says it changed the app when none of its calls did: small models write the result
instead of calling ("I renamed it. The todo list is now: …", Qwen2.5-Coder 0.5B in 4 of 8 turns of
one conversation), in the words of the results they were shown before.

The brain knows no app, so what counts as a claim comes from the app's tools: the past tense of the
first word of each tool's name and of its description ("add_todo" and "Add a new todo" give "added";
"Tick a todo off" gives "ticked"), and a few words any change is told in ("changed", "updated",
"marked"), said by the model of itself ("I added", "I've just ticked", "has been removed") or opening
a sentence ("Renamed it."), or a change it says it is making ("Okay, let's remove the dentist one!",
"I'll add it": a reply is the whole turn, so nothing follows it). It reads words, not meaning: a
claim in other words ("Done!", "All set") is not caught, and "I added it yesterday?" would be.
"""
import re

GENERIC = ("change", "update", "mark", "remove")
IRREGULAR = {"set": "set", "put": "put", "give": "gave", "make": "made", "take": "took", "get": "got"}


def past(verb: str) -> str:
    verb = verb.lower()
    if verb in IRREGULAR:
        return IRREGULAR[verb]
    if verb.endswith("e"):
        return verb + "d"
    if verb.endswith("y") and len(verb) > 2 and verb[-2] not in "aeiou":
        return verb[:-1] + "ied"
    return verb + "ed"


def bases(tools: list[dict]) -> set[str]:
    "The verbs a change of these tools is told with: the first word of each one's name and description."
    found = set(GENERIC)
    for tool in tools:
        f = tool["function"]
        for text in (f["name"].replace("_", " "), f.get("description", "")):
            first = re.match(r"[A-Za-z]+", text.strip())
            if first and len(first.group()) > 2:
                found.add(first.group().lower())
    return found


def verbs(tools: list[dict]) -> set[str]:
    "The words a claimed change of these tools is told with, in the past tense."
    return {past(verb) for verb in bases(tools)}


def pattern(tools: list[dict]) -> re.Pattern:
    done = "|".join(sorted(map(re.escape, verbs(tools)), key=len, reverse=True))
    doing = "|".join(sorted(map(re.escape, bases(tools)), key=len, reverse=True))
    return re.compile(rf"\bI(?:['’]ve| have)?(?: just| now| also| already)?\s+(?:{done})\b"
                      rf"|(?:^|[.!?]\s+)(?:{done})\b"
                      rf"|\b(?:has|have) (?:now )?been (?:{done})\b"
                      rf"|\b(?:let['’]s|I['’]ll|I will|I['’]m going to)\s+(?:{doing})\b", re.I | re.M)


def claimed(text: str, tools: list[dict] | None) -> str | None:
    "The words of `text` that claim a change made with these tools, or None."
    if not tools or not text:
        return None
    found = pattern(tools).search(text)
    return found.group().strip(" .!?") if found else None
