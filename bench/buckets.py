"""Per-bucket cost of the funnel step: time and peak memory of one bucket task by bucket count.

For a simulated world (default 100k users x 20 days, simulated and ingested once, cached under
``--work``), the run of the last day is split into n user buckets for each n of ``--buckets``
(default 1,2,4,8) and ``runner.stage_funnel_bucket`` (the body of the DAG's mapped
``funnel_bucket`` task) is run for ``--sample`` buckets of each n, each in a fresh Python
process: its time and its peak resident memory (``ru_maxrss`` of that child, from ``os.wait4``)
are what one worker slot spends on one bucket. A bucket task reads only its own users' events
(``runner.load_inputs(..., bucket=b, buckets=n)`` filters the lake file by file) and matches only
its searches; notes and id links it reads whole. Reading and matching all the inputs (what one
bucket reads) is measured alone the same way; ``stage_reduce`` over the n bucket outputs too; a
bare import of the runner gives the interpreter's share of the memory.

Output: ``bench/out/buckets.json`` and a Markdown table on stdout (quoted in docs/scaling.md).
Usage: ``python bench/buckets.py [--users 100000] [--days 20] [--buckets 1,2,4,8] [--sample 2]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

START = date(2026, 1, 1)
SEED = 5

# Runs in a fresh interpreter: argv[1] is a JSON job; prints one JSON line.
CHILD = r"""
import json, sys, time
job = json.loads(sys.argv[1])
t0 = time.perf_counter()
from datetime import date
from pathlib import Path
from pipelines import runner
from pipelines.settings import Settings
out = {"import_s": time.perf_counter() - t0}
settings = Settings(home=job["home"], landing=job["landing"], buckets=job["buckets"])
day = date.fromisoformat(job["day"])
if job["kind"] == "load":
    # What a one-bucket task reads: all the inputs, matched.
    t = time.perf_counter()
    inputs = runner.load_inputs(settings, day)
    out["load_s"] = time.perf_counter() - t
    out["input_rows"] = {k: int(len(v)) for k, v in vars(inputs).items() if hasattr(v, "__len__")}
elif job["kind"] == "bucket":
    t = time.perf_counter()
    folder = runner.stage_funnel_bucket(settings, day, job["bucket"], job["buckets"], run_id=job["run_id"])
    out["stage_s"] = time.perf_counter() - t
    out["folder"] = folder
    out["output_mb"] = sum(p.stat().st_size for p in Path(folder).glob("*.parquet")) / 2**20
elif job["kind"] == "fill":
    # The unmeasured buckets, for the reduce (untimed; the same stage as a bucket task).
    folders = [
        runner.stage_funnel_bucket(settings, day, b, job["buckets"], run_id=job["run_id"])
        for b in job["todo"]
    ]
    out["folders"] = folders
elif job["kind"] == "reduce":
    t = time.perf_counter()
    runner.stage_reduce(settings, day, job["parts"], run_id=job["run_id"])
    out["stage_s"] = time.perf_counter() - t
