"""The one settings object: where things live and the funnel parameters of SPEC section 5.

Resolution order for every location: explicit argument > environment variable > default.
The warehouse URL additionally honours the Airflow connection ``seedfunnel_warehouse`` when
running inside Airflow (looked up lazily, never at import time).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TIMEZONE = "Asia/Shanghai"
AIRFLOW_CONN_ID = "seedfunnel_warehouse"

ENV_HOME = "SEEDFUNNEL_HOME"
ENV_WAREHOUSE_URL = "SEEDFUNNEL_WAREHOUSE_URL"
ENV_SEEDS = "SEEDFUNNEL_SEEDS"
ENV_LANDING = "SEEDFUNNEL_LANDING"
ENV_BUCKETS = "SEEDFUNNEL_BUCKETS"
#: Name an Airflow worker reports as its hostname (``worker_hostname``); unset: the machine's FQDN.
ENV_WORKER_NAME = "SEEDFUNNEL_WORKER_NAME"
#: Seconds between task retries in the DAGs, read when a DAG file is parsed (default 300).
ENV_RETRY_DELAY = "SEEDFUNNEL_RETRY_DELAY_SECONDS"

#: Kind weights of the brand boost signal (SPEC 5.8).
KIND_WEIGHTS: dict[str, float] = {
    "impression": 0.2,
    "read": 1.0,
    "like": 1.5,
    "collect": 2.0,
    "comment": 2.0,
    "share": 2.5,
}


@dataclass(frozen=True)
class FunnelParams:
    """Parameters of SPEC section 5, with their defaults."""

    seed_window_days: float = 15
    conversion_window_days: float = 3
    min_link_confidence: float = 0.8
    touch_kinds: tuple[str, ...] = ("read", "like", "collect", "comment", "share")
    decay_half_life_days: float = 7
    boost_half_life_days: float = 3
    boost_top_n: int = 50
    kind_weights: tuple[tuple[str, float], ...] = tuple(KIND_WEIGHTS.items())
    #: SPEC 5.10: a unit's activity stratum counts the user's searches (and category orders) in
    #: [t_s - activity_window, t_s).
    activity_window_days: float = 14

    @property
    def seed_window(self) -> timedelta:
        return timedelta(days=self.seed_window_days)

    @property
    def activity_window(self) -> timedelta:
        return timedelta(days=self.activity_window_days)

    @property
    def conversion_window(self) -> timedelta:
        return timedelta(days=self.conversion_window_days)

    @property
    def kind_weight(self) -> dict[str, float]:
        return dict(self.kind_weights)


@dataclass(frozen=True)
class QualityParams:
    """Thresholds of the data-quality checks (docs/quality.md); GX suites read them by name."""

    #: Cross-platform id linking typically covers 30-50% of accounts, and links arrive in weekly
    #: batches: below a quarter the feed is broken, not merely young.
    min_id_link_rate: float = 0.25
    max_orphan_exposure_rate: float = 0.05
    max_unknown_brand_rate: float = 0.05
    max_quarantine_rate: float = 0.05
    max_event_delivery_age_days: int = 0
    max_dimension_delivery_age_days: int = 30
    max_event_lag_hours: float = 24.0
    credit_tolerance_fen: float = 0.01

    def parameters(self) -> dict[str, float]:
        """The thresholds as GX suite parameters (``{"$PARAMETER": name}`` in the suites)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class Settings:
    home: Path = field(default_factory=lambda: Path(os.environ.get(ENV_HOME, ".seedfunnel")))
    landing: Path | None = None
    seeds: Path = field(
        default_factory=lambda: Path(os.environ.get(ENV_SEEDS, PROJECT_ROOT / "seeds"))
    )
    warehouse_url: str | None = None
    buckets: int = field(default_factory=lambda: int(os.environ.get(ENV_BUCKETS, "1")))
    funnel: FunnelParams = field(default_factory=FunnelParams)
    quality: QualityParams = field(default_factory=QualityParams)

    def __post_init__(self) -> None:
        object.__setattr__(self, "home", Path(self.home))
        object.__setattr__(self, "seeds", Path(self.seeds))
        if self.landing is None:
            env = os.environ.get(ENV_LANDING)
            object.__setattr__(self, "landing", Path(env) if env else self.home / "landing")
        else:
            object.__setattr__(self, "landing", Path(self.landing))
        if self.buckets < 1:
            raise ValueError(f"buckets must be >= 1, got {self.buckets}")

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def work(self) -> Path:
        """Scratch space for bucket outputs between the map and reduce steps."""
        return self.home / "work"

    def resolved_warehouse_url(self) -> str:
        """Explicit URL > SEEDFUNNEL_WAREHOUSE_URL > Airflow connection > SQLite under home."""
        if self.warehouse_url:
            return self.warehouse_url
        env = os.environ.get(ENV_WAREHOUSE_URL)
        if env:
            return env
        url = _airflow_connection_url()
        if url:
            return url
        return f"sqlite:///{(self.home / 'warehouse.sqlite').resolve()}"

    def with_(self, **changes) -> Settings:
        return replace(self, **changes)

    def describe(self) -> dict[str, str]:
        out = {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name not in ("funnel", "quality")}
        out["lake"] = str(self.lake)
        out["reports"] = str(self.reports)
        out["warehouse_url"] = self.resolved_warehouse_url()
        return out


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable``: SEEDFUNNEL_WORKER_NAME, else the machine's FQDN.

    Lets several Celery workers on one machine record distinct TaskInstance hostnames.
    """
    import socket

    return os.environ.get(ENV_WORKER_NAME) or socket.getfqdn()


def _airflow_connection_url() -> str | None:
    """The URI of the Airflow connection, only when running inside an Airflow task."""
    if not os.environ.get("AIRFLOW_CTX_DAG_ID") and not os.environ.get(
        f"AIRFLOW_CONN_{AIRFLOW_CONN_ID.upper()}"
    ):
        return None
    try:
        from airflow.sdk import BaseHook

        conn = BaseHook.get_connection(AIRFLOW_CONN_ID)
    except Exception:  # connection not defined: fall back to the default
        return None
    uri = conn.get_uri()
    # Airflow spells PostgreSQL "postgres://"; SQLAlchemy wants a driver name.
    if uri.startswith("postgres://") or uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri.split("://", 1)[1]
    return uri
