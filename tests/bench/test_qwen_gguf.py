"""bench/qwen_gguf.py: a model's parts joined in order and checked, on made-up parts."""
import hashlib

import pytest

from bench import qwen_gguf
from bench.qwen_gguf import Split


@pytest.fixture
def parts(tmp_path, monkeypatch):
    blobs = [bytes([n]) * (n + 3) for n in range(1, 12)]  # 11 parts, each its own bytes: joined 1, 2, …, 11
    for n, blob in enumerate(blobs, start=1):
        (tmp_path / f"part{n:02d}.bin").write_bytes(blob)
    monkeypatch.setattr(Split, "part", lambda self, n: tmp_path / f"part{n:02d}.bin")
    return b"".join(blobs)


def test_the_parts_are_joined_in_numeric_order_and_checked(parts, tmp_path, monkeypatch):
    split = Split("fake_part{n}", 11, len(parts), hashlib.sha256(parts).hexdigest(), "fake.gguf")
    monkeypatch.setitem(qwen_gguf.SPLITS, "fake", split)
    made = qwen_gguf.assemble("fake", tmp_path / "models")
    assert made.read_bytes() == parts
    assert qwen_gguf.assemble("fake", tmp_path / "models") == made, "made once"


def test_parts_that_are_not_the_expected_file_leave_nothing_behind(parts, tmp_path, monkeypatch):
    monkeypatch.setitem(qwen_gguf.SPLITS, "fake", Split("fake_part{n}", 11, len(parts), "0" * 64, "fake.gguf"))
    with pytest.raises(SystemExit, match="not the expected file"):
        qwen_gguf.assemble("fake", tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_a_part_is_read_from_its_installed_package(tmp_path, monkeypatch):
    (tmp_path / "fake_split_part12" / "data").mkdir(parents=True)
    (tmp_path / "fake_split_part12" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert Split("fake_split_part{n}", 12, 0, "", "x.gguf").part(12) == tmp_path / "fake_split_part12" / "data" / "part12.bin"


def test_a_part_not_installed_says_how_to_get_it():
    with pytest.raises(SystemExit, match="no-such-part3 is not installed: run `make eval`, with EVAL_MODEL=1.5b"):
        Split("no_such_part{n}", 3, 0, "", "x.gguf").part(3)
