"""BENCHMARKS.md is written by `make bench` (the whole file), and by `make eval` and `make bench-ab`
(a section each). Each section of a command's own lives between markers, so the commands keep each
other's."""
import re

from bench.llama_ollama import QWEN, QWEN_15
from tests.system import ROOT

FILE = ROOT / "BENCHMARKS.md"


# The sections other commands write, which `make bench` keeps: `make eval`'s, one per model, and `make bench-ab`'s.
EVAL_SECTIONS = {QWEN: "eval", QWEN_15: "eval 1.5b"}
KEPT = (*EVAL_SECTIONS.values(), "ab")


def _block(name: str, text: str) -> str:
    return f"<!-- {name}: begin -->\n{text.strip()}\n<!-- {name}: end -->"


def section(name: str) -> str:
    "The section as last written, markers included; \"\" when there is none."
    found = re.search(rf"<!-- {name}: begin -->.*?<!-- {name}: end -->", FILE.read_text() if FILE.exists() else "", re.S)
    return found.group(0) if found else ""


def splice(name: str, text: str) -> None:
    "Put `text` in as the section `name`, replacing the one before (or at the end of the file)."
    old, new = section(name), _block(name, text)
    content = FILE.read_text() if FILE.exists() else "# Benchmarks\n"
    FILE.write_text(content.replace(old, new) if old else content.rstrip("\n") + "\n\n" + new + "\n")
