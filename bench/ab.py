"""This tree against another commit: the same bench sections, run in turns on each, so a change is
judged against this machine's own noise (the same code's figures vary by 2 to 4 times between runs
on 2 shared cores). Prints the median of each figure per tree and writes them into BENCHMARKS.md,
in a section of its own that `make bench` keeps.

    python -m bench.ab 9130a05                    # first token and 1/10/100 sessions, 3 rounds
    python -m bench.ab 9130a05 --rounds 5 --sessions 10 100
"""
import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import results
from tests.system import ROOT

ROW = re.compile(r"^  (\S.*?)\s{2,}(\S.*)$")
NUMBER = re.compile(r"[-\d.]+")
WANTED = ("added by the system", "per-chunk latency", "time to first token ms")


def figures(output: str) -> dict[str, float]:
    "Each row's figure added by the system at p50 (the bench prints it as 'added X', or as the row's value)."
    found = {}
    for line in output.splitlines():
        row = ROW.match(line)
        if not row or not any(w in row.group(1) for w in WANTED):
            continue
        label, value = row.groups()
        added = value.split("added ", 1)[1] if "added " in value else value
        found[label] = float(NUMBER.search(added).group())
    return found


def run(tree: Path, sessions: list[str]) -> dict[str, float]:
    command = [sys.executable, "-m", "bench", "--only", "first-token", "scaling", "--sessions", *sessions]
    done = subprocess.run(command, cwd=tree, capture_output=True, text=True, timeout=900, check=True)
    return figures(done.stdout)


def turns(n: int, first: tuple, second: tuple) -> tuple:
    """Round n's order: in turns, so drift hits both, and each tree first every other round, since the
    tree run second read slower (an A/A run, a tree against its own commit: 276 → 331 ms at 100 sessions)."""
    return (first, second) if n % 2 == 0 else (second, first)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.split("\n\n")[0])
    parser.add_argument("rev", help="the commit to compare this tree with")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", nargs="+", default=["1", "10", "100"])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-ab-") as scratch:
        other = Path(scratch) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(other), args.rev], cwd=ROOT, check=True,
                       capture_output=True)
        (other / "node_modules").symlink_to(ROOT / "node_modules")  # the same pinned browser assets
        try:
            seen: dict[str, dict[str, list[float]]] = {args.rev: {}, "this tree": {}}
            for n in range(args.rounds):
                for name, tree in turns(n, (args.rev, other), ("this tree", ROOT)):
                    print(f"... round {n + 1}: {name}", flush=True)
                    for label, value in run(tree, args.sessions).items():
                        seen[name].setdefault(label, []).append(value)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(other)], cwd=ROOT, capture_output=True)
    rows = [f"| {label} | {statistics.median(seen[args.rev][label]):.2f} | {statistics.median(values):.2f} |"
            for label, values in seen["this tree"].items() if label in seen[args.rev]]
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    text = "\n".join([
        f"### This tree against {args.rev} (`python -m bench.ab {args.rev}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
        f"Added by the system at p50, ms: the median of {args.rounds} runs of each, taken in turns, each tree first "
        f"every other round (this tree: {head}).",
        "",
        f"| measure | {args.rev} | this tree |", "|---|---|---|", *rows])
    print("\n" + text)
    results.splice("ab", text)


if __name__ == "__main__":
    main()
