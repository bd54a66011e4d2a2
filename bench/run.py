"""seedfunnel benchmarks: figures as ratios against a reference measured in the same run.

- ingest: Parquet exposures through ``ingest_day`` vs the floor of a bare pyarrow read + write of
  the same file;
- matching: ``Matcher.search_categories`` (normalise + match) in queries/s on one core;
- funnel: the pandas engine vs the DuckDB reference engine on the same inputs (alternating runs,
  median of repeats).

Usage: ``python bench/run.py [--users N] [--days D] [--exposures N] [--repeats R] [--out DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from pipelines import runner  # noqa: E402
from pipelines.funnel import engine as pandas_engine  # noqa: E402
from pipelines.ingest.day import ingest_day, ingest_days  # noqa: E402
from pipelines.oracle import duckdb_engine  # noqa: E402
from pipelines.reference import load_reference  # noqa: E402
from pipelines.settings import Settings  # noqa: E402
from pipelines.simulate import simulate_world  # noqa: E402
from pipelines.text.matcher import Matcher  # noqa: E402

DAY = date(2026, 1, 1)


def _timed(fn, *args, **kw) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def _exposures(n: int, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    t0 = int(pd.Timestamp(DAY, tz="Asia/Shanghai").timestamp())
    kinds = np.array(["impression", "read", "like", "collect", "comment", "share"])
    return pa.table(
        {
            "platform": pa.array(np.full(n, "douyin")),
            "note_id": pa.array(np.char.add("n", rng.integers(0, 30_000, n).astype(str))),
            "ext_user_id": pa.array(np.char.add("e", rng.integers(0, 1_000_000, n).astype(str))),
            "event_time": pa.array(t0 + rng.integers(0, 86_400, n)),
            "kind": pa.array(kinds[rng.integers(0, len(kinds), n)]),
            "dwell_ms": pa.array(rng.integers(0, 60_000, n)),
        }
    )


def bench_ingest(n: int, repeats: int) -> dict:
    """Parquet exposures ingest vs a bare pyarrow read + write of the same file."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folder = root / "landing" / "exposures" / "douyin" / f"dt={DAY}"
        folder.mkdir(parents=True)
        src = folder / "exposures.parquet"
        pq.write_table(_exposures(n), src)
        settings = Settings(home=root / "home", landing=root / "landing")
        ours, ref = [], []
        for _ in range(repeats):
            ref.append(_timed(lambda: pq.write_table(pq.read_table(src), root / "copy.parquet", compression="zstd"))[0])
            ours.append(_timed(ingest_day, settings, DAY, run_id="bench")[0])
        t, r = statistics.median(ours), statistics.median(ref)
        return {"rows": n, "seconds": t, "rows_per_s": n / t, "reference_seconds": r, "ratio_vs_read_write": t / r}


def bench_matching(n: int, repeats: int) -> dict:
    ref = load_reference(Settings().seeds)
    matcher = Matcher.from_reference(ref)
    rng = np.random.default_rng(1)
    aliases = np.array([a for s in ref.brands["aliases"] for a in s.split("|")])
    keywords = np.array([k for s in ref.categories["keywords"] for k in s.split("|")])
    fillers = np.array(["推荐", "平价", "学生党", "真的好用吗", "测评", "2026新款", "", "怎么样"])
    queries = pd.Series(
        np.char.add(
            np.char.add(aliases[rng.integers(0, len(aliases), n)], " "),
            np.char.add(keywords[rng.integers(0, len(keywords), n)], fillers[rng.integers(0, len(fillers), n)]),
        )
    )
    searches = pd.DataFrame({"search_id": [f"s{i}" for i in range(n)], "query": queries})
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        matcher.search_categories(searches, ref.brands)
        times.append(time.process_time() - t0)
    t = statistics.median(times)
    return {"queries": n, "cpu_seconds": t, "queries_per_s": n / t}


def bench_funnel(users: int, days: int, repeats: int) -> dict:
    """pandas engine vs the DuckDB reference on the same inputs, alternating, medians."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t_sim, _ = _timed(
            simulate_world, root / "landing", users=users, days=days, start=DAY, seed=5, seeds_dir=Settings().seeds
        )
        settings = Settings(home=root / "home", landing=root / "landing")
        end = DAY + timedelta(days=days - 1)
        t_ing, _ = _timed(ingest_days, settings, DAY, end)
        inputs = runner.load_inputs(settings, end, since=DAY)
        ours, ref = [], []
        for _ in range(repeats):
            ours.append(_timed(pandas_engine.compute, inputs, settings.funnel, DAY, end, "bench")[0])
            ref.append(_timed(duckdb_engine.compute, inputs, settings.funnel, DAY, end, "bench")[0])
        t, r = statistics.median(ours), statistics.median(ref)
        return {
            "users": users,
            "days": days,
            "exposures": len(inputs.exposures),
            "searches": len(inputs.searches),
            "simulate_seconds": t_sim,
            "ingest_seconds": t_ing,
            "pandas_seconds": t,
            "duckdb_seconds": r,
            "ratio_pandas_vs_duckdb": t / r,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=10)
    ap.add_argument("--exposures", type=int, default=2_000_000)
    ap.add_argument("--queries", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "out")
    a = ap.parse_args()
    results = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()},
        "ingest_parquet_exposures": bench_ingest(a.exposures, a.repeats),
        "matching": bench_matching(a.queries, a.repeats),
        "funnel": bench_funnel(a.users, a.days, a.repeats),
    }
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
