"""One chat message's way through the code (`make trace`): which of the project's files and
functions run, and which call which across files, in the real web and brain processes (a fake
Ollama behind them); then what the code's shape says of the same thing (who imports the broker,
constructors' collaborators, objects wired after they are made, import depth).

    python -m bench.trace [--json]

Recorded from the chat frame's arrival to the reply's end, after one message has warmed both
processes up, with the heartbeats and Ollama checks slowed so that only the message runs.
"""
import argparse
import ast
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.fake_ollama import FakeOllama, Plan, words
from tests.page import Visitor
from tests.system import ROOT, System

PROCESSES = {"web": "web", "brain": "brain.ollama_worker"}
QUIET = {"BUS_HEARTBEAT_S": "20", "OLLAMA_CHECK_S": "60", "COMMENT_DELAY_S": "30"}
COMPOSITION_ROOTS = ("web/server.py", "brain/ollama_worker.py")


def traced(commands: dict[str, str], out: Path) -> dict[str, str]:
    "The web's Procfile line and the brain worker (without its supervisor), each under the hook."
    hook = f"python -m bench.trace_hook {out}/{{}}.json "
    return {"web": commands["web"].replace("python -m ", hook.format("web"), 1),
            "brain": hook.format("brain") + "brain.ollama_worker"}


def record(workdir: Path) -> list[dict]:
    fake = FakeOllama(default=Plan(chunks=words("Fine. Another todo list, another human."), delay=0.01)).start()
    system = System(workdir, fake.url, **QUIET)
    system.commands = traced(system.commands, workdir)
    try:
        system.start()
        system.wait_ready(60)
        visitor = Visitor(system.url)
        tab = visitor.open_tab()
        tab.send("hello")
        tab.wait(lambda t: t.finished(1), timeout=30, what="the warm-up reply")
        flags = [workdir / f"{name}.json.on" for name in PROCESSES]
        for flag in flags:
            flag.touch()
        time.sleep(0.3)
        tab.send("what should I do today?")
        tab.wait(lambda t: t.finished(2), timeout=30, what="the traced reply")
        time.sleep(0.3)  # the reply's last writes (the line kept on disk)
        for flag in flags:
            flag.unlink()
        outs = [workdir / f"{name}.json" for name in PROCESSES]
        deadline = time.monotonic() + 10
        while not all(out.exists() for out in outs) and time.monotonic() < deadline:
            time.sleep(0.05)
        visitor.close()
        return [json.loads(out.read_text()) for out in outs]
    finally:
        system.stop_all()
        fake.stop()


def trace_figures(runs: list[dict]) -> dict:
    """Cross-file edges: made by calls alone, and also counting a coroutine's resumption by the one
    awaiting it (the await chains made before the message, which the profiler reports as calls). The
    edges into files that call no other (the codec, data such as transcript lines, the boundaries to
    Ollama and the sockets) are counted apart: a chain of steps has at least one edge a file."""
    functions = set().union(*(run["functions"] for run in runs))
    calls = {tuple(call) for run in runs for call in run["calls"]}
    resumed = {tuple(call) for run in runs for call in run.get("resumed", ())}
    file_of = lambda name: name.split(":", 1)[0]  # noqa: E731
    across = {(a, b) for a, b in calls if file_of(a) != file_of(b)}
    with_resumed = across | {(a, b) for a, b in resumed if file_of(a) != file_of(b)}
    files = lambda edges: {(file_of(a), file_of(b)) for a, b in edges}  # noqa: E731
    leaves = {b for _, b in files(across)} - {a for a, _ in files(across)}
    return {"files": len({file_of(f) for f in functions}), "functions": len(functions),
            "cross-file call edges (function to function)": len(across),
            "cross-file call edges (file to file)": len(files(across)),
            "of those, into files that call no other file": len({e for e in files(across) if e[1] in leaves}),
            "cross-file edges with resumptions (file to file)": len(files(with_resumed)),
            "files that call each other round (calls only)": cycles(files(across)),
            "edges": sorted(with_resumed), "calls only": sorted(across)}


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """The groups of files whose calls go round (each reaches every other of its group): a way that
    runs in one direction has none."""
    after: dict[str, set[str]] = {}
    for a, b in edges:
        after.setdefault(a, set()).add(b)

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in after.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reached = {node: reach(node) for node in after}
    groups = {tuple(sorted(n for n in reached if n in reached[node] and node in reached[n])) for node in reached}
    return sorted(list(g) for g in groups if len(g) > 1)


def modules() -> dict[str, ast.Module]:
    return {str(path.relative_to(ROOT)): ast.parse(path.read_text())
            for part in ("web", "brain", "shared") for path in sorted((ROOT / part).glob("*.py"))}


def imported(tree: ast.Module) -> set[str]:
    "The project's modules a module imports at its top level."
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("web", "brain", "shared"):
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.split(".")[0] in ("web", "brain", "shared")}
    return names


