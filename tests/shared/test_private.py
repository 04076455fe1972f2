"DATA_DIR private to the account (shared/private.py): what the app makes from now on, and what an older version left."
import logging
import os
import sqlite3
import stat

import pytest

from shared.private import private_data_dir


@pytest.fixture(autouse=True)
def umask():
    "The test process's own umask comes back after each test."
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_what_the_process_makes_after_it_is_private_sqlites_wal_and_shm_too(tmp_path):
    data = tmp_path / "data" / "todo"
    private_data_dir(data)
    db = sqlite3.connect(data / "web.db")
    db.execute("pragma journal_mode=wal")
    db.execute("create table t (x)")
    db.execute("insert into t values (1)")
    db.commit()
    (data / ".sesskey").write_text("key")
    (data / "bus").mkdir()
    made = [data.parent, data, *data.iterdir()]
    assert {p.name for p in made} >= {"web.db", "web.db-wal", "web.db-shm", ".sesskey", "bus"}
    assert {p.name: mode(p) & 0o077 for p in made} == {p.name: 0 for p in made}, "group and others are kept out"
    db.close()


def test_an_older_layout_readable_by_others_is_made_private_once_and_said_so(tmp_path, caplog):
    data = tmp_path / "data"
    data.mkdir()
    for name in (".sesskey", "web.db", "web.db-wal", "web.db-shm", "brain.db"):
        (data / name).write_text("x")
    (data / "brains").mkdir()
    (data / "notes.txt").write_text("the user's own")
    for path in (data, *data.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)

    with caplog.at_level(logging.WARNING, logger="private"):
        private_data_dir(data)

    assert mode(data) == 0o700 and mode(data / "brains") == 0o700
    assert {name: mode(data / name) for name in (".sesskey", "web.db", "web.db-wal", "web.db-shm", "brain.db")} == {
        ".sesskey": 0o600, "web.db": 0o600, "web.db-wal": 0o600, "web.db-shm": 0o600, "brain.db": 0o600}
    assert mode(data / "notes.txt") == 0o644, "only the app's own files are changed"
    [said] = caplog.records
    for name in ("DATA_DIR 0755→0700", ".sesskey 0644→0600", "web.db 0644→0600", "brain.db 0644→0600", "brains 0755→0700"):
        assert name in said.getMessage()

    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="private"):
        private_data_dir(data)
    assert caplog.records == [], "said once: the next start finds nothing to close"


def test_a_link_in_data_dir_is_left_as_it_is(tmp_path):
    elsewhere = tmp_path / "elsewhere.db"
    elsewhere.write_text("x")
    elsewhere.chmod(0o644)
    data = tmp_path / "data"
    data.mkdir()
    (data / "web.db").symlink_to(elsewhere)
    private_data_dir(data)
    assert mode(elsewhere) == 0o644, "what a link points to is not the app's to change"
