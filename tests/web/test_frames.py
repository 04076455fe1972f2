"""The door for a tab's frames (web/frames.py): any frame is a chat command, another control's
fields, or refused with a notice, never an exception."""
import json

import pytest
from hypothesis import given

from tests.strategies import frames
from web.frames import Command, Control, Unreadable, Used, read_frame


def read(**fields):
    return read_frame(json.dumps(fields), 1000)


def test_a_lone_surrogate_is_refused():
    with pytest.raises(Unreadable, match="not valid JSON text"):
        read_frame('{"msg": "hi \\ud800"}', 1000)


def test_a_frame_too_long_is_refused_before_it_is_read():
    with pytest.raises(Unreadable, match="WS_MAX_FRAME_CHARS"):
        read_frame('{"msg": "' + "x" * 2000 + '"}', 1000)


@pytest.mark.parametrize("text", [None, "[1, 2]", '"msg"', "not json", "[" * 5000 + "]" * 5000])
def test_what_holds_no_form_fields_is_refused_with_a_notice_that_nothing_was_sent(text):
    with pytest.raises(Unreadable, match=r"^That message could not be read \(.*\)\. Nothing was sent\.$"):
        read_frame(text, 100_000)


def test_each_chat_control_is_a_command_with_its_value():
    for control in Control:
        assert read(**{control.value: "x1", "HEADERS": {"HX-Trigger": "chat-form"}}) == Command(control, "x1")
    assert read(msg="") == Command(Control.MSG, ""), "an empty message is the chat's to ignore"


def test_a_frame_naming_several_controls_is_the_first_in_the_tables_order():
    assert read(cancel_pull="p1", stop="r1") == Command(Control.STOP, "r1")
    assert read(model="qwen3:4b", msg="hi") == Command(Control.MSG, "hi")


@pytest.mark.parametrize("value", [5, None, ["hi"], {"text": "hi"}, True])
def test_a_chat_control_whose_value_is_no_text_is_refused(value):
    with pytest.raises(Unreadable) as refused:
        read(msg=value)
    assert str(refused.value) == "That message could not be read; nothing was sent."
    with pytest.raises(Unreadable):
        read(msg=value, stop="r1")  # the first control decides, not the first one that is text


def test_any_other_control_is_its_fields_for_the_model_to_hear_of():
    fields = {"lamp": "on", "HEADERS": {"HX-Trigger": "lamp-form"}}
    assert read(**fields) == Used(fields)
    assert read_frame("{}", 10) == Used({})


@pytest.mark.fuzz
@given(frames)
def test_any_frame_is_a_command_other_fields_or_refused_with_a_reason(frame):
    try:
        read_ = read_frame(frame, 65536)
    except Unreadable as e:
        assert str(e).endswith(("Nothing was sent.", "nothing was sent."))
    else:
        match read_:
            case Command(control, value):
                assert isinstance(control, Control) and isinstance(value, str)
            case Used(fields):
                assert isinstance(fields, dict) and not any(c.value in fields for c in Control)
            case _:
                pytest.fail(f"not a frame: {read_!r}")
