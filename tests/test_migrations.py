"""Warehouse migrations on SQLite and the real PostgreSQL: the head is the declaration, the
baseline is the frozen 0.1.0 contract, a 0.1.0 warehouse walks up to the head and back, upgrades
are idempotent, publishing works on a migrated warehouse and the views return the expected rows."""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pipelines import db, schemas, warehouse
from pipelines.migrations import views

D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)
VIEW_NAMES = {v.name for v in views.VIEWS}
BASELINE, RESTATED = "0001_baseline", "0002_restatements"
MODELS, REPORT_INDEXES = "0005_models", "0006_report_indexes"
# The 0.1.0 contract, as released: its tables and views, and its fingerprint.
V010_TABLES = {
    "fct_touches",
    "fct_search_pairs",
    "fct_seeded_orders",
    "fct_attribution_credits",
    "agg_brand_funnel_daily",
    "agg_conversion_uplift",
    "brand_boost_signals",
    "dq_results",
    "quarantine",
    "ingest_files",
}
V010_VIEWS = {"v_brand_boost_latest", "v_brand_funnel_final"}
V010_CONTRACT = "c3bf3b16101a2046"


def _frame(t: schemas.Table, n: int, **values) -> pd.DataFrame:
    """n rows of table ``t``: a neutral value per declared column, overridden by ``values``."""
    neutral = {"str": "x", "int64": 1, "float64": 0.5, "bool": False, "date": D1, "ts": pd.Timestamp(D1, tz="UTC")}
    cols = {c.name: [neutral[c.type]] * n for c in t.columns}
    cols.update({k: list(v) if isinstance(v, (list, tuple)) else [v] * n for k, v in values.items()})
    return schemas.conform(t, pd.DataFrame(cols))


def _read(engine: sa.Engine, sql: str) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.read_sql(sa.text(sql), conn)


def test_upgrade_creates_exactly_the_declared_tables_and_views(warehouse_url):
    assert db.current(warehouse_url) is None
    assert db.upgrade(warehouse_url) == db.head() == db.current(warehouse_url)

    engine = warehouse.make_engine(warehouse_url)
    insp = sa.inspect(engine)
    assert set(insp.get_table_names()) == set(warehouse.TABLES) | {"alembic_version"}
    assert set(insp.get_view_names()) == VIEW_NAMES
    for t in schemas.WAREHOUSE_TABLES:
        found = insp.get_columns(t.name)
        assert [c["name"] for c in found] == t.names, t.name
        assert [c["nullable"] for c in found] == [c.nullable for c in t.columns], t.name
        indexes = {i["name"]: i["column_names"] for i in insp.get_indexes(t.name)}
        assert indexes == _declared_indexes(t.name), t.name
    for v in views.VIEWS:
        assert [c["name"] for c in insp.get_columns(v.name)] == schemas.table(v.source).names

    # Alembic's own comparison of the migrated database with the metadata: no difference at all
    # (types, nullability, indexes, and on PostgreSQL the table and column comments).
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), warehouse.metadata)
    assert diff == []
    engine.dispose()


def _declared_indexes(name: str) -> dict[str, list[str]]:
    """The day index of a declared table and its secondary indexes (warehouse.INDEXES)."""
    t = schemas.table(name)
    indexes = {warehouse.index_name(name, on): list(on) for on in warehouse.INDEXES.get(name, ())}
    return {f"ix_{name}_{t.partition}": [t.partition], **indexes}


def test_the_report_indexes_revision_states_the_declared_indexes():
    # 0006 states its indexes literally; they are the ones the declaration (warehouse.INDEXES)
    # gives the metadata, so create_all and the migrations build the same warehouse.
    stated = db.revision_module(REPORT_INDEXES).INDEXES
    declared = {(t, warehouse.index_name(t, on), on) for t, ons in warehouse.INDEXES.items() for on in ons}
    assert {(ix.table, ix.name, ix.columns) for ix in stated} == declared
    for t, name, on in declared:
        assert [[c.name for c in ix.columns] for ix in warehouse.TABLES[t].indexes if ix.name == name] == [[*on]]


