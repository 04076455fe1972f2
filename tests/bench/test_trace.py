"""bench/trace.py's figures, on made-up traces and code (the process run itself is `make trace`)."""
import ast

from bench.trace import collaborators, cycles, import_depth, late_bindings, trace_figures


def test_cross_file_edges_are_counted_once_per_pair_of_functions_and_of_files():
    runs = [{"functions": ["web/a.py:f", "web/a.py:g", "web/b.py:h"],
             "calls": [["web/a.py:f", "web/a.py:g"], ["web/a.py:f", "web/b.py:h"], ["web/a.py:g", "web/b.py:h"]],
             "resumed": [["web/b.py:h", "web/d.py:m"]]},
            {"functions": ["web/b.py:h", "shared/c.py:k"], "calls": [["web/b.py:h", "shared/c.py:k"]]}]
    figures = trace_figures(runs)
    assert figures["files"] == 3 and figures["functions"] == 4
    assert figures["cross-file call edges (function to function)"] == 3
    assert figures["cross-file call edges (file to file)"] == 2
    assert figures["of those, into files that call no other file"] == 1, "b.py calls c.py; c.py calls none"
    assert figures["cross-file edges with resumptions (file to file)"] == 3, "an await chain taken up again"
    assert figures["files that call each other round (calls only)"] == []


def test_files_that_call_each_other_round_are_grouped_and_a_one_way_chain_is_not():
    assert cycles({("a", "b"), ("b", "c"), ("c", "d")}) == [], "one direction"
    assert cycles({("a", "b"), ("b", "a"), ("b", "c"), ("c", "d"), ("d", "b"), ("e", "a")}) == [["a", "b", "c", "d"]]
    assert cycles({("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")}) == [["a", "b"], ["c", "d"]]


def test_late_binding_is_an_attribute_set_after_building_or_a_closure_over_a_later_local():
    root = ast.parse(
        "def wire():\n"
        "    a = A(lambda: b.go())\n"
        "    b = B(a)\n"
        "    a.listener = b\n"
        "    app.state.x = 1\n"
        "    return b\n")
    empty = ast.parse("")
    found = late_bindings({"web/server.py": root, "brain/ollama_worker.py": empty})
    assert found == ["web/server.py:2 closure over b, made later", "web/server.py:4 a.listener = …"]
    assert late_bindings({"web/server.py": ast.parse("def wire():\n    b = B()\n    a = A(b)\n"),
                          "brain/ollama_worker.py": empty}) == []


def test_import_depth_follows_top_level_project_imports():
    trees = {"web/server.py": ast.parse("import os\nfrom web.tabs import Tabs\nfrom shared.config import S"),
             "web/tabs.py": ast.parse("from shared.config import S\nimport web.frames"),
             "web/frames.py": ast.parse(""), "shared/config.py": ast.parse("")}
    assert import_depth(trees, "web.server") in (["web.server", "web.tabs", "shared.config"],
                                                 ["web.server", "web.tabs", "web.frames"])


def test_collaborators_counts_the_objects_constructors_and_wiring_are_given_not_plain_values():
    tree = ast.parse("class A:\n    def __init__(self, x: Bus, y, *, z: int = 1, w: str | None = None, v: dict = {}): ...\n"
                     "def wire_all(a: Settings, b: Callable[[str], None] | None): ...\ndef other(a, b, c): ...\n")
    assert collaborators({"web/a.py": tree}) == [("web/a.py:A", 2), ("web/a.py:wire_all", 2)]


def test_the_hook_tells_a_coroutine_taken_up_again_from_one_called():
    import asyncio
    import sys
    from pathlib import Path

    from bench.trace_hook import Recorder

    recorder = Recorder(Path("/nonexistent/out.json"))
    recorder.name = lambda code: code.co_name if code.co_name in ("outer", "inner", "main") else None

    async def inner():
        await asyncio.sleep(0)

    async def outer():
        await inner()

    async def main():
        await outer()
        await outer()
    recorder.on = True
    sys.setprofile(recorder.hook)
    try:
        asyncio.run(main())
    finally:
        sys.setprofile(None)
    assert recorder.calls == {("main", "outer"), ("outer", "inner")}
    assert ("outer", "inner") in recorder.resumed, "inner, taken up again after its sleep"
