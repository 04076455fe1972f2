"""The benchmark's main figures as pictures (PNG, matplotlib), linked from BENCHMARKS.md, so a
reader sees the curves at a glance: what the system adds to the first token and to each chunk as
concurrent sessions grow, what it delivers, and what it costs in memory.

Drawn from the concurrent-sessions section's figures (`Bench.scaled`, by number of sessions) and
the floor measured in the same run (read straight from the fake over HTTP).
"""
from pathlib import Path

OUT = Path("docs") / "bench"


def draw(scaled: dict[int, dict], direct: dict, direct_ttft: dict, root: Path) -> list[tuple[str, Path]]:
    "Write the pictures under root/docs/bench; returns (caption, path relative to root) for each."
    import matplotlib
    matplotlib.use("Agg")  # no screen here, nor needed
    import matplotlib.pyplot as plt

    sessions = sorted(scaled)
    if not sessions:
        return []
    (root / OUT).mkdir(parents=True, exist_ok=True)

    def added(key: str, floor: dict, pct: str) -> list[float]:
        return [max(scaled[n][key][pct] - floor[pct], 0.001) for n in sessions]

    charts = [
        ("first-token.png", "Time to first token added by the system (ms, log scale)",
         [("p50", added("ttft", direct_ttft, "p50")), ("p99", added("ttft", direct_ttft, "p99"))], True),
        ("chunk-latency.png", "Per-chunk latency added by the system (ms, log scale)",
         [("p50", added("latency", direct, "p50")), ("p99", added("latency", direct, "p99"))], True),
        ("throughput.png", "Chunks delivered per second",
         [("chunks/s", [scaled[n]["rate"] for n in sessions])], False),
        ("memory.png", "Resident memory after the burst (MB)",
         [("web", [scaled[n]["web_rss"] for n in sessions]), ("brain", [scaled[n]["brain_rss"] for n in sessions])], False),
    ]
    written = []
    for name, title, series, log in charts:
        fig, ax = plt.subplots(figsize=(5.5, 3.4), dpi=110)
        for label, values in series:
            ax.plot(sessions, values, marker="o", label=label)
        ax.set_xscale("log")
        if log:
            ax.set_yscale("log")
        ax.set_xticks(sessions, [str(n) for n in sessions])
        ax.set_xlabel("concurrent sessions")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(root / OUT / name)
        plt.close(fig)
        written.append((title, OUT / name))
    return written


def markdown(pictures: list[tuple[str, Path]]) -> str:
    "A BENCHMARKS.md section showing the pictures."
    return "\n".join(["### Pictures", "", *(f"![{caption}]({path.as_posix()})" for caption, path in pictures)])