def test_the_report_indexes_are_adopted_or_refused(warehouse_url):
    # A warehouse at 0.5.0 with one of the indexes already made by hand on the same columns is
    # adopted; one on other columns is refused and the upgrade rolled back.
    db.upgrade(warehouse_url, MODELS)
    engine = warehouse.make_engine(warehouse_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_fct_touches_brand_id_user_id_dt ON fct_touches (brand_id, user_id, dt)")
    assert db.upgrade(warehouse_url) == db.head()
    _assert_is_the_declaration(engine)

    db.downgrade(warehouse_url, MODELS)
    assert {i["name"] for i in sa.inspect(engine).get_indexes("fct_touches")} == {"ix_fct_touches_dt"}
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_fct_touches_brand_id_user_id_dt ON fct_touches (user_id)")
    with pytest.raises(RuntimeError, match=r"ix_fct_touches_brand_id_user_id_dt.*\['user_id'\].*not made by seedfunnel"):
        db.upgrade(warehouse_url)
    assert db.current(warehouse_url) == MODELS
    engine.dispose()


def test_upgrade_twice_is_a_no_op(warehouse_url):
    first = db.db_upgrade_command(warehouse_url)
    assert "upgraded from an empty warehouse" in first and db.head() in first
    engine = warehouse.make_engine(warehouse_url)
    boost = _frame(schemas.BRAND_BOOST_SIGNALS, 3, as_of_dt=D1, user_id=["u1", "u2", "u3"])
    warehouse.publish(engine, {"brand_boost_signals": boost}, {"brand_boost_signals": [D1]})

    second = db.db_upgrade_command(warehouse_url)
    assert "already at revision" in second and "nothing to do" in second
    assert db.upgrade(warehouse_url) == db.head()
    assert len(warehouse.read_table(engine, "brand_boost_signals")) == 3
    assert len(_read(engine, "SELECT version_num FROM alembic_version")) == 1
    engine.dispose()


def test_publish_after_upgrade_and_the_views_return_the_expected_rows(warehouse_url):
    db.upgrade(warehouse_url)
    engine = warehouse.make_engine(warehouse_url)
    assert _read(engine, "SELECT * FROM v_brand_boost_latest").empty  # nothing published yet

    boost = schemas.BRAND_BOOST_SIGNALS
    day1 = _frame(boost, 2, as_of_dt=D1, user_id="u1", brand_id=["b1", "b2"], score=[0.9, 0.4], rank=[1, 2])
    day2 = _frame(boost, 2, as_of_dt=D2, user_id=["u1", "u2"], brand_id="b3", score=[0.7, 0.2], rank=1)
    warehouse.publish(engine, {boost.name: day1}, {boost.name: [D1]})
    warehouse.publish(engine, {boost.name: day2}, {boost.name: [D2]})
    # A backfill of the older day afterwards does not move "latest".
    warehouse.publish(engine, {boost.name: day1}, {boost.name: [D1]})

    latest = _read(engine, "SELECT * FROM v_brand_boost_latest ORDER BY user_id")
    assert list(latest.columns) == boost.names
    assert latest.user_id.tolist() == ["u1", "u2"] and set(latest.brand_id) == {"b3"}
    assert latest.score.tolist() == [0.7, 0.2]
    assert set(pd.to_datetime(latest.as_of_dt).dt.date) == {D2}

    restated, daily_name = schemas.RESTATEMENTS, schemas.AGG_BRAND_FUNNEL_DAILY.name
    # Restatements of r1 (D1 was final, D2 was not) and r2 (D1 again): the view keeps the final ones.
    log = _frame(
        restated, 3, dt=[D1, D2, D1], table_name=daily_name, was_final=[True, False, True], run_id=["r1", "r1", "r2"]
    )
    warehouse.publish(engine, {restated.name: log}, {})
    final_restated = _read(engine, "SELECT * FROM v_final_restatements ORDER BY run_id")
    assert list(final_restated.columns) == restated.names
    assert final_restated.run_id.tolist() == ["r1", "r2"]
    assert set(pd.to_datetime(final_restated.dt).dt.date) == {D1}

    daily = schemas.AGG_BRAND_FUNNEL_DAILY
    # D1 is final for both brands, D2 is final for b1 only, D3 is open.
    rows = pd.concat(
        [
            _frame(daily, 2, dt=D1, brand_id=["b1", "b2"], platform="all", is_final=True, exposed_users=[5, 6]),
            _frame(daily, 2, dt=D2, brand_id=["b1", "b2"], platform="douyin", is_final=[True, False]),
            _frame(daily, 1, dt=D3, brand_id="b1", platform="all", is_final=False, search_back_rate=None),
        ]
    )
    warehouse.publish(engine, {daily.name: rows}, {daily.name: [D1, D2, D3]})
    final = _read(engine, "SELECT * FROM v_brand_funnel_final ORDER BY dt, brand_id")
    assert list(final.columns) == daily.names
    got = list(zip(pd.to_datetime(final.dt).dt.date, final.brand_id, final.platform, strict=True))
    assert got == [(D1, "b1", "all"), (D1, "b2", "all"), (D2, "b1", "douyin")]
    assert final.exposed_users.tolist() == [5, 6, 1]
    assert final.is_final.astype(bool).all()

    # The views follow the tables: re-running D3 as final adds its row.
    warehouse.publish(engine, {daily.name: rows.assign(is_final=True).iloc[[-1]]}, {daily.name: [D3]})
    assert len(_read(engine, "SELECT dt FROM v_brand_funnel_final")) == 4
    engine.dispose()


def test_downgrade_to_base_and_up_again(warehouse_url):
    db.upgrade(warehouse_url)
    assert db.downgrade(warehouse_url) is None
    engine = warehouse.make_engine(warehouse_url)
    insp = sa.inspect(engine)
    assert set(insp.get_table_names()) <= {"alembic_version"} and not insp.get_view_names()
    engine.dispose()
    assert db.upgrade(warehouse_url) == db.head()


def test_concurrent_upgrades_serialise(warehouse_url):
    # Separate processes, as concurrent Airflow tasks would be: the database serialises them and
    # the later ones find the work done.
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=3, mp_context=ctx) as pool:
        results = list(pool.map(db.upgrade, [warehouse_url] * 3))
    assert results == [db.head()] * 3
    assert db.upgrade(warehouse_url) == db.head()


