"""
### seedfunnel_attribution

The daily funnel run (SPEC 5-6): funnel per user bucket -> reduce -> publish to the warehouse.

- **Day**: the `day` param (`YYYY-MM-DD`) when given, else the Asia/Shanghai date of the run's
  `data_interval_start`: the same daily timetable as `seedfunnel_ingest`, so both DAGs' runs of
  one trigger name the same day.
- **Tasks**: `resolve_day` -> `wait_for_ingest` (the lake holds the day's `ingest_files`
  partition, written last by ingestion) -> `plan` (bucket count from `SEEDFUNNEL_BUCKETS`, read
  at run time) -> `funnel_bucket` (mapped, one per user bucket) -> `reduce` -> `validate`
  (GX suites; a critical failure stops the run before `publish`, docs/quality.md) -> `publish`
  -> `report` (the day's HTML report, docs/report.md) -> `cleanup`.
- **Inlets / outlets**: the lake assets `seedfunnel://lake/<table>` in, the warehouse assets
  `seedfunnel://warehouse/<table>` out. XCom carries paths and counts only.

See `docs/airflow.md`.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, get_current_context, task

TIMEZONE = "Asia/Shanghai"
#: Between retries; SEEDFUNNEL_RETRY_DELAY_SECONDS (pipelines.settings.ENV_RETRY_DELAY) at parse time.
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SEEDFUNNEL_RETRY_DELAY_SECONDS", "300")))
#: Lake tables the funnel reads (schemas.INPUT_TABLES); ingestion emits them.
INPUT_ASSETS = [
    Asset(f"seedfunnel://lake/{name}")
    for name in ("notes", "exposures", "id_links", "searches", "orders", "items")
]
#: Warehouse tables stage_publish writes (schemas.FUNNEL_TABLES + quarantine + ingest_files).
WAREHOUSE_ASSETS = {
    name: Asset(f"seedfunnel://warehouse/{name}")
    for name in (
        "fct_touches",
        "fct_search_pairs",
        "fct_seeded_orders",
        "fct_attribution_credits",
        "agg_brand_funnel_daily",
        "agg_conversion_uplift",
        "brand_boost_signals",
        "quarantine",
        "ingest_files",
    )
}


@dag(
    dag_id="seedfunnel_attribution",
    # Same timetable as seedfunnel_ingest (see docs/airflow.md for why not asset-triggered).
    schedule=CronTriggerTimetable("0 1 * * *", timezone=TIMEZONE, interval=timedelta(days=1)),
    start_date=pendulum.datetime(2026, 1, 1, tz=TIMEZONE),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "seedfunnel", "retries": 2, "retry_delay": RETRY_DELAY},
    params={
        "day": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Business day to run (YYYY-MM-DD); empty: the run's data interval.",
        ),
        "engine": Param("pandas", enum=["pandas", "duckdb"], description="Funnel engine."),
    },
    doc_md=__doc__,
    tags=["seedfunnel", "funnel"],
)
def seedfunnel_attribution():
    @task
    def resolve_day() -> str:
        """The run's business day: the ``day`` param, else data_interval_start in Asia/Shanghai."""
        from pipelines.dag_tasks import business_day

        return business_day()

    @task.sensor(poke_interval=300, timeout=6 * 3600, mode="reschedule", inlets=INPUT_ASSETS)
    def wait_for_ingest(day: str) -> bool:
        """True once the lake holds the day's ingest_files partition (ingestion writes it last)."""
        from pipelines import lake
        from pipelines.settings import Settings

        return date.fromisoformat(day) in lake.partitions(Settings().lake, "ingest_files")

    @task
    def plan() -> list[dict[str, int]]:
        """One mapping per user bucket; the count (SEEDFUNNEL_BUCKETS) is read once, at run time."""
        from pipelines.settings import Settings

        n = Settings().buckets
        # Every mapped instance gets the same count from here, whatever its worker's environment.
        return [{"bucket": b, "buckets": n} for b in range(n)]

    @task
    def funnel_bucket(day: str, bucket: int, buckets: int) -> str:
        """Every funnel table for one user bucket; returns the folder of its Parquet files."""
        from pipelines.runner import stage_funnel_bucket
        from pipelines.settings import Settings

        engine = get_current_context()["params"]["engine"]
        return stage_funnel_bucket(Settings(), date.fromisoformat(day), bucket, buckets, engine)

    @task
    def reduce(day: str, parts: list[str]) -> dict[str, int]:
        """Merge the bucket outputs into the day's marts partitions; returns rows per table."""
        from pipelines.runner import stage_reduce
        from pipelines.settings import Settings

        # A slice fetches every mapped result in one call (iterating probes past the end).
        return stage_reduce(Settings(), date.fromisoformat(day), list(parts[:]))

    @task
    def validate(day: str) -> dict:
        """Run the quality suites on what the day would publish (GX); a critical failure stops the run."""
        from airflow.sdk.exceptions import AirflowFailException

        from pipelines.quality.validate import QualityGateError
        from pipelines.runner import stage_validate
        from pipelines.settings import Settings

        try:
            return stage_validate(Settings(), date.fromisoformat(day))
        except QualityGateError as e:
            # The data, not the worker, is wrong: retrying cannot help, and publish must not run.
            raise AirflowFailException(str(e)) from e

    @task(outlets=list(WAREHOUSE_ASSETS.values()))
    def publish(day: str) -> dict[str, int]:
        """Publish the run's days to the warehouse in one transaction; returns rows per table."""
        from pipelines.runner import stage_publish
        from pipelines.settings import Settings

        counts = stage_publish(Settings(), date.fromisoformat(day))
        events = get_current_context()["outlet_events"]
        for name, asset in WAREHOUSE_ASSETS.items():
            events[asset].extra = {"day": day, "rows": counts.get(name, 0)}
        return counts

    @task
    def report(day: str) -> str:
        """Write the day's HTML attribution report from the warehouse; returns its path."""
        from pipelines.runner import stage_report
        from pipelines.settings import Settings

        return stage_report(Settings(), date.fromisoformat(day))

    @task
    def cleanup(parts: list[str]) -> int:
        """Remove the run's bucket scratch folders once published; returns how many went."""
        import shutil
        from pathlib import Path

        runs = {Path(p).parent for p in parts[:]}
        for folder in runs:
            shutil.rmtree(folder, ignore_errors=True)
        return len(runs)

    day = resolve_day()
    planned = plan()
    parts = funnel_bucket.partial(day=day).expand_kwargs(planned)
    wait_for_ingest(day) >> planned
    reduce(day, parts) >> validate(day) >> publish(day) >> report(day) >> cleanup(parts)


seedfunnel_attribution()