print("RESULT " + json.dumps(out))
"""


def child(job: dict) -> dict:
    """Run CHILD in a fresh process; its result plus wall seconds and peak RSS (MiB)."""
    t = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, json.dumps(job)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout = proc.stdout.read()
    stderr = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(
            f"bench child {job['kind']} failed ({proc.returncode}):\n{stderr[-4000:]}"
        )
    result = json.loads(lines[-1][len("RESULT ") :])
    return {**result, "wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024}


def prepare_world(work: Path, users: int, days: int) -> tuple[Path, Path]:
    """Simulate and ingest the world once; returns (home, landing)."""
    from pipelines import runner
    from pipelines.settings import Settings
    from pipelines.simulate import simulate_world

    world = work / f"world-{users}u-{days}d-s{SEED}"
    home, landing = world / "home", world / "landing"
    done = world / ".ingested"
    if not done.exists():
        settings = Settings(home=home, landing=landing)
        print(f"simulating {users} users x {days} days into {landing}", file=sys.stderr)
        simulate_world(
            landing, users=users, days=days, start=START, seed=SEED, seeds_dir=settings.seeds
        )
        for i in range(days):
            print(f"ingesting day {i + 1}/{days}", file=sys.stderr)
            runner.stage_ingest(settings, START + timedelta(days=i))
        done.write_text(datetime.now(UTC).isoformat())
    return home, landing


def run(users: int, days: int, bucket_counts: list[int], sample: int, work: Path) -> dict:
    home, landing = prepare_world(work, users, days)
    day = START + timedelta(days=days - 1)
    base = {"home": str(home), "landing": str(landing), "day": day.isoformat()}
    baseline = child({**base, "kind": "import", "buckets": 1})
    load = child({**base, "kind": "load", "buckets": 1})
    rows = []
    for n in bucket_counts:
        measured = []
        for b in range(min(sample, n)):
            print(f"{n} buckets: bucket {b}", file=sys.stderr)
            job = {**base, "kind": "bucket", "buckets": n, "bucket": b, "run_id": f"bench-{n}"}
            measured.append(child(job))
        folders = [m["folder"] for m in measured]
        if len(folders) < n:
            todo = list(range(len(folders), n))
            fill = child(
                {**base, "kind": "fill", "buckets": n, "todo": todo, "run_id": f"bench-{n}"}
            )
            folders += fill["folders"]
        reduce = child(
            {**base, "kind": "reduce", "buckets": n, "parts": folders, "run_id": f"bench-{n}"}
        )
        rows.append(
            {
                "buckets": n,
                "sampled": len(measured),
                "stage_s": statistics.median(m["stage_s"] for m in measured),
                "wall_s": statistics.median(m["wall_s"] for m in measured),
                "peak_rss_mb": max(m["peak_rss_mb"] for m in measured),
                "output_mb": statistics.median(m["output_mb"] for m in measured),
                "reduce_s": reduce["stage_s"],
                "reduce_peak_rss_mb": reduce["peak_rss_mb"],
            }
        )
    return {
        "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}",
        "load_average": os.getloadavg(),
        "world": {"users": users, "days": days, "seed": SEED, "day": day.isoformat()},
        "import_only": {"seconds": baseline["import_s"], "peak_rss_mb": baseline["peak_rss_mb"]},
        "load": {
            "seconds": load["load_s"],
            "peak_rss_mb": load["peak_rss_mb"],
            "input_rows": load["input_rows"],
        },
        "rows": rows,
    }


def markdown(results: dict) -> str:
    w, load = results["world"], results["load"]
    rows = load["input_rows"]
    lines = [
        f"World: {w['users']:,} users x {w['days']} days (seed {w['seed']}), run of {w['day']}: "
        f"{rows['exposures']:,} exposures, {rows['searches']:,} searches, {rows['orders']:,} orders "
        f"in the lookback. Generated {results['generated']}; {results['machine']}; load average "
        f"{', '.join(f'{x:.1f}' for x in results['load_average'])}.",
        "",
        f"Reading and matching all these inputs (a one-bucket task's first step): {load['seconds']:.1f} s, "
        f"{load['peak_rss_mb']:.0f} MiB peak; a task of n buckets reads its users' events only. "
        f"Importing the runner alone: {results['import_only']['peak_rss_mb']:.0f} MiB.",
        "",
        "| buckets | one bucket task s (process wall s) | peak RSS per bucket task MiB | "
        "output per bucket MiB | reduce s (peak MiB) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in results["rows"]:
        lines.append(
            f"| {r['buckets']} | {r['stage_s']:.1f} ({r['wall_s']:.1f}) | {r['peak_rss_mb']:.0f} | "
            f"{r['output_mb']:.1f} | {r['reduce_s']:.1f} ({r['reduce_peak_rss_mb']:.0f}) |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--buckets", default="1,2,4,8", help="bucket counts, comma-separated")
    parser.add_argument("--sample", type=int, default=2, help="buckets measured per count")
    parser.add_argument("--work", type=Path, default=REPO / ".seedfunnel" / "bench-buckets")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "buckets.json")
    args = parser.parse_args(argv)
    counts = [int(x) for x in args.buckets.split(",") if x.strip()]
    results = run(args.users, args.days, counts, args.sample, args.work.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(markdown(results))


if __name__ == "__main__":
    main()
