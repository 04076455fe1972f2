"""docs/protocol.md's field tables say exactly what the Structs of shared/messages.py hold.

The convention (also in a comment at the top of docs/protocol.md): each message kind has a heading
``#### Message `<kind>` `` and each structure used in a field ``#### Structure `<Name>` ``; the first
table under it, with the header ``| field | type | presence | meaning |``, has one row per field
(inherited ones, and for a message its tag field `kind`), the type in the words of §3.2 and the
presence `required` or ``optional, default `<JSON>` ``.

The code side is found, not listed: every Struct of shared/messages.py with a tag is a kind (named
by its tag), and every Struct reachable from their fields' types is a structure. So a field, a kind
or a structure added to the code without its table fails here, naming what differs; and so does a
table for something the code does not have.
"""
import json
import re
import types
import typing
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import msgspec

from shared import messages
from shared.messages import KINDS, Bye, Chat, Message, Stop, ToBrain, ToWeb

SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
HEADING = re.compile(r"^#{2,6}\s+(Message|Structure)\s+`([A-Za-z_][A-Za-z0-9_]*)`\s*$")
ANY_HEADING = re.compile(r"^#{1,6}\s")
HEADER = ["field", "type", "presence", "meaning"]
FIELD = re.compile(r"^`([A-Za-z_][A-Za-z0-9_]*)`$")
OPTIONAL = re.compile(r"^optional, default `(.*)`$")

Key = tuple[str, str]  # ("Message", tag) or ("Structure", class name)


@dataclass(frozen=True)
class Row:
    field: str
    type: str
    presence: str


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def parse(text: str) -> tuple[dict[Key, list[Row]], list[str]]:
    "The field tables of the spec, by heading, and what in it breaks the convention."
    tables: dict[Key, list[Row]] = {}
    problems: list[str] = []
    current: Key | None = None
    in_code = False
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.lstrip().startswith("```"):
            in_code = not in_code
        elif not in_code and (m := HEADING.match(line)):
            current = (m.group(1), m.group(2))
            if current in tables:
                problems.append(f"{_name(current)}: two headings")
            tables[current] = []
        elif not in_code and ANY_HEADING.match(line):
            current = None
        elif not in_code and current is not None and line.lstrip().startswith("|"):
            block = []
            while i < len(lines) and lines[i].lstrip().startswith("|"):
                block.append(lines[i])
                i += 1
            tables[current], found = _rows(current, block)
            problems += found
            current = None
            continue
        i += 1
    problems += [f"{_name(key)}: no field table under its heading" for key, rows in tables.items() if not rows]
    return tables, problems


def _rows(key: Key, block: list[str]) -> tuple[list[Row], list[str]]:
    if _cells(block[0]) != HEADER:
        return [], [f"{_name(key)}: its table's header is {_cells(block[0])}, not {HEADER}"]
    rows, problems = [], []
    for line in block[2:]:  # past the header and the |---| line
        cells = _cells(line)
        field = FIELD.match(cells[0]) if cells else None
        if len(cells) != len(HEADER) or field is None:
            problems.append(f"{_name(key)}: a row that is not `| `field` | type | presence | meaning |`: "
                            f"{line.strip()}")
            continue
        if any(r.field == field.group(1) for r in rows):
            problems.append(f"{_name(key)}: field `{field.group(1)}` is listed twice")
        rows.append(Row(field.group(1), cells[1], cells[2]))
    return rows, problems


def _name(key: Key) -> str:
    return f"{key[0].lower()} `{key[1]}`"


# The code's side.

def _tagged(cls: type) -> bool:
    """Given a tag of its own (`tag="chat"`). In a hierarchy with a tag field msgspec tags every
    class, by default with its class name: those are the families (ToBrain, About, ...), not kinds."""
    tag = cls.__struct_config__.tag
    return tag is not None and tag != cls.__name__


def code_kinds(module=messages) -> list[type]:
    "Every message Struct of the module with a tag of its own: the message kinds, as the module defines them."
    found, todo = [], [Message]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__ == module.__name__ and _tagged(sub) and sub not in found:
                found.append(sub)
    return found


