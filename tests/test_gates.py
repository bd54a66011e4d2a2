"""Gates that fit real feeds (docs/quality.md, "Feed rates").

Feed rates are critical only on a sudden drop against their own trailing history; absolute floors
and days without history only warn; a feed that arrives in batches is measured where it has had
time to arrive. Hand-made lakes show each rule; a realistic simulated world (40% of accounts
linked, weekly link batches, late notes and rows) publishes with warnings on its first days and is
blocked when its link feed breaks mid-way.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import lake, runner, schemas, warehouse
from pipelines.quality import checks
from pipelines.quality.validate import QualityGateError
from pipelines.settings import QualityParams, Settings
from pipelines.simulate import WorldParams, simulate_world

START = date(2026, 3, 1)


def _frame(table: schemas.Table, n: int, **values) -> pd.DataFrame:
    """n rows of ``table``: a neutral value per column (null where nullable), overridden by ``values``."""
    neutral = {"str": "x", "int64": 0, "float64": 0.0, "bool": False, "date": START, "ts": pd.Timestamp(START, tz="UTC")}
    cols = {c.name: [None if c.nullable else neutral[c.type]] * n for c in table.columns}
    cols.update({k: list(v) if isinstance(v, (list, tuple, np.ndarray)) else [v] * n for k, v in values.items()})
    return schemas.conform(table, pd.DataFrame(cols))


def _day(i: int) -> date:
    return START + timedelta(days=i)


@pytest.fixture
def batch_lake(tmp_path) -> Path:
    """Ext ids that appear 70 a day and expose on each of their first 7 days; id links in weekly
    batches (days 0, 7, 14, 21) naming every id first seen before the batch day."""
    home = tmp_path / "home"
    lake_root = home / "lake"
    for d in range(28):
        ids = [f"x{first}_{i}" for first in range(max(0, d - 6), d + 1) for i in range(70)]
        at = pd.Timestamp(_day(d), tz="Asia/Shanghai").tz_convert("UTC") + pd.Timedelta(hours=12)
        exposures = _frame(
            schemas.EXPOSURES, len(ids), platform="douyin", note_id="n1", ext_user_id=ids, event_time=at,
            kind="read", dt=_day(d),
        )
        lake.write_partition(lake_root, "exposures", _day(d), exposures)
        if d % 7 == 0 and d:
            named = [f"x{first}_{i}" for first in range(d) for i in range(70)]
            links = _frame(
                schemas.ID_LINKS, len(named), platform="douyin", ext_user_id=named, user_id=named,
                confidence=1.0, dt=_day(d),
            )
            lake.write_partition(lake_root, "id_links", _day(d), links)
    return home


def _rates(home: Path, days: range, **quality) -> pd.DataFrame:
    settings = Settings(home=home, quality=QualityParams(**quality))
    return pd.concat([checks.feed_rates(settings, _day(d)) for d in days], ignore_index=True).set_index("dt")


def test_a_batch_feed_measured_on_its_own_day_trips_the_drop_check_between_batches(batch_lake):
    # Measured on each day's own exposers, the rate falls from 6/7 on a batch day to 0 six days
    # later, every week: half the trailing median is crossed between batches, with nothing broken.
    raw = _rates(batch_lake, range(14, 28), link_settle_days=0)
    assert raw["id_link_rate"].round(6).tolist()[:7] == [round(k / 7, 6) for k in (6, 5, 4, 3, 2, 1, 0)]
    assert (raw["id_link_rate_vs_history"] < 0.5).sum() >= 4
    # Measured where the feed had time to arrive (the exposers of a week before, with every link
    # delivered since), the same feed is steady: no drop.
    settled = _rates(batch_lake, range(14, 28))
    assert (settled["id_link_rate"] == 1.0).all() and (settled["id_link_rate_vs_history"] == 1.0).all()
    assert (settled["id_link_rate_history_days"] == 7).all()


def test_history_rules_on_the_quarantine_rate(tmp_path):
    home = tmp_path / "home"
    quarantined = [1, 2, 1, 1, 2, 1, 1, 60, 10]  # rows of 100 per day
    for d, q in enumerate(quarantined):
        files = _frame(schemas.INGEST_FILES, 1, dt=_day(d), source="orders", input_rows=100, accepted_rows=100 - q,
                       quarantined_rows=q, source_file=f"orders/dt={_day(d)}/o.csv")
        lake.write_partition(home / "lake", "ingest_files", _day(d), files)
    r = _rates(home, range(len(quarantined)))
    # Day 0 has no history, days 1 and 2 too little (3 days are needed): nothing is judged.
    assert r["quarantine_rate_history_days"].tolist()[:3] == [0, 1, 2]
    assert r["quarantine_rate_vs_history"].isna().tolist()[:3] == [True, True, True]
    # Day 7: 60% quarantined; the working share 0.40 against the trailing median 0.99: a drop.
    assert r["quarantine_rate_vs_history"].iloc[7] == pytest.approx(0.40 / 0.99)
    assert r["quarantine_rate_history_median"].iloc[7] == pytest.approx(0.01)
    # Day 8: 10% quarantined, above the 5% ceiling (a warning) but no sudden drop: 0.90 / 0.99.
    assert r["quarantine_rate_vs_history"].iloc[8] == pytest.approx(0.90 / 0.99)
    assert r["quarantine_rate"].iloc[8] == pytest.approx(0.10)
    # Nothing to count (no exposures, no orders): no rate, nothing judged.
    assert r["id_link_rate"].isna().all() and r["unknown_brand_rate"].isna().all()


# ---------------------------------------------------------------- a realistic world

DAYS = 16
BREAK = _day(14)  # the third weekly link batch


@pytest.fixture(scope="module")
def realistic(tmp_path_factory) -> tuple[Path, Settings]:
    root = tmp_path_factory.mktemp("gates")
    simulate_world(
        root / "landing", users=1500, days=DAYS, start=START, seed=11, seeds_dir=Settings().seeds,
        params=WorldParams(link_share=0.4),
    )
    home = root / "home"
    return root, Settings(home=home, landing=root / "landing", warehouse_url=f"sqlite:///{home / 'warehouse.sqlite'}")


def _dq(settings: Settings, day: date) -> pd.DataFrame:
    engine = warehouse.make_engine(settings.resolved_warehouse_url())
    try:
        dq = warehouse.read_table(engine, schemas.DQ_RESULTS.name)
    finally:
        engine.dispose()
    return dq[dq["dt"].eq(day)]


def test_a_realistic_feed_publishes_with_warnings_and_is_blocked_when_its_links_break(realistic):
    root, settings = realistic
    # First days: no week of history yet, and the first link batch covers part of the accounts.
    runner.run_day(settings, _day(2), report=False)
    dq = _dq(settings, _day(2))
    failed = dq[~dq["success"]]
    assert len(failed) and set(failed["severity"]) == {"warning"}
    assert set(failed["expectation"]) >= {
        f"check_feed_rates/expect_column_values_to_be_between({rate}_history_days)" for rate, _, _ in checks.FEEDS
    }
    # Two weeks in: the id-link rate is about a third (above the 0.25 floor) and steady: clean.
    runner.run_day(settings, _day(13), report=False)
    dq = _dq(settings, _day(13)).set_index("expectation")
    assert not (~dq["success"] & dq["severity"].eq("critical")).any()
    rate = float(dq.loc["check_feed_rates/expect_column_values_to_be_between(id_link_rate)", "observed"])
    assert 0.2 < rate < 0.4
    published = {t.name: _published(settings, t.name) for t in schemas.FUNNEL_TABLES}

    # The link feed breaks: the batch of BREAK re-sends every claim with its confidence a hundredth
    # of what it was (another unit). Every row is accepted; none clears min_link_confidence.
    claims = lake.read_table(settings.lake, "id_links")
    for folder in (root / "landing" / "id_links").glob(f"*/dt={BREAK}"):
        shutil.rmtree(folder)
    for platform, group in claims.groupby("platform"):
        folder = root / "landing" / "id_links" / platform / f"dt={BREAK}"
        folder.mkdir(parents=True)
        broken = group.assign(confidence=group["confidence"] / 100)[["platform", "ext_user_id", "user_id", "confidence"]]
        broken.to_json(folder / "links.jsonl", orient="records", lines=True, force_ascii=False)
    with pytest.raises(QualityGateError) as err:
        runner.run_day(settings, BREAK, report=False)
    message = str(err.value)
    drop = "check_feed_rates/expect_column_values_to_be_between(id_link_rate_vs_history)"
    assert f"table id_links: {drop} failed; observed 0 (id_link_rate 0 against its trailing median 0." in message
    assert "setting quality.feed_drop_ratio = 0.5, quality.feed_history_days = 7, " in message
    assert "quality.link_settle_days = 7" in message
    dq = _dq(settings, BREAK)
    critical = dq[~dq["success"] & dq["severity"].eq("critical")]
    assert critical["expectation"].tolist() == [drop]
    # Nothing of the broken day was published.
    for name, frame in published.items():
        pd.testing.assert_frame_equal(_published(settings, name), frame, obj=name)


def _published(settings: Settings, name: str) -> pd.DataFrame:
    engine = warehouse.make_engine(settings.resolved_warehouse_url())
    try:
        return warehouse.read_table(engine, name)
    finally:
        engine.dispose()
