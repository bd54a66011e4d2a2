"""Shared fixtures: the real PostgreSQL server (skipped with a reason when absent, required on CI)."""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("SEEDFUNNEL_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# The suite runs the pipeline hundreds of times on small worlds: 20 bootstrap replicates (the
# setting's default is 100) keep every interval defined and the runs quick. Tests of the intervals
# themselves set their own counts.
os.environ.setdefault("SEEDFUNNEL_MODELS__BOOTSTRAP_REPLICATES", "20")
# Nor does it need the lake's writes on disk before they return (nothing here survives a crash of
# the machine): fsync off (settings.ENV_FSYNC). test_ingest_lake checks the writes with it on.
os.environ.setdefault("SEEDFUNNEL_FSYNC", "0")
#: Passed on to the processes tests start with a clean environment (Airflow tasks, Celery workers),
#: so they compute with the same settings as the test process.
MODEL_ENV = {k: v for k, v in os.environ.items() if k.startswith(("SEEDFUNNEL_MODELS__", "SEEDFUNNEL_FSYNC"))}


def load_bench(name: str, module_name: str | None = None):
    """``bench/<name>.py`` loaded by path: ``bench/`` is not a package (and ``coverage`` would
    shadow the coverage package). Registered in sys.modules, where dataclasses resolve annotations."""
    import importlib.util
    import sys

    module_name = module_name or f"bench_{name}"
    spec = importlib.util.spec_from_file_location(module_name, REPO / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _pg_reachable(url: str) -> str | None:
    import sqlalchemy as sa

    try:
        with sa.create_engine(url).connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return None
    except Exception as e:
        return f"{e.__class__.__name__}: {str(e).splitlines()[0]}"


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of the real PostgreSQL server; under CI=true its absence is a failure, not a skip."""
    problem = _pg_reachable(PG_URL)
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL is required under CI=true but {PG_URL} is unreachable: {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL} ({problem}); set SEEDFUNNEL_TEST_PG_URL")
    return PG_URL


@contextlib.contextmanager
def fresh_pg_schema(server_url: str, prefix: str = "t_"):
    """A new schema on the real server; yields a URL whose search_path is it; drops it after."""
    import sqlalchemy as sa

    schema = f"{prefix}{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in server_url else "?"
    try:
        yield f"{server_url}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def pg_url(pg_server_url: str):
    """A fresh schema on the real server for one test, dropped afterwards."""
    with fresh_pg_schema(pg_server_url) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def warehouse_url(request, tmp_path: Path) -> str:
    """Both warehouse backends, for tests that must hold on each."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'warehouse.sqlite'}"
    return request.getfixturevalue("pg_url")
