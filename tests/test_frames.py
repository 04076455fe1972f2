"""The door for a tab's frames (web/frames.py): any frame is either form fields or refused with a
reason, never an exception."""
import pytest
from hypothesis import given

from tests.strategies import frames
from web.frames import Unreadable, read_frame


def test_a_lone_surrogate_is_refused():
    with pytest.raises(Unreadable, match="not valid JSON text"):
        read_frame('{"msg": "hi \\ud800"}', 1000)


def test_a_frame_too_long_is_refused_before_it_is_read():
    with pytest.raises(Unreadable, match="WS_MAX_FRAME_CHARS"):
        read_frame('{"msg": "' + "x" * 2000 + '"}', 1000)


@pytest.mark.fuzz
@given(frames)
def test_any_frame_is_form_fields_or_refused_with_a_reason(frame):
    try:
        fields = read_frame(frame, 65536)
    except Unreadable as e:
        assert str(e)
    else:
        assert isinstance(fields, dict)
