"""What the app writes is private to the account that runs it.

Every process that writes under DATA_DIR (the web, a brain worker and its supervisor) calls
`private_data_dir` before it writes anything: its umask then keeps group and others out of each
file and directory it makes: web.db and brain.db, SQLite's -wal and -shm beside them, FastHTML's
.sesskey and the bus directory. What an older version left readable there is closed once, at
start, and logged. (SQLite gives a -wal or -shm the mode of its database whatever the umask, so an
old 0644 database must be closed before it is opened again.)
"""
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("private")
UMASK = 0o077
# The app's own entries in DATA_DIR: only these are tightened, since DATA_DIR may hold other things.
OURS = (".sesskey", "*.db", "*.db-wal", "*.db-shm", "*.db-journal", "bus", "brains")


def private_data_dir(data_dir: Path) -> None:
    "Make DATA_DIR private to this account, and every file and directory this process makes from now on."
    os.umask(UMASK)
    data_dir.mkdir(parents=True, exist_ok=True)
    tightened = [f"{name} {change}" for name, path in [("DATA_DIR", data_dir), *((p.name, p) for p in ours(data_dir))]
                 if (change := tighten(path))]
    if tightened:
        log.warning("made private to this account what an older version left readable by others in %s: %s",
                    data_dir, ", ".join(tightened))


def ours(data_dir: Path) -> list[Path]:
    return sorted({path for pattern in OURS for path in data_dir.glob(pattern)})


def tighten(path: Path) -> str:
    "Take group's and others' access to `path` away; how its mode changed (\"0644→0600\"), or \"\" when it did not."
    try:
        info = path.lstat()
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode) or not mode & 0o077:
            return ""  # a link's own mode means nothing, and what it points to is not ours to change
        path.chmod(mode & ~0o077)
    except FileNotFoundError:
        return ""  # gone meanwhile (a -wal at its checkpoint)
    except PermissionError as e:
        log.warning("cannot make %s private to this account: %s", path, e)
        return ""
    return f"{mode:04o}→{mode & ~0o077:04o}"
