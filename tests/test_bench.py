"""The benchmark harness's bookkeeping: sizes, the plan, medians and ratios, the generated docs section.

The measurements themselves are minutes long and run by `make bench`; one tiny measurement here
checks that a step runs in its own process and reports its peak memory.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import load_bench

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    return load_bench("run")


def test_sizes(bench):
    assert [bench.parse_size(s) for s in ("10k", "100K", "1M", "2500", "1.5k")] == [
        10_000,
        100_000,
        1_000_000,
        2_500,
        1_500,
    ]
    assert [bench.size_label(u) for u in (10_000, 1_000_000, 2_500)] == ["10k", "1M", "2500"]
    with pytest.raises(ValueError, match="not a size"):
        bench.parse_size("lots")


def test_plan_alternates_engines_and_repeats_less_at_1m(bench):
    opts = bench.Options(sizes=[10_000, 1_000_000], repeats=3, repeats_large=1, buckets_large=2)
    steps = [label for label, _ in bench.plan_steps(opts, pg=True)]
    funnel_10k = [s for s in steps if s.startswith("10k: funnel")]
    assert funnel_10k == [
        "10k: funnel pandas 1/3",
        "10k: funnel duckdb 1/3",
        "10k: funnel duckdb 2/3",
        "10k: funnel pandas 2/3",
        "10k: funnel pandas 3/3",
        "10k: funnel duckdb 3/3",
    ]
    # At 1M the funnel runs in user buckets, one process each (as the DAG's bucket tasks).
    assert [s for s in steps if s.startswith("1M: funnel")] == [
        "1M: funnel pandas 1/1 bucket 1/2",
        "1M: funnel pandas 1/1 bucket 2/2",
        "1M: funnel duckdb 1/1 bucket 1/2",
        "1M: funnel duckdb 1/1 bucket 2/2",
    ]
    tasks = [t for _, t in bench.plan_steps(opts, pg=True) if t.get("buckets")]
    assert [t["bucket"] for t in tasks] == [0, 1, 0, 1]
    assert "1M: publish postgresql 1/1" in steps
    assert not any("postgresql" in label for label, _ in bench.plan_steps(opts, pg=False))


def _world(users, pandas, duckdb, ingest, sqlite_rows_s, buckets=1):
    def run(s, **kw):
        return {"seconds": s, "cpu_seconds": s, "peak_rss_mb": 100.0 * users / 1e5, **kw}

    def funnel(times):  # each repeat's time split evenly over its bucket processes
        return [
            run(t / buckets, load_inputs_seconds=1.0, exposures=users * 60 // buckets, repeat=r)
            for r, t in enumerate(times)
            for _ in range(buckets)
        ]

    return {
        "users": users,
        "days": 20,
        "ingest": [run(ingest, rows_per_s=1.0)],
        "funnel": {"pandas": funnel(pandas), "duckdb": funnel(duckdb)},
        "publish": {
            "sqlite": [run(1.0, rows=int(sqlite_rows_s), rows_per_s=sqlite_rows_s)],
            "postgresql": [],
        },
    }


def test_summary_ratios_and_docs_section(bench, tmp_path):
    results = {
        "generated_at": "2026-01-01 00:00 UTC",
        "machine": {
            "cpu": "test cpu",
            "cores": 2,
            "ram_gb": 8,
            "python": "3.11",
            "platform": "linux",
            "libraries": {"pandas": "3"},
        },
        "options": {
            "sizes": [100_000, 1_000_000],
            "days": 20,
            "repeats": 3,
            "repeats_large": 1,
            "large_from_users": 1_000_000,
        },
        "worlds": {
            "100k": _world(100_000, [2.0, 9.0, 4.0], [5.0, 5.0, 8.0], 10.0, 250_000),
            "1M": _world(1_000_000, [40.0], [50.0], 100.0, 150_000, buckets=4),
        },
        "matching": {"queries_per_s": 600_000},
        "parquet_ingest": {"rows_per_s": 900_000, "ratio_vs_read_write": 2.0},
    }
    s = bench.summarise(results)
    assert s["worlds"]["100k"]["funnel_ratio_pandas_vs_duckdb"] == pytest.approx(4.0 / 5.0)
    assert s["growth_1m_vs_100k"]["funnel_pandas"] == pytest.approx(10.0)
    assert s["peak_memory_1m_mb"] == pytest.approx(1000.0)  # the largest bucket process
    assert s["worlds"]["1M"]["funnel_buckets"] == 4
    assert s["worlds"]["1M"]["load_inputs_seconds"] == pytest.approx(4.0)  # summed over buckets
    results["summary"] = s
    text = bench.render(results)
    assert "| funnel at 100k users ≤ 1.0x DuckDB (aim 0.7x) | 0.80x | met |" in text
    assert "| growth 1M / 100k, funnel pandas ≤ 11x | 10.0x | met |" in text
    assert "| 1M users × 20 d (funnel in 4 user buckets) | 60,000,000 |" in text
    assert (
        "publish SQLite ≥ 200k rows/s (1M world) | 150k rows/s (0.75x target) | **missed** |"
        in text
    )
    assert "matching ≥ 500k queries/s on one core | 600k queries/s (1.20x target) | met |" in text
    assert "Parquet exposure ingest ≥ 1M rows/s | 900k rows/s" in text

    page = tmp_path / "benchmarks.md"
    page.write_text(f"# B\n\nintro\n\n{bench.DOCS_BEGIN}\nold\n{bench.DOCS_END}\n\nafter\n")
    bench.write_docs(results, page)
    bench.write_docs(results, page)  # idempotent: one section, hand-written text kept
    out = page.read_text()
    assert out.count(bench.DOCS_BEGIN) == 1 and "old" not in out
    assert out.startswith("# B\n\nintro\n\n") and out.endswith("\n\nafter\n")


def test_a_step_runs_in_its_own_process(bench, tmp_path):
    out = bench.measure(
        {"kind": "parquet_ingest", "rows": 1_000, "repeats": 1, "tmp": str(tmp_path)}
    )
    assert out["rows"] == 1_000 and out["rows_per_s"] > 0 and out["reference_seconds"] > 0
    assert 20 < out["peak_rss_mb"] < 4_000
