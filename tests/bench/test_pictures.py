"""The benchmark's pictures (bench/pictures.py): one PNG per main figure, from a run's numbers."""
from bench import pictures


def run_figures(n):
    pct = lambda base: {"p50": base, "p99": base * 3, "max": base * 5}
    return {"ttft": pct(3 + n / 10), "latency": pct(1 + n / 50), "rate": 40.0 * n, "web_rss": 80 + n / 5, "brain_rss": 60 + n / 10}


def test_each_main_figure_is_drawn_and_shown_in_markdown(tmp_path):
    scaled = {n: run_figures(n) for n in (1, 10, 100)}
    shown = pictures.draw(scaled, {"p50": 0.5, "p99": 1.0}, {"p50": 2.0, "p99": 4.0}, tmp_path)
    assert [p.name for _, p in shown] == ["first-token.png", "chunk-latency.png", "throughput.png", "memory.png"]
    for _, path in shown:
        assert (tmp_path / path).read_bytes().startswith(b"\x89PNG"), path
    assert "![Chunks delivered per second](docs/bench/throughput.png)" in pictures.markdown(shown)


def test_a_run_without_the_sessions_section_draws_nothing(tmp_path):
    assert pictures.draw({}, {}, {}, tmp_path) == [] and not (tmp_path / "docs").exists()
