"""A throwaway PostgreSQL server for tests: Debian's `postgresql` binaries, a fresh cluster in a
temporary directory, run as the `postgres` user (initdb and pg_ctl refuse to run as root), with
trust authentication on the addresses it listens on, stopped at the end."""
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.system import free_port


def binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs Debian's postgresql package")
    return found[-1].parent


class PostgresServer:
    def __init__(self, listen: str = "127.0.0.1"):
        self.bin, self.listen, self.port = binaries(), listen, free_port()
        # Not under the test's tmp_path: root's temporary directories are closed to `postgres`.
        self.dir = Path(tempfile.mkdtemp(prefix="pg-"))
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"

    def _as_postgres(self, *args: str) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, text=True)

    def start(self) -> "PostgresServer":
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                          "--no-sync")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses='{self.listen}' -c fsync=off"
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.dir / "log"),
                          "-w", "start")
        if self.listen not in ("127.0.0.1", "localhost"):
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
            self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "reload")
        return self

    def url(self, database: str = "postgres", host: str | None = None) -> str:
        return f"postgresql://postgres@{host or self.listen}:{self.port}/{database}"

    def new_database(self) -> str:
        "A fresh, empty database; its URL."
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"create database {name}")
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", str(self.bin / "pg_ctl"), "-D", str(self.data), "-m",
                        "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)
