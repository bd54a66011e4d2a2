"""
### seedfunnel_ingest

Daily ingestion of one delivery day of the landing zone into the Parquet lake (SPEC 1-3).

- **Day**: the `day` param (`YYYY-MM-DD`) when given, else the Asia/Shanghai date of the run's
  `data_interval_start`. The 01:00 Asia/Shanghai run covers the day that just ended.
- **Task**: `resolve_day` -> `ingest` (`pipelines.runner.stage_ingest`: every delivery up to the
  day that is new or whose files changed, so a missed day catches up by itself; bad rows go to
  quarantine, unreadable files are counted, the run goes on). `seedfunnel_attribution` ingests
  the same way before it computes, so this DAG only makes deliveries visible in the lake early.
- **Outlets**: one asset per lake table, `seedfunnel://lake/<table>`, each event carrying the day.

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
#: Lake tables stage_ingest writes: the input tables and the ingestion logs.
LAKE_TABLES = [t.name for t in (*schemas.INPUT_TABLES, schemas.QUARANTINE, schemas.INGEST_FILES)]
LAKE_ASSETS = {name: Asset(f"seedfunnel://lake/{name}") for name in LAKE_TABLES}


@dag(
    dag_id="seedfunnel_ingest",
    # A one-day interval ending at the trigger: the 01:00 run's data_interval_start is 01:00 of
    # the day before, whose Asia/Shanghai date is the day to ingest.
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
            description="Delivery day to ingest (YYYY-MM-DD); empty: the run's data interval.",
        )
    },
    doc_md=__doc__,
    tags=["seedfunnel", "ingest"],
)
def seedfunnel_ingest():
    @task
    def resolve_day() -> str:
        """The run's business day: the ``day`` param, else data_interval_start in Asia/Shanghai."""
        from pipelines.dag_tasks import business_day

        return business_day()

    @task(outlets=list(LAKE_ASSETS.values()))
    def ingest(day: str) -> dict:
        """Ingest every delivery up to the day not yet ingested; returns row counts per lake table."""
        import logging

        from pipelines.runner import stage_ingest
        from pipelines.settings import Settings

        result = stage_ingest(Settings(), date.fromisoformat(day))
        for error in result["errors"]:
            logging.getLogger(__name__).warning("unreadable file (quarantined): %s", error)
        events = get_current_context()["outlet_events"]
        zero = {"files": 0, "input_rows": 0, "accepted_rows": 0, "quarantined_rows": 0}
        for name, asset in LAKE_ASSETS.items():
            counts = {**zero, **result["totals"].get(name, {})}
            events[asset].extra = {"day": day, "deliveries": result["deliveries"], **counts}
        return {
            "deliveries": result["deliveries"],
            "totals": result["totals"],
            "unreadable_files": len(result["errors"]),
        }

    ingest(resolve_day())


seedfunnel_ingest()