def test_concurrent_upgrades_in_one_process_take_turns(sqlite_url, tmp_path):
    urls = [sqlite_url, f"sqlite:///{tmp_path / 'other.sqlite'}"] * 2
    results, errors = [], []

    def run(url: str) -> None:
        try:
            results.append(db.upgrade(url))
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(u,)) for u in urls]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors and results == [db.head()] * 4


def test_adopts_a_warehouse_made_by_the_0_2_0_create_all(sqlite_url):
    # 0.2.0's create_all made the 0.1.0 tables and restatements: 0001 adopts the 0.1.0 tables,
    # 0002 adopts restatements, 0003 rebuilds agg_conversion_uplift keeping its rows.
    made = sa.MetaData()
    for rev in (BASELINE, RESTATED):
        for t in db.revision_module(rev).TABLES:
            sa.Table(t.name, made, *(c.column() for c in t.columns), sa.Index(t.index, t.partition), comment=t.comment)
    engine = warehouse.make_engine(sqlite_url)
    made.create_all(engine)
    boost = _frame(schemas.BRAND_BOOST_SIGNALS, 2, user_id=["u1", "u2"])
    warehouse.publish(engine, {"brand_boost_signals": boost}, {"brand_boost_signals": [D1]})
    restated = _frame(schemas.RESTATEMENTS, 1, table_name="brand_boost_signals", was_final=True)
    warehouse.publish(engine, {"restatements": restated}, {})
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO agg_conversion_uplift (dt, level, subject_id, slice, slice_value, seeded_pairs, "
            "seeded_conversions, baseline_pairs, baseline_conversions, is_final, run_id) "
            "VALUES ('2026-03-01', 'all', 'all', 'all', 'all', 2, 1, 4, 1, 1, 'r0')"
        )
    assert db.current(sqlite_url) is None

    assert db.upgrade(sqlite_url) == db.head()
    assert len(_read(engine, "SELECT * FROM v_brand_boost_latest")) == 2  # data kept, views made
    assert len(_read(engine, "SELECT * FROM v_final_restatements")) == 1
    kept = warehouse.read_table(engine, "agg_conversion_uplift")
    assert kept[["seeded_pairs", "baseline_pairs"]].values.tolist() == [[2, 4]]
    assert kept["adjusted_uplift"].isna().all()  # null until the next run restates the day
    _assert_is_the_declaration(engine)
    engine.dispose()


def test_refuses_a_warehouse_made_by_todays_create_all(sqlite_url):
    # Today's create_all makes the head tables without a revision: 0001 finds agg_conversion_uplift
    # with columns 0.1.0 never had and refuses, saying what to do (point the run at an empty
    # warehouse, which the migrations build, or drop the table).
    engine = warehouse.make_engine(sqlite_url)
    warehouse.create_all(engine)
    with pytest.raises(RuntimeError, match=r"agg_conversion_uplift.*unexpected.*adjusted_uplift.*empty warehouse"):
        db.upgrade(sqlite_url)
    engine.dispose()