def import_depth(trees: dict[str, ast.Module], start: str) -> list[str]:
    "The longest chain of imports from a module."
    graph = {path.removesuffix(".py").replace("/", "."): imported(tree) for path, tree in trees.items()}
    longest: dict[str, list[str]] = {}

    def chain(module: str, seen: frozenset) -> list[str]:
        if module not in longest:
            tails = [chain(m, seen | {module}) for m in graph.get(module, ()) if m not in seen]
            longest[module] = [module, *max(tails, key=len, default=[])]
        return longest[module]

    return chain(start, frozenset())


VALUES = {"str", "int", "float", "bool", "bytes", "dict", "list", "tuple", "None"}


def collaborators(trees: dict[str, ast.Module]) -> list[tuple[str, int]]:
    """Constructors (`__init__`) and wiring functions (`wire_*`) by how many collaborators they are
    given: parameters other than `self` and plain values (annotated str, int, float, bool, a dict…)."""
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, ast.FunctionDef) and item.name == "__init__":
                        found.append((f"{path}:{node.name}", _given(item)))
            elif isinstance(node, ast.FunctionDef) and node.name.startswith("wire_"):
                found.append((f"{path}:{node.name}", _given(node)))
    return sorted(found, key=lambda f: -f[1])


def _given(fn: ast.FunctionDef) -> int:
    args = fn.args
    params = [a for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg != "self"]
    return sum(1 for a in params if not _value(a.annotation))


def _value(annotation: ast.expr | None) -> bool:
    names = {n.id for n in ast.walk(annotation) if isinstance(n, ast.Name)} if annotation is not None else set()
    constants = [n for n in ast.walk(annotation) if isinstance(n, ast.Constant)] if annotation is not None else []
    return bool(names or constants) and names <= VALUES and all(c.value is None for c in constants)


def late_bindings(trees: dict[str, ast.Module]) -> list[str]:
    """Objects wired after they are made, in the composition roots: an attribute of a local set
    after it was built, or a closure over a local that is assigned only later."""
    found = []
    for path in COMPOSITION_ROOTS:
        for fn in (n for n in ast.walk(trees[path]) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            assigned: dict[str, int] = {}
            for i, stmt in enumerate(fn.body):
                for target in _targets(stmt):
                    if isinstance(target, ast.Name):
                        assigned.setdefault(target.id, i)
                    elif (isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name)
                          and target.value.id in assigned and target.value.id != "app"):
                        found.append(f"{path}:{stmt.lineno} {target.value.id}.{target.attr} = …")
            for i, stmt in enumerate(fn.body):
                for inner in (n for n in ast.walk(stmt) if isinstance(n, (ast.Lambda, ast.FunctionDef, ast.AsyncFunctionDef))):
                    later = {n.id for n in ast.walk(inner) if isinstance(n, ast.Name) and assigned.get(n.id, -1) > i}
                    found += [f"{path}:{inner.lineno} closure over {name}, made later" for name in sorted(later)]
    return sorted(set(found))


def _targets(stmt: ast.stmt) -> list[ast.expr]:
    if isinstance(stmt, ast.Assign):
        return [t for target in stmt.targets for t in (target.elts if isinstance(target, ast.Tuple) else [target])]
    if isinstance(stmt, (ast.AnnAssign, ast.AugAssign)):
        return [stmt.target]
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return [ast.Name(stmt.name)]
    return []


def shape_figures() -> dict:
    trees = modules()
    broker_users = sorted(path for path, tree in trees.items() if path.startswith("web/")
                          and path not in ("web/broker.py", "web/server.py") and "web.broker" in imported(tree))
    many = [f"{name} ({n})" for name, n in collaborators(trees) if n > 5]
    return {"web modules that import the broker (besides the composition root)": broker_users,
            "objects wired after they are made": late_bindings(trees),
            "constructors given more than 5 collaborators": many,
            "longest import chain (web)": import_depth(trees, "web.server"),
            "longest import chain (brain)": import_depth(trees, "brain.ollama_worker")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trace = trace_figures(record(Path(tmp)))
    shape = shape_figures()
    if args.json:
        json.dump(trace | shape, sys.stdout, indent=1)
        return
    calls_only = set(trace["calls only"])
    per_file = Counter(a.split(":")[0] + " -> " + b.split(":")[0] + ("" if (a, b) in calls_only else " +")
                       for a, b in trace["edges"])
    print("One chat message through the web and the brain (plain reply, fake Ollama):")
    for key in ("files", "functions", "cross-file call edges (function to function)", "cross-file call edges (file to file)",
                "of those, into files that call no other file", "cross-file edges with resumptions (file to file)"):
        print(f"  {key}: {trace[key]}")
    print(f"  files that call each other round: {len(trace['files that call each other round (calls only)'])} groups")
    for group in trace["files that call each other round (calls only)"]:
        print(f"    {' ⇄ '.join(group)}")
    print("  cross-file edges, by pair of files (calls; + also resumed):")
    for pair, n in sorted(per_file.items()):
        print(f"    {pair}: {n}")
    for key, value in shape.items():
        if key.startswith("longest"):
            print(f"{key}: {len(value)} modules: {' → '.join(value)}")
        else:
            print(f"{key}: {len(value)}")
            for item in value:
                print(f"  {item}")


if __name__ == "__main__":
    main()
