"""Make the CURVE keys for a bus that reaches beyond loopback.

    python -m shared.curve_keys keys/bus

writes server.key/.key_secret (for the web), client.key/.key_secret (for brains and tails) and
authorized/ (the client public keys the web accepts). Give every process BUS_CURVE_DIR=keys/bus;
copy the directory to the brain's machine without server.key_secret.
"""
import argparse
import os
import shutil
from pathlib import Path

import zmq.auth

from shared.private import UMASK


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shared.curve_keys", description="make CURVE keys for the bus")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    os.umask(UMASK)  # a secret key is never readable by others, not even until its chmod below
    authorized = args.directory / "authorized"
    authorized.mkdir(parents=True, exist_ok=True)
    if not (args.directory / "server.key").exists():
        zmq.auth.create_certificates(args.directory, "server")
    public, _ = zmq.auth.create_certificates(args.directory, "client")
    shutil.copy(public, authorized / Path(public).name)
    for secret in args.directory.glob("*.key_secret"):
        secret.chmod(0o600)
    print(f"keys in {args.directory}: set BUS_CURVE_DIR={args.directory} for the web, brains and tails")


if __name__ == "__main__":
    main()