def test_adopts_a_warehouse_made_by_the_0_1_0_create_all(warehouse_url):
    # A warehouse made before migrations existed, by 0.1.0: exactly the 0.1.0 tables and indexes.
    baseline = db.revision_module(BASELINE)
    made = sa.MetaData()
    for t in baseline.TABLES:
        sa.Table(t.name, made, *(c.column() for c in t.columns), sa.Index(t.index, t.partition), comment=t.comment)
    engine = warehouse.make_engine(warehouse_url)
    made.create_all(engine)
    boost = _frame(schemas.BRAND_BOOST_SIGNALS, 2, user_id=["u1", "u2"])
    warehouse.publish(engine, {"brand_boost_signals": boost}, {"brand_boost_signals": [D1]})
    assert db.current(warehouse_url) is None

    assert db.upgrade(warehouse_url) == db.head()
    assert len(_read(engine, "SELECT * FROM v_brand_boost_latest")) == 2
    _assert_is_the_declaration(engine)
    engine.dispose()


def _assert_is_the_declaration(engine: sa.Engine) -> None:
    """The warehouse holds exactly the declared tables, indexes, comments and views."""
    insp = sa.inspect(engine)
    assert set(insp.get_table_names()) == set(warehouse.TABLES) | {"alembic_version"}
    assert set(insp.get_view_names()) == VIEW_NAMES
    for v in views.VIEWS:
        assert [c["name"] for c in insp.get_columns(v.name)] == schemas.table(v.source).names
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), warehouse.metadata)
    assert diff == []


def _assert_is_0_1_0(engine: sa.Engine) -> None:
    """The warehouse holds exactly the 0.1.0 contract (as the frozen baseline states it)."""
    insp = sa.inspect(engine)
    assert set(insp.get_table_names()) == V010_TABLES | {"alembic_version"}
    assert set(insp.get_view_names()) == V010_VIEWS
    for t in db.revision_module(BASELINE).TABLES:
        found = insp.get_columns(t.name)
        assert [(c["name"], c["nullable"]) for c in found] == [(c.name, c.nullable) for c in t.columns], t.name
        assert {i["name"]: i["column_names"] for i in insp.get_indexes(t.name)} == {t.index: [t.partition]}, t.name


def test_a_0_1_0_warehouse_walks_to_the_head_and_back(warehouse_url):
    assert db.upgrade(warehouse_url, BASELINE) == BASELINE
    engine = warehouse.make_engine(warehouse_url)
    _assert_is_0_1_0(engine)
    # 0.1.0 data: a funnel table and a log.
    boost = _frame(schemas.BRAND_BOOST_SIGNALS, 2, as_of_dt=D1, user_id=["u1", "u2"])
    quarantine = _frame(schemas.QUARANTINE, 3, row_number=[1, 2, 3], run_id="r1")
    warehouse.publish(engine, {"brand_boost_signals": boost, "quarantine": quarantine}, {"brand_boost_signals": [D1]})

    assert db.db_upgrade_command(warehouse_url).endswith(f"upgraded from {BASELINE} to revision {db.head()} (head)")
    assert db.current(warehouse_url) == db.head()
    _assert_is_the_declaration(engine)
    assert len(_read(engine, "SELECT * FROM v_brand_boost_latest")) == 2  # data kept
    assert len(warehouse.read_table(engine, "quarantine")) == 3
    indexes = {i["name"]: i["column_names"] for i in sa.inspect(engine).get_indexes("restatements")}
    assert indexes == {"ix_restatements_dt": ["dt"]}

    # At 0.2.0 the logs grow: a re-run of the day appends, restatements records what was rewritten.
    again = _frame(schemas.QUARANTINE, 2, row_number=[1, 2], run_id="r2")
    restated = _frame(schemas.RESTATEMENTS, 1, table_name="brand_boost_signals", run_id="r2")
    warehouse.publish(engine, {"quarantine": again, "restatements": restated}, {"quarantine": [D1]})
    assert sorted(warehouse.read_table(engine, "quarantine").run_id) == ["r1"] * 3 + ["r2"] * 2
    assert len(warehouse.read_table(engine, "restatements")) == 1

    # Down to 0.1.0: restatements and its view go, everything else stays as it was.
    assert db.downgrade(warehouse_url, BASELINE) == BASELINE
    _assert_is_0_1_0(engine)
    assert len(_read(engine, "SELECT * FROM v_brand_boost_latest")) == 2
    assert len(warehouse.read_table(engine, "quarantine")) == 5
    # And up again.
    assert db.upgrade(warehouse_url) == db.head()
    _assert_is_the_declaration(engine)
    assert warehouse.read_table(engine, "restatements").empty
    engine.dispose()


