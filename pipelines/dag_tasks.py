"""Task bodies the DAGs share, so each DAG file stays wiring.

Imported inside tasks only, never when a DAG file is parsed (the DagBag test forbids heavy or
networked imports at parse time).
"""

from __future__ import annotations


def business_day() -> str:
    """The running task's business day (``YYYY-MM-DD``): the ``day`` param, else the Asia/Shanghai
    date of the run's ``data_interval_start`` (docs/airflow.md). A run with neither fails at once,
    without retries: retrying cannot invent a day."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from .timeutil import scheduled_day

    ctx = get_current_context()
    day = scheduled_day(ctx["params"].get("day"), ctx.get("data_interval_start"))
    if day is None:
        raise AirflowFailException(
            "this run has no data interval (manual run without a logical date, or asset-"
            'triggered); trigger it with conf {"day": "YYYY-MM-DD"} or a logical date'
        )
    return day.isoformat()