def code_structures(kinds: list[type]) -> list[type]:
    "Every Struct, not a message, that a field of these kinds holds (at any depth)."
    found: list[type] = []

    def walk(t) -> None:
        if isinstance(t, type) and issubclass(t, msgspec.Struct) and not issubclass(t, Message):
            if t not in found:
                found.append(t)
                for f in msgspec.structs.fields(t):
                    walk(f.type)
            return
        for arg in typing.get_args(t):
            walk(arg)

    for kind in kinds:
        for f in msgspec.structs.fields(kind):
            walk(f.type)
    return found


def _meta(annotated) -> msgspec.Meta:
    return next(m for m in typing.get_args(annotated)[1:] if isinstance(m, msgspec.Meta))


PATTERNS = {_meta(messages.Id).pattern: "id", _meta(messages.MaybeId).pattern: "id or empty",
            messages.MODEL_NAME: "model name"}
PLAIN = {str: "string", bool: "bool", int: "int", float: "float"}


def type_word(t) -> str:
    "A field's type in the words of docs/protocol.md §3.2."
    origin, args = typing.get_origin(t), typing.get_args(t)
    if origin is Annotated:
        base, meta = args[0], _meta(t)
        if base is str and meta.pattern in PATTERNS:
            return PATTERNS[meta.pattern]
        if base is int and meta.ge == 0 and meta.le is None:
            return "int ≥ 0"
    elif origin in (typing.Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        if len(others) == 1 and len(args) == 2:
            return f"{type_word(others[0])} or null"
    elif origin is list:
        return f"list of {type_word(args[0])}"
    elif origin is dict and args == (str, Any):
        return "object"
    elif t in PLAIN:
        return PLAIN[t]
    elif isinstance(t, type) and issubclass(t, (msgspec.Struct, Enum)):
        return t.__name__
    raise AssertionError(f"docs/protocol.md §3.2 has no word for the type {t!r}: add one there and in type_word")


def presence(f: msgspec.structs.FieldInfo) -> str:
    if f.required:
        return "required"
    default = f.default if f.default is not msgspec.NODEFAULT else f.default_factory()
    return f"optional, default `{msgspec.json.encode(default).decode()}`"


def code_rows(cls: type) -> list[Row]:
    "The rows the spec must have for a Struct: its tag field first (a message's `kind`), then its fields."
    head = [Row(cls.__struct_config__.tag_field, "string", "required")] if _tagged(cls) else []
    return head + [Row(f.encode_name, type_word(f.type), presence(f)) for f in msgspec.structs.fields(cls)]


def _same_presence(spec: str, code: str) -> bool:
    "`required` alike, or the same default, however its JSON is spaced."
    a, b = OPTIONAL.match(spec), OPTIONAL.match(code)
    if not (a and b):
        return spec == code
    try:
        return json.loads(a.group(1)) == json.loads(b.group(1))
    except json.JSONDecodeError:
        return False


def differences(tables: dict[Key, list[Row]], kinds: list[type], structures: list[type]) -> list[str]:
    "What the spec's tables and these Structs disagree on, one line each, naming the kind and field."
    expected: dict[Key, tuple[type, list[Row]]] = {("Message", k.__struct_config__.tag): (k, code_rows(k))
                                                   for k in kinds}
    expected |= {("Structure", s.__name__): (s, code_rows(s)) for s in structures}
    problems = [f"{_name(key)} ({cls.__name__}) is in the code but has no table in docs/protocol.md"
                for key, (cls, _) in expected.items() if key not in tables]
    problems += [f"{_name(key)} has a table in docs/protocol.md but is not in the code"
                 for key in tables if key not in expected]
    for key, (cls, rows) in expected.items():
        if key not in tables:
            continue
        spec = {r.field: r for r in tables[key]}
        code = {r.field: r for r in rows}
        for name, row in code.items():
            said = spec.get(name)
            if said is None:
                problems.append(f"{_name(key)}: field `{name}` ({row.type}, {row.presence}) is in the code but not "
                                "in its table")
                continue
            where = f"{_name(key)}, field `{name}`"
            if said.type != row.type:
                problems.append(f"{where}: type `{said.type}` in its table, `{row.type}` in the code")
            if not _same_presence(said.presence, row.presence):
                problems.append(f"{where}: `{said.presence}` in its table, `{row.presence}` in the code")
        problems += [f"{_name(key)}: field `{name}` is in its table but not in the code"
                     for name in spec if name not in code]
    return problems


def spec_tables() -> dict[Key, list[Row]]:
    tables, problems = parse(SPEC.read_text(encoding="utf-8"))
    assert not problems, "docs/protocol.md breaks its field-table convention:\n" + "\n".join(problems)
    return tables


# The tests.

def test_every_kind_and_structure_has_a_table_with_exactly_its_fields():
    kinds = code_kinds()
    problems = differences(spec_tables(), kinds, code_structures(kinds))
    assert not problems, "docs/protocol.md and shared/messages.py differ:\n" + "\n".join(problems)


def test_the_kinds_found_are_those_the_decoder_reads():
    assert set(code_kinds()) == set(KINDS)
    assert {s.__name__ for s in code_structures(code_kinds())} == {"Prompt", "Answered", "Stats"}


def test_a_field_added_to_a_message_without_its_row_is_named():
    class ChatPlus(Chat, frozen=True, kw_only=True, tag="chat"):
        urgent: bool = False

    kinds = [ChatPlus if k is Chat else k for k in code_kinds()]
    assert differences(spec_tables(), kinds, code_structures(kinds)) == [
        "message `chat`: field `urgent` (bool, optional, default `false`) is in the code but not in its table"]


def test_a_row_the_code_does_not_have_is_named():
    class StopWithoutReply(ToBrain, frozen=True, kw_only=True, tag="stop"):
        pass

    kinds = [StopWithoutReply if k is Stop else k for k in code_kinds()]
    assert differences(spec_tables(), kinds, code_structures(kinds)) == [
        "message `stop`: field `reply` is in its table but not in the code"]


def test_a_row_missing_from_the_spec_is_named():
    tables = spec_tables()
    tables[("Message", "chat")] = [r for r in tables[("Message", "chat")] if r.field != "retry"]
    assert differences(tables, code_kinds(), code_structures(code_kinds())) == [
        "message `chat`: field `retry` (bool, optional, default `false`) is in the code but not in its table"]


def test_a_kind_added_or_dropped_is_named():
    class Ping(ToWeb, frozen=True, kw_only=True, tag="ping"):
        pass

    kinds = [k for k in code_kinds() if k is not Bye] + [Ping]
    assert sorted(differences(spec_tables(), kinds, code_structures(kinds))) == [
        "message `bye` has a table in docs/protocol.md but is not in the code",
        "message `ping` (Ping) is in the code but has no table in docs/protocol.md"]


def test_a_changed_type_or_default_is_named():
    class ChatRetryCount(Chat, frozen=True, kw_only=True, tag="chat"):
        retry: int = 1

    kinds = [ChatRetryCount if k is Chat else k for k in code_kinds()]
    assert differences(spec_tables(), kinds, code_structures(kinds)) == [
        "message `chat`, field `retry`: type `bool` in its table, `int` in the code",
        "message `chat`, field `retry`: `optional, default `false`` in its table, `optional, default `1`` in the code"]


def test_a_field_added_to_a_structure_is_named():
    prompt = msgspec.defstruct("Prompt", [("system", str), ("tools", list[dict[str, Any]], []), ("cache", bool, True)],
                               frozen=True)
    structures = [prompt if s is messages.Prompt else s for s in code_structures(code_kinds())]
    assert differences(spec_tables(), code_kinds(), structures) == [
        "structure `Prompt`: field `cache` (bool, optional, default `true`) is in the code but not in its table"]


def test_the_parser_names_what_breaks_the_convention():
    text = "\n".join([
        "#### Message `chat`", "", "No table here.", "", "## Next section",
        "#### Message `stop`", "", "| name | type | presence | meaning |", "|---|---|---|---|",
        "| `reply` | id | required | x |",
        "#### Structure `Prompt`", "", "| field | type | presence | meaning |", "|---|---|---|---|",
        "| system | string | required | no backticks |",
        "```", "#### Message `reset`", "```",  # inside a code block: not a heading
    ])
    tables, problems = parse(text)
    assert ("Message", "reset") not in tables
    assert problems == [
        "message `stop`: its table's header is ['name', 'type', 'presence', 'meaning'], not "
        "['field', 'type', 'presence', 'meaning']",
        "structure `Prompt`: a row that is not `| `field` | type | presence | meaning |`: "
        "| system | string | required | no backticks |",
        "message `chat`: no field table under its heading",
        "message `stop`: no field table under its heading",
        "structure `Prompt`: no field table under its heading"]
