"""
### seedfunnel_attribution

The daily funnel run (SPEC 5-6): plan -> funnel per user bucket -> reduce -> validate -> publish.

- **Day**: the `day` param (`YYYY-MM-DD`) when given, else the Asia/Shanghai date of the run's
  `data_interval_start`: the same daily timetable as `seedfunnel_ingest`.
- **Tasks**: `resolve_day` -> `plan` (ingests every delivery up to the day not yet ingested, so a
  missed day catches up by itself, and decides the days whose figures can have changed:
  `pipelines.runner.stage_plan`) -> `buckets` (bucket count from `SEEDFUNNEL_BUCKETS`, read at
  run time) -> `funnel_bucket` (mapped, one per user bucket) -> `reduce` (writes only the days
  whose rows changed, records them in `restatements`; refuses if another run ingested meanwhile)
  -> `validate` (GX suites; a critical failure stops the run before `publish`, docs/quality.md)
  -> `publish` -> `report` (the day's HTML report, docs/report.md) -> `cleanup`.
- Re-running an old day's DAG run ingests what is new and recomputes through the latest delivery:
  it never takes later knowledge away (SPEC 5, Arrival).
- **Inlets / outlets**: the lake assets `seedfunnel://lake/<table>` in, the warehouse assets
  `seedfunnel://warehouse/<table>` out. XCom carries paths and counts only.

See `docs/airflow.md`.
"""

from __future__ import annotations

import os
from datetime import date, timedelta

import pendulum
from airflow.sdk import Asset, CronTriggerTimetable, Param, dag, get_current_context, task

from pipelines import schemas

TIMEZONE = "Asia/Shanghai"
#: Between retries; SEEDFUNNEL_RETRY_DELAY_SECONDS (pipelines.settings.ENV_RETRY_DELAY) at parse time.
RETRY_DELAY = timedelta(seconds=float(os.environ.get("SEEDFUNNEL_RETRY_DELAY_SECONDS", "300")))
#: Lake tables the funnel reads; ingestion emits them.
INPUT_ASSETS = [Asset(f"seedfunnel://lake/{t.name}") for t in schemas.INPUT_TABLES]
#: Warehouse tables stage_publish writes: the funnel tables and the logs but dq_results.
WAREHOUSE_ASSETS = {
    t.name: Asset(f"seedfunnel://warehouse/{t.name}")
    for t in schemas.WAREHOUSE_TABLES
    if t is not schemas.DQ_RESULTS
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

    @task(inlets=INPUT_ASSETS)
    def plan(day: str) -> dict:
        """Ingest what is pending up to the day; the days to recompute (pipelines.runner.Plan)."""
        from pipelines.runner import stage_plan
        from pipelines.settings import Settings

        return stage_plan(Settings(), date.fromisoformat(day))

    @task
    def buckets() -> list[dict[str, int]]:
        """One mapping per user bucket; the count (SEEDFUNNEL_BUCKETS) is read once, at run time."""
        from pipelines.settings import Settings

        n = Settings().buckets
        # Every mapped instance gets the same count from here, whatever its worker's environment.
        return [{"bucket": b, "buckets": n} for b in range(n)]

    @task
    def funnel_bucket(plan: dict, bucket: int, buckets: int) -> str:
        """Every funnel table for one user bucket over the plan's days; returns its folder."""
        from pipelines.runner import stage_funnel_bucket
        from pipelines.settings import Settings

        engine = get_current_context()["params"]["engine"]
        return stage_funnel_bucket(Settings(), plan, bucket, buckets, engine)

    @task
    def reduce(plan: dict, parts: list[str]) -> dict[str, int]:
        """Merge the bucket outputs; write the days whose rows changed; returns days per table."""
        from pipelines.runner import stage_reduce
        from pipelines.settings import Settings

        # A slice fetches every mapped result in one call (iterating probes past the end).
        return stage_reduce(Settings(), plan, list(parts[:]))

    @task
    def validate(plan: dict) -> dict:
        """Run the quality suites on what the run would publish (GX); a critical failure stops the run."""
        from airflow.sdk.exceptions import AirflowFailException

        from pipelines.quality.validate import QualityGateError
        from pipelines.runner import stage_validate
        from pipelines.settings import Settings

        try:
            return stage_validate(Settings(), plan)
        except QualityGateError as e:
            # The data, not the worker, is wrong: retrying cannot help, and publish must not run.
            raise AirflowFailException(str(e)) from e

    @task(outlets=list(WAREHOUSE_ASSETS.values()))
    def publish(plan: dict) -> dict[str, int]:
        """Publish every changed day not yet published in one transaction; returns rows per table."""
        from pipelines.runner import stage_publish
        from pipelines.settings import Settings

        counts = stage_publish(Settings(), plan)
        day = plan["day"]
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
    planned = plan(day)
    parts = funnel_bucket.partial(plan=planned).expand_kwargs(buckets())
    reduced = reduce(planned, parts)
    reduced >> validate(planned) >> publish(planned) >> report(day) >> cleanup(parts)


seedfunnel_attribution()