def test_every_revision_steps_up_and_down_one_at_a_time(warehouse_url):
    # The stairway: each revision's upgrade and downgrade, alone, in order and back.
    revisions = db.revisions()
    assert revisions[:2] == [BASELINE, RESTATED] and revisions[-1] == db.head()
    for rev in revisions:
        assert db.upgrade(warehouse_url, "+1") == rev
    for rev in reversed([None, *revisions[:-1]]):
        assert db.downgrade(warehouse_url, "-1") == rev
    engine = warehouse.make_engine(warehouse_url)
    insp = sa.inspect(engine)
    assert set(insp.get_table_names()) <= {"alembic_version"} and not insp.get_view_names()
    engine.dispose()


def test_a_fresh_warehouse_walks_0_1_0_first():
    # An empty warehouse is not created at the head contract: it runs the frozen baseline, then
    # each later revision, like every warehouse made at 0.1.0.
    for dialect in ("sqlite", "postgresql"):
        sql = db.render_sql(dialect)
        assert sql.index(f"Running upgrade  -> {BASELINE}") < sql.index(f"Running upgrade {BASELINE} -> {RESTATED}")
        baseline = db.render_sql(dialect, BASELINE)
        assert "restatements" not in baseline
        for name in V010_TABLES:
            assert f"CREATE TABLE {name} (" in baseline


def test_baseline_is_the_frozen_0_1_0_contract():
    # 0001 states its tables and views literally; they hash to the 0.1.0 fingerprint, whatever
    # pipelines/schemas.py declares today.
    baseline = db.revision_module(BASELINE)
    assert baseline.contract == V010_CONTRACT
    assert db.fingerprint(baseline.TABLES, baseline.VIEWS) == V010_CONTRACT
    assert {t.name for t in baseline.TABLES} == V010_TABLES
    assert {v.name for v in baseline.VIEWS} == V010_VIEWS


def test_refuses_a_foreign_restatements_table(warehouse_url):
    db.upgrade(warehouse_url, BASELINE)
    engine = warehouse.make_engine(warehouse_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE restatements (dt DATE, note TEXT)")
    with pytest.raises(RuntimeError, match=r"restatements.*missing.*run_id.*unexpected.*note.*seedfunnel 0\.2\.0"):
        db.upgrade(warehouse_url)
    assert db.current(warehouse_url) == BASELINE  # rolled back: still 0.1.0
    assert "v_final_restatements" not in sa.inspect(engine).get_view_names()
    engine.dispose()


def test_refuses_a_foreign_table_of_the_same_name(warehouse_url):
    engine = warehouse.make_engine(warehouse_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE fct_touches (dt DATE, something_else TEXT)")
    with pytest.raises(RuntimeError, match=r"fct_touches.*missing.*user_id.*unexpected.*something_else"):
        db.upgrade(warehouse_url)
    # The failed upgrade was one transaction: nothing else was created.
    assert sa.inspect(engine).get_table_names() == ["fct_touches"]
    assert db.current(warehouse_url) is None
    engine.dispose()


def test_unknown_revision_names_the_known_ones(sqlite_url):
    with pytest.raises(RuntimeError, match=r"'nope'.*Known revisions: 0001_baseline, 0002_restatements"):
        db.upgrade(sqlite_url, "nope")


def test_current_of_a_missing_sqlite_file_creates_nothing(tmp_path):
    path = tmp_path / "absent.sqlite"
    assert db.current(f"sqlite:///{path}") is None
    assert not path.exists()


def test_unreachable_warehouse_says_what_to_do():
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    with pytest.raises(RuntimeError, match="SEEDFUNNEL_WAREHOUSE_URL"):
        db.db_upgrade_command(url)


def test_head_revision_records_the_declared_contract():
    # Fails when schemas.py changes the warehouse without a migration: write a new revision
    # (and a CHANGELOG.md entry) whose `contract` is db.contract_fingerprint().
    assert db.revision_contract(db.head()) == db.contract_fingerprint(), (
        "pipelines/schemas.py changed the warehouse contract; add a migration revision"
    )


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_offline_sql_renders_every_table_index_and_view(dialect):
    sql = db.render_sql(dialect)
    for name, t in warehouse.TABLES.items():
        assert f"CREATE TABLE {name} (" in sql
        for ix in t.indexes:
            assert f"CREATE INDEX {ix.name} ON {name}" in sql
    for v in views.VIEWS:
        assert v.create_sql() in sql
    assert f"'{db.head()}'" in sql
