"""The simulated world: determinism, SPEC 1 layout, exporter coverage, arrival, and the planted effects.

The effect checks read the raw landing files back with plain pandas (every encoding and time
spelling the simulator writes), resolve links (latest delivery per account) and touches themselves
(merge_asof per user and brand), take the latest version of every order, and take note -> brand
from the simulator's own bookkeeping (``plan_world``). The arrival checks read ``arrivals.json``
and the files of every version, and rebuild the landing zone day by day with ``materialize``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipelines import schemas
from pipelines.settings import FunnelParams
from pipelines.simulate import ArrivalParams, load_schedule, materialize, simulate_world
from pipelines.simulate.exporters import FORMATS
from pipelines.simulate.landing import plan_world
from pipelines.simulate.world import WorldParams
from pipelines.text.normalize import normalize
from pipelines.timeutil import parse_timestamps

ROOT = Path(__file__).parent.parent
SEEDS = ROOT / "seeds"
START = date(2026, 1, 1)


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _landing_hashes(root: Path) -> dict[str, str]:
    """Hashes of the landing files only (no ground truth, schedule or stored earlier versions)."""
    return {k: v for k, v in _hashes(root).items()
            if "/" in k and not k.startswith(".") and not any(part[:1] in "._" for part in k.split("/"))}


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict:
    """Two runs with the same arguments and one with another seed."""
    base = tmp_path_factory.mktemp("small")
    kw = dict(users=600, days=5, start=START, seeds_dir=SEEDS)
    return {
        "a": (base / "a", simulate_world(base / "a", seed=11, **kw)),
        "b": (base / "b", simulate_world(base / "b", seed=11, **kw)),
        "c": (base / "c", simulate_world(base / "c", seed=12, **kw)),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> tuple[Path, dict]:
    """A world large enough to see the planted effects."""
    out = tmp_path_factory.mktemp("world")
    simulate_world(out, users=2500, days=18, start=START, seed=5, seeds_dir=SEEDS)
    return out, json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))


def test_same_seed_gives_byte_identical_files(small):
    ha, hb = _hashes(small["a"][0]), _hashes(small["b"][0])
    assert len(ha) > 50
    assert "arrivals.json" in ha and any(k.startswith(".versions/") for k in ha)
    assert ha == hb


def test_other_seed_gives_other_files(small):
    ha, hc = _hashes(small["a"][0]), _hashes(small["c"][0])
    common = set(ha) & set(hc)
    assert sum(ha[k] != hc[k] for k in common) > 0.9 * len(common)


def test_layout_matches_spec_section_1(small):
    root, summary = small["a"]
    platforms = "|".join(schemas.PLATFORMS)
    day = r"dt=\d{4}-\d{2}-\d{2}"
    allowed = [
        rf"notes/({platforms})/{day}/[^/]+\.(jsonl|json|csv)",
        rf"exposures/({platforms})/{day}/[^/]+\.(csv|parquet|jsonl)",
        rf"id_links/({platforms})/{day}/[^/]+\.(csv|parquet|jsonl)",
        rf"searches/{day}/[^/]+\.(csv|parquet|jsonl)",
        rf"orders/{day}/[^/]+\.(csv|parquet|jsonl)",
        rf"spend/{day}/[^/]+\.(csv|parquet|jsonl)",
        r"items/[^/]+\.csv",
        r"ground_truth\.json",
        r"arrivals\.json",
    ]
    files = sorted(f for f in _hashes(root) if not f.startswith(".versions/"))
    stray = [f for f in files if not any(re.fullmatch(a, f) for a in allowed)]
    assert stray == []
    for source in ("notes", "exposures", "id_links", "searches", "orders", "spend"):
        assert any(f.startswith(source + "/") for f in files), source
    assert summary.files == len(files) - 2  # neither ground_truth.json nor arrivals.json is a landing file
    days = {m.group(1) for f in files if (m := re.search(r"dt=(\d{4}-\d{2}-\d{2})", f))}
    assert days == {(START + timedelta(days=i)).isoformat() for i in range(5)}


def test_every_exporter_format_and_encoding_appears(small):
    root, _ = small["a"]
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    seen = {(f["platform"], f["format"]) for f in truth["files"] if f["source"] == "notes"}
    for platform, formats in FORMATS.items():
        for exporter, file_type, schema in formats:
            assert (platform, f"{exporter}_{file_type}_{schema}") in seen, (platform, exporter, file_type, schema)
    event_formats = {f["format"] for f in truth["files"] if f["source"] in ("exposures", "searches")}
    assert {"parquet", "csv", "csv_bom", "csv_gb18030", "jsonl"} <= event_formats
    styles = {f.get("time_style") for f in truth["files"] if f["source"] == "exposures"}
    assert {"epoch_s", "epoch_ms", "local_naive", "iso_offset"} <= styles
    assert list(root.glob("notes/xiaohongshu/dt=*/*_info.json"))
    # a real xhs MediaCrawler record has the sample's field names
    sample = ROOT.parent / "shared" / "formats" / "samples" / "mediacrawler_xhs_notes.json"
    old = next(root.glob("notes/xiaohongshu/dt=*/detail_contents_*.json"))
    record = json.loads(old.read_text(encoding="utf-8"))[-1]
    if sample.exists():
        assert set(record) == set(json.loads(sample.read_text(encoding="utf-8"))[0])
    new = next(root.glob("notes/xiaohongshu/dt=*/search_contents_*.jsonl"))
    rec2026 = json.loads(new.read_text(encoding="utf-8").splitlines()[-1])
    assert "creator_hash" in rec2026 and "user_id" not in rec2026 and "ip_location" not in rec2026
    assert re.fullmatch(r".\*\*\*.", rec2026["nickname"])
    assert re.fullmatch(r"[0-9a-f]{16}", rec2026["creator_hash"])


def test_messy_injections_are_recorded(small):
    root, _ = small["a"]
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    d = truth["defects"]
    assert d["exact_duplicate_rows"]["exposures"] > 0
    for key in ("exposures_bad_timestamp", "exposures_truncated_json", "searches_bad_timestamp"):
        assert d["malformed_rows"].get(key, 0) > 0, key
    v = d["variants"]
    for key in ("note_counts_wan", "note_counts_qian", "note_counts_plus", "note_alias_mentions_fullwidth",
                "note_alias_mentions_traditional", "notes_traditional_script"):
        assert v.get(key, 0) > 0, key
    # each recorded malformed row is exactly where it says, and the file's other rows are clean
    for m in d["malformed"]:
        if m["source"] == "notes":
            continue
        lines = _decoded_lines(root / m["file"], keep_ambiguous=True)
        bad = lines[m["line"] - 1]
        if m["reason"] == "truncated_json":
            with pytest.raises(json.JSONDecodeError):
                json.loads(bad)
        else:
            assert "2026-02-30 25:61:00" in bad
    gb = [f for f in truth["files"] if f["format"] == "csv_gb18030" and f["source"] == "searches"]
    assert gb
    raw = (root / gb[0]["path"]).read_bytes()
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


# ---------------------------------------------------------------- reading the raw files back


def _decoded_lines(path: Path, keep_ambiguous: bool = False) -> list[str | None]:
    """The file's lines; in a GB18030 file, None for a line that is also valid non-ASCII UTF-8
    (ingestion sets such a record aside as ambiguous, docs/ingestion.md) unless kept."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        pass
    try:
        lines = raw.decode("gb18030").splitlines()
    except UnicodeDecodeError:
        raise AssertionError(f"{path}: neither UTF-8 nor GB18030") from None

    def ambiguous(line: str) -> bool:
        data = line.encode("gb18030")
        try:
            return not data.isascii() and bool(data.decode("utf-8"))
        except UnicodeDecodeError:
            return False

    return [None if ambiguous(ln) and not keep_ambiguous else ln for ln in lines]


def _read_file(path: Path, fmt: str, bad_lines: set[int] = frozenset()) -> pd.DataFrame:
    """One event file as strings/numbers, the given (1-based) lines and ambiguous lines left out."""
    if fmt == "parquet":
        return pd.read_parquet(path)
    lines = [
        ln for i, ln in enumerate(_decoded_lines(path), start=1) if i not in bad_lines and ln is not None
    ]
    text = "\n".join(lines) + "\n"
    if fmt == "jsonl":
        return pd.read_json(io.StringIO(text), lines=True, dtype=False)
    return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_values=[""])


def _read(root: Path, truth: dict, source: str) -> pd.DataFrame:
    """Every file of a source as strings/numbers, the recorded malformed rows left out, with the
    file's delivery day (``_dt``) and path (``_file``)."""
    bad: dict[str, set[int]] = {}
    for m in truth["defects"]["malformed"]:
        if m["source"] != "notes":
            bad.setdefault(m["file"], set()).add(m["line"])
    frames = []
    for f in truth["files"]:
        if f["source"] != source:
            continue
        df = _read_file(root / f["path"], f["format"], bad.get(f["path"], set()))
        frames.append(df.assign(_dt=f["dt"], _file=f["path"]))
    return pd.concat(frames, ignore_index=True)


def _times(values: pd.Series) -> pd.Series:
    ts, bad = parse_timestamps(values.astype(object))
    assert not bad.any()
    return ts


def _funnel_frames(root: Path, truth: dict, params: FunnelParams | None = None):
    """Touches, pairs (with seeded / vertical match / converted) from the raw landing files, by the
    windows of each pair's category (SPEC 5.11; the global ones unless ``params`` sets others)."""
    params = params or FunnelParams()
    world, _, _ = plan_world(users=truth["users"], days=truth["days"], start=date.fromisoformat(truth["start"]),
                             seed=truth["seed"], seeds_dir=SEEDS, params=WorldParams(funnel=params))
    brands = world.brands

    ex = _read(root, truth, "exposures").drop(columns=["_dt", "_file"])
    ex["event_time"] = _times(ex["event_time"])
    ex = ex.astype({"note_id": str, "ext_user_id": str}).drop_duplicates()
    links = _read(root, truth, "id_links").astype({"ext_user_id": str, "user_id": str})
    links["confidence"] = links["confidence"].astype(float)
    # SPEC 3: per account the claims of the latest delivery naming it replace earlier ones
    latest = links.groupby(["platform", "ext_user_id"])["_dt"].transform("max")
    links = links[links["_dt"] == latest]
    win = links.sort_values(["platform", "ext_user_id", "confidence", "user_id"], ascending=[True, True, False, True])
    win = win.drop_duplicates(["platform", "ext_user_id"])
    win = win[win["confidence"] >= params.min_link_confidence]

    notes = world.notes
    note_meta = pd.DataFrame({
        "platform": np.asarray(schemas.PLATFORMS)[notes["platform"].to_numpy()],
        "note_id": notes["note_id"].to_numpy(),
        "vertical": world.creators["vertical"].to_numpy()[notes["creator"].to_numpy()],
        "note": np.arange(len(notes)),
    })
    nb = world.note_brands.merge(note_meta, on="note")
    nb["brand_id"] = brands["brand_id"].to_numpy()[nb["brand"].to_numpy()]

    touches = (ex[ex["kind"].isin(params.touch_kinds)]
               .merge(win[["platform", "ext_user_id", "user_id"]], on=["platform", "ext_user_id"])
               .merge(nb[["platform", "note_id", "brand_id", "vertical"]], on=["platform", "note_id"]))
    touches = touches.sort_values(["event_time", "platform", "note_id", "kind", "ext_user_id"], kind="stable")

    se = _read(root, truth, "searches").drop(columns=["_dt", "_file"]).astype({"search_id": str, "user_id": str, "query": str})
    se["event_time"] = _times(se["event_time"])
    se = se.drop_duplicates()
    dictionary = {}
    for cat, kws in zip(world.categories["category_id"], world.categories["keywords"], strict=True):
        for k in kws.split("|"):
            dictionary.setdefault(normalize(k), set()).add(cat)
    ref_brands = pd.read_csv(SEEDS / "brands.csv", dtype=str, keep_default_na=False)
    for aliases, cat in zip(ref_brands["aliases"], ref_brands["category_id"], strict=True):
        for a in aliases.split("|"):
            if len(normalize(a)) >= 2:
                dictionary.setdefault(normalize(a), set()).add(cat)
    qnorm = se["query"].map(normalize)
    se["category_id"] = qnorm.map(lambda q: "|".join(sorted({c for t, cs in dictionary.items() if t in q for c in cs})))
    assert (se["category_id"].str.count(r"\|") == 0).all() and (se["category_id"] != "").all()

    brand_frame = pd.DataFrame({"brand_id": brands["brand_id"], "category_id": brands["category_id"]})
    pairs = se.merge(brand_frame, on="category_id").sort_values("event_time", kind="stable")
    t = touches[["user_id", "brand_id", "event_time", "vertical"]].rename(columns={"event_time": "touch_at"})
    pairs = pd.merge_asof(pairs, t.sort_values("touch_at", kind="stable"), left_on="event_time", right_on="touch_at",
                          by=["user_id", "brand_id"], allow_exact_matches=False, direction="backward")
    seed_window = pd.to_timedelta(pairs["category_id"].map(lambda c: params.windows_of(c)[0]))
    conversion_window = pd.to_timedelta(pairs["category_id"].map(lambda c: params.windows_of(c)[1]))
    pairs["seeded"] = pairs["touch_at"].notna() & (pairs["touch_at"] >= pairs["event_time"] - seed_window)
    pairs["match"] = pairs["seeded"] & (pairs["vertical"] == pairs["category_id"])

    orders = _read(root, truth, "orders").astype({"user_id": str, "item_id": str, "order_id": str})
    orders["paid_at"] = _times(orders["paid_at"])
    items = pd.read_csv(root / "items" / "items.csv", dtype=str)
    # SPEC 3: the latest delivery of an order_id is its version
    orders = orders.sort_values("_dt", kind="stable").drop_duplicates("order_id", keep="last")
    orders = orders.drop(columns=["brand_id"]).merge(items[["item_id", "brand_id"]], on="item_id")
    paid = orders[orders["status"] == "paid"][["user_id", "brand_id", "paid_at"]]
    m = pairs[["search_id", "user_id", "brand_id", "event_time"]].assign(window=conversion_window)
    m = m.merge(paid, on=["user_id", "brand_id"])
    hit = m[(m["paid_at"] >= m["event_time"]) & (m["paid_at"] <= m["event_time"] + m["window"])]
    pairs["converted"] = pairs.set_index(["search_id", "brand_id"]).index.isin(hit.set_index(["search_id", "brand_id"]).index)
    # SPEC 5, Arrival: a pair of search day d is final when d + ceil(conversion_window) < W.
    last = date.fromisoformat(truth["end"])
    search_day = pairs["event_time"].dt.tz_convert("Asia/Shanghai").dt.date
    open_days = pd.to_timedelta(-(-conversion_window // timedelta(days=1)), unit="D")
    pairs["final"] = (pd.to_datetime(search_day) + open_days < pd.Timestamp(last)).to_numpy(dtype=bool)
    return touches, se, pairs


def _cells(pairs: pd.DataFrame) -> dict:
    """Pairs and conversions of the final pairs, by seeding and vertical match."""
    final = pairs[pairs["final"]]

    def cell(mask):
        return {"pairs": int(mask.sum()), "conversions": int((final["converted"] & mask).sum())}

    return {
        "unseeded": cell(~final["seeded"]),
        "seeded_vertical_match": cell(final["match"]),
        "seeded_mismatch": cell(final["seeded"] & ~final["match"]),
        "seeded": cell(final["seeded"]),
    }


def test_planted_effects_visible_in_raw_files(world):
    root, truth = world
    touches, searches, pairs = _funnel_frames(root, truth)
    cells = _cells(pairs)
    # the raw files, read independently, give exactly the simulator's own bookkeeping
    assert cells == truth["estimand"]["realised_pair_counts"]

    def ratio(k):
        return (cells[k]["conversions"] / cells[k]["pairs"]) / (cells["unseeded"]["conversions"] / cells["unseeded"]["pairs"])

    assert cells["seeded_vertical_match"]["conversions"] > 200
    assert 2.1 < ratio("seeded_vertical_match") < 3.4
    assert 0.95 < ratio("seeded_mismatch") < 1.75
    assert ratio("seeded_mismatch") < ratio("seeded_vertical_match")


#: Decision cycles (SPEC 5.11): baby products a long one, skincare a short conversion window.
CYCLES = {"cat_baby": {"seed_window_days": 40, "conversion_window_days": 7}, "cat_skincare": {"conversion_window_days": 1}}


def test_windows_per_category_are_planted_and_observable(tmp_path):
    # The simulator plants search-backs, conversions and finality by the windows of the brand's
    # category; the raw files, read with those windows, give exactly its bookkeeping.
    params = FunnelParams(category_windows=CYCLES)
    simulate_world(tmp_path, users=600, days=8, start=START, seed=5, seeds_dir=SEEDS, params=WorldParams(funnel=params))
    truth = json.loads((tmp_path / "ground_truth.json").read_text(encoding="utf-8"))
    assert truth["parameters"]["funnel"]["category_windows"] == {
        c: {k: float(v) for k, v in w.items()} for c, w in CYCLES.items()
    }
    _, _, pairs = _funnel_frames(tmp_path, truth, params)
    assert _cells(pairs) == truth["estimand"]["realised_pair_counts"]
    # Read with the global windows only, they would not.
    _, _, plain = _funnel_frames(tmp_path, truth)
    assert _cells(plain) != truth["estimand"]["realised_pair_counts"]


def test_exposed_users_search_their_brands_category_more(world):
    root, truth = world
    touches, searches, _ = _funnel_frames(root, truth)
    brand_cat = pd.read_csv(SEEDS / "brands.csv", dtype=str).set_index("brand_id")["category_id"]
    exposed = touches.assign(category_id=touches["brand_id"].map(brand_cat))[["user_id", "category_id"]].drop_duplicates()
    n_users = truth["users"]
    per_cat = searches.groupby("category_id").size()
    hits = searches.merge(exposed.assign(exposed=True), on=["user_id", "category_id"], how="left")
    hits["exposed"] = hits["exposed"].fillna(False).astype(bool)
    n_exposed = exposed.groupby("category_id").size()
    by_exposed = hits[hits["exposed"]].groupby("category_id").size() / n_exposed
    by_unexposed = hits[~hits["exposed"]].groupby("category_id").size() / (n_users - n_exposed)
    assert (per_cat > 0).all()
    assert ((by_exposed / by_unexposed).dropna() > 2).all()


def test_orders_answer_searches_and_refunds_never_count(world):
    root, truth = world
    orders = _read(root, truth, "orders")
    assert (orders["amount_fen"].astype(int) > 0).all()
    assert set(orders["status"]) == {"paid", "refunded"}
    c = truth["counts"]
    assert c["orders_refunded"] > 0 and c["orders_paid"] > c["orders_refunded"]
    assert truth["estimand"]["factor_vertical_match"] == 2.7 and truth["estimand"]["factor_mismatch"] == 1.3


def test_custom_seeds_with_hashed_creators_deliver_every_note(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "categories.csv").write_text(
        "category_id,name,keywords\ncat_a,露营,露营|帐篷\ncat_b,咖啡,咖啡|挂耳咖啡\n", encoding="utf-8")
    (seeds / "brands.csv").write_text(
        "brand_id,name,aliases,category_id\nb_1,牧高笛,牧高笛|Mobi Garden,cat_a\nb_2,挪客,挪客|Naturehike,cat_a\n"
        "b_3,三顿半,三顿半|三頓半|Saturnbird,cat_b\nb_4,永璞,永璞|Yongpu,cat_b\n", encoding="utf-8")
    (seeds / "creators.csv").write_text(
        "platform,author_id,vertical\nxiaohongshu,5f1d2c3b4a59687766554433,cat_a\n"
        "douyin,0123456789abcdef,cat_b\nweibo,fedcba9876543210,cat_a\n", encoding="utf-8")
    out = tmp_path / "landing"
    simulate_world(out, users=300, days=3, start=START, seed=3, seeds_dir=seeds)
    truth = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
    delivered = sum(f["rows"] for f in truth["files"] if f["source"] == "notes")
    broken = sum(1 for m in truth["defects"]["malformed"] if m["source"] == "notes")
    assert delivered - broken == truth["counts"]["notes"] + truth["defects"]["variants"].get("notes_redelivered", 0)
    hashed = [json.loads(line) for p in out.glob("notes/douyin/dt=*/search_contents_*.jsonl")
              for line in p.read_text(encoding="utf-8").splitlines() if line.endswith("}")]
    assert any(r.get("creator_hash") == "0123456789abcdef" for r in hashed)


def test_space_searches_keeps_windows_disjoint():
    from pipelines.simulate.world import space_searches

    day = 86_400
    # user 0 / category 0 at 0, 2 d, 3 d + 2 s, 5 d, 9 d: 2 d is too close to 0; 3 d + 2 s is
    # 1 d + 2 s after 2 d (dropped too, though 3 d + 2 s from the kept 0); 5 d is close to 3 d + 2 s;
    # 9 d is 4 d after 5 d: kept. Another category is independent.
    s = pd.DataFrame({
        "user": [0, 0, 0, 0, 0, 0],
        "cat": [0, 0, 0, 0, 0, 1],
        "t": [0, 2 * day, 3 * day + 2, 5 * day, 9 * day, 2 * day],
        "source": 0,
    })
    kept, dropped = space_searches(s, 3 * day)
    assert dropped == 3
    assert sorted(zip(kept["cat"], kept["t"], strict=True)) == [(0, 0), (0, 9 * day), (1, 2 * day)]


def test_project_matcher_finds_exactly_the_planted_brands_and_one_category(small):
    from pipelines.reference import load_reference
    from pipelines.text.matcher import Matcher

    root, summary = small["a"]
    world, _, _ = plan_world(users=summary.users, days=summary.days, start=START, seed=summary.seed, seeds_dir=SEEDS)
    n = world.notes
    tags = [t.split("|") for t in n["tags"]]
    notes = pd.DataFrame({
        "platform": np.asarray(schemas.PLATFORMS)[n["platform"].to_numpy()],
        "note_id": n["note_id"].to_numpy(),
        "title": n["title"].to_numpy(),
        "text": n["body"].to_numpy(),
        "tags": tags,
    })
    matcher = Matcher.from_reference(load_reference(SEEDS))
    found = matcher.note_brands(notes)
    planted = world.note_brands.assign(
        platform=notes["platform"].to_numpy()[world.note_brands["note"].to_numpy()],
        note_id=notes["note_id"].to_numpy()[world.note_brands["note"].to_numpy()],
        brand_id=world.brands["brand_id"].to_numpy()[world.note_brands["brand"].to_numpy()],
    )
    key = ["platform", "note_id", "brand_id"]
    assert sorted(map(tuple, found[key].to_numpy())) == sorted(map(tuple, planted[key].to_numpy()))
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    searches = _read(root, truth, "searches").astype({"search_id": str, "query": str})
    searches = searches[~searches["search_id"].str.startswith("s_bad_")].drop_duplicates("search_id")
    cats = matcher.search_categories(searches)
    assert len(cats) == len(searches) and cats["search_id"].is_unique


# ---------------------------------------------------------------- arrival


def _local_day(ts: pd.Series) -> pd.Series:
    return ts.dt.tz_convert("Asia/Shanghai").dt.date.map(date.isoformat)


def test_manifest_lists_every_file_and_version(small):
    root, summary = small["a"]
    schedule = json.loads((root / "arrivals.json").read_text(encoding="utf-8"))
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    files = schedule["files"]
    paths = [f["path"] for f in files]
    assert len(paths) == len(set(paths)) == summary.files
    assert set(paths) == set(_landing_hashes(root)) == {f["path"] for f in truth["files"]}
    stored = {f["path"]: [v["file"] for v in f["versions"]] for f in files}
    on_disk_versions = {k for k in _hashes(root) if k.startswith(".versions/")}
    assert on_disk_versions == {v for vs in stored.values() for v in vs[:-1]}
    for f in files:
        vs = f["versions"]
        assert vs[-1]["file"] == f["path"] and f["arrival"] == vs[0]["arrival"]
        assert [v["arrival"] for v in vs] == sorted({v["arrival"] for v in vs})  # strictly later versions
        if f["dt"]:
            assert f["arrival"] == f["dt"] and re.search(rf"/dt={f['dt']}/", f["path"])
        else:
            assert f["arrival"] == schedule["start"]
        assert schedule["start"] <= vs[-1]["arrival"] <= schedule["end"]
    resent = [f for f in files if len(f["versions"]) > 1]
    assert len(resent) == summary.resent_files == len(truth["arrival"]["resent_files"]) > 0
    assert set(schedule["runs"]) | set(schedule["missed_runs"]) == {(START + timedelta(days=i)).isoformat() for i in range(5)}
    assert len(schedule["missed_runs"]) == 1 and schedule["missed_runs"][0] not in (schedule["start"], schedule["end"])


def test_resent_file_is_a_superset_of_its_first_version(small):
    root, _ = small["a"]
    truth = json.loads((root / "ground_truth.json").read_text(encoding="utf-8"))
    formats = {f["path"]: f["format"] for f in truth["files"]}
    bad: dict[str, set[int]] = {}
    for m in truth["defects"]["malformed"]:
        bad.setdefault(m["file"], set()).add(m["line"])
    resent = [f for f in load_schedule(root).files if len(f["versions"]) > 1]
    assert {r["path"] for r in truth["arrival"]["resent_files"]} == {f["path"] for f in resent}
    for f in resent:
        first, final = f["versions"]
        assert first["arrival"] == f["dt"] < final["arrival"]
        assert first["file"] == f".versions/{f['dt']}/{f['path']}" and final["file"] == f["path"]
        early = _read_file(root / first["file"], formats[f["path"]])
        late = _read_file(root / final["file"], formats[f["path"]], bad.get(f["path"], set()))
        assert 0 < len(early) == first["rows"] < len(late) <= final["rows"]
        cols = list(early.columns)
        assert cols == list(late.columns)
        assert set(map(tuple, early.astype(str).to_numpy())) < set(map(tuple, late[cols].astype(str).to_numpy()))
    assert len({f["source"] for f in resent}) >= 2


def test_materialize_rebuilds_the_landing_zone_of_any_day(world, tmp_path):
    root, truth = world
    schedule = load_schedule(root)
    landing = tmp_path / "landing"
    (landing / "notes").mkdir(parents=True)
    (landing / "notes" / "stray.json").write_text("{}")  # not from the simulation: removed
    (landing / "keep.txt").write_text("outside the source folders: left alone")
    early = schedule.days[2]
    r = materialize(root, early, landing)
    got = _landing_hashes(landing)
    arrived = {f["path"] for f in schedule.files if f["arrival"] <= early.isoformat()}
    assert set(got) == arrived and r.files == len(arrived) and r.removed == 1
    assert (landing / "keep.txt").exists() and not (landing / "arrivals.json").exists()
    dts = {m.group(1) for p in got if (m := re.search(r"dt=([\d-]+)", p))}
    assert max(dts) == early.isoformat()
    assert {re.search(r"dt=([\d-]+)", p).group(1) for p in got if p.startswith("id_links/")} == {START.isoformat()}
    # a file re-sent later is present in its first version
    for f in schedule.files:
        if len(f["versions"]) > 1 and f["arrival"] <= early.isoformat() < f["versions"][1]["arrival"]:
            assert got[f["path"]] == hashlib.sha256((root / f["versions"][0]["file"]).read_bytes()).hexdigest()
    # the last day: exactly the final landing zone; again: nothing to do
    materialize(root, schedule.days[-1], landing)
    assert _landing_hashes(landing) == _landing_hashes(root)
    again = materialize(root, schedule.days[-1], landing)
    assert (again.added, again.replaced, again.removed) == (0, 0, 0)
    # back in time takes the later files away again
    before = materialize(root, START - timedelta(days=1), landing)
    assert before.files == 0 and _landing_hashes(landing) == {} and (landing / "keep.txt").exists()
    with pytest.raises(ValueError):
        materialize(root, START, root)


def test_materialize_day_by_day_shows_each_version_when_it_arrived(small, tmp_path):
    root, _ = small["a"]
    schedule = load_schedule(root)
    landing = tmp_path / "landing"
    resent = [f for f in schedule.files if len(f["versions"]) > 1]
    seen: dict[str, set[str]] = {f["path"]: set() for f in resent}
    for day in schedule.days:
        materialize(root, day, landing)
        for f in resent:
            path = landing / f["path"]
            if path.exists():
                seen[f["path"]].add(hashlib.sha256(path.read_bytes()).hexdigest())
                current = [v for v in f["versions"] if v["arrival"] <= day.isoformat()][-1]
                assert path.read_bytes() == (root / current["file"]).read_bytes()
                if os.name == "posix":
                    assert os.path.samefile(path, root / current["file"])  # hard-linked
    assert all(len(v) == 2 for v in seen.values())


def test_late_rows_sit_in_later_delivery_folders(world):
    root, truth = world
    late = truth["arrival"]["late_rows"]
    se = _read(root, truth, "searches").astype({"search_id": str})
    se = se[~se["search_id"].str.startswith("s_bad_")].drop_duplicates("search_id")
    day = _local_day(_times(se["event_time"]))
    assert (day <= se["_dt"]).all()
    assert int((day < se["_dt"]).sum()) == late["searches"] > 0
    ex = _read(root, truth, "exposures")
    ex_day = _local_day(_times(ex["event_time"]))
    assert (ex_day <= ex["_dt"]).all()
    n_late = int((ex_day < ex["_dt"]).sum())
    assert late["exposures"] <= n_late <= late["exposures"] * 1.01  # exact duplicates of late rows add a few
    assert 0.03 < late["exposures"] / truth["counts"]["exposures_generated"] < 0.07
    lag = (pd.to_datetime(ex["_dt"]) - pd.to_datetime(ex_day)).dt.days
    assert lag.max() <= 10


def test_refunds_and_corrections_are_later_versions_of_an_order(world):
    root, truth = world
    orders = _read(root, truth, "orders").astype({"order_id": str, "amount_fen": np.int64})
    orders = orders.drop_duplicates(["order_id", "status", "amount_fen", "_dt"])
    versions = orders.groupby("order_id").agg(n=("_dt", "size"), dts=("_dt", "nunique"))
    assert (versions["n"] == versions["dts"]).all()  # never two versions of an order in one delivery
    multi = orders[orders["order_id"].isin(versions.index[versions["n"] > 1])].sort_values(["order_id", "_dt"])
    first = multi.drop_duplicates("order_id", keep="first").set_index("order_id")
    last = multi.drop_duplicates("order_id", keep="last").set_index("order_id")
    assert (first["_dt"] < last["_dt"]).all() and (first["status"] == "paid").all()
    refunded = last["status"] == "refunded"
    ov = truth["arrival"]["order_versions"]
    assert int(refunded.sum()) == ov["refunded_later"] > 0
    assert (first.loc[refunded, "amount_fen"] == last.loc[refunded, "amount_fen"]).all()
    corrected = ~refunded
    assert int(corrected.sum()) == ov["amount_corrected"] > 0
    assert (last.loc[corrected, "amount_fen"] < first.loc[corrected, "amount_fen"]).all()
    assert (last.loc[corrected, "amount_fen"] > 0).all()
    assert ov["pairs_unconverted_by_refunds"] <= ov["refunded_later"]
    final = orders.sort_values("_dt", kind="stable").drop_duplicates("order_id", keep="last")
    assert int((final["status"] == "paid").sum()) == truth["counts"]["orders_paid"]
    assert int((final["status"] == "refunded").sum()) == truth["counts"]["orders_refunded"]


def test_id_links_come_in_weekly_batches_with_corrections_and_revocations(world):
    root, truth = world
    links = _read(root, truth, "id_links").astype({"ext_user_id": str, "user_id": str})
    links["confidence"] = links["confidence"].astype(float)
    batches = truth["arrival"]["id_links"]["batch_days"]
    assert batches == [(START + timedelta(days=d)).isoformat() for d in (0, 7, 14)]
    assert sorted(links["_dt"].unique()) == batches
    first_named = links.groupby(["platform", "ext_user_id"])["_dt"].min()
    share_first = float((first_named == batches[0]).mean())
    assert 0.55 < share_first < 0.65
    key = ["platform", "ext_user_id"]
    per_account = links.groupby(key)["_dt"].nunique()
    changed = links.set_index(key).loc[per_account.index[per_account > 1]].reset_index()
    latest = changed.groupby(key)["_dt"].transform("max")
    early, last = changed[changed["_dt"] != latest], changed[changed["_dt"] == latest]
    revoked = last.groupby(key)["confidence"].max() == 0
    assert int(revoked.sum()) == truth["arrival"]["id_links"]["accounts_revoked"] > 0
    # a revocation names the user the earlier batch linked, with confidence 0
    rv = last.set_index(key).loc[revoked.index[revoked]]
    before = early.set_index(key).loc[revoked.index[revoked]]
    assert (before.groupby(level=[0, 1])["confidence"].max() >= 0.8).all()
    assert set(rv.index) == set(before.index)
    corrected = ~revoked
    assert int(corrected.sum()) == truth["arrival"]["id_links"]["accounts_corrected"] > 0
    c_idx = corrected.index[corrected]
    old_users = early.set_index(key).loc[c_idx].groupby(level=[0, 1])["user_id"].agg(frozenset)
    new_users = last.set_index(key).loc[c_idx].groupby(level=[0, 1])["user_id"].agg(frozenset)
    assert all(o != n for o, n in zip(old_users, new_users, strict=True))
    assert truth["links"]["link_rows_delivered"] == len(links)
    assert truth["links"]["link_rows"] == len(links) - len(early)  # the final claims


def test_notes_arrive_after_the_first_exposures_to_them(world):
    root, truth = world
    world_, _, _ = plan_world(users=truth["users"], days=truth["days"], start=START, seed=truth["seed"], seeds_dir=SEEDS)
    notes = world_.notes
    n = truth["arrival"]["notes"]
    assert n["exposures_before_note_delivery"] > 0 and n["touches_before_note_delivery"] > 0
    assert max(int(k) for k in n["delivery_lag_days"]) == 10
    # Spider_XHS writes one <note_id>_info.json per note: its dt folder is the note's delivery day
    dates = np.array([(START + timedelta(days=i)).isoformat() for i in range(truth["days"])])
    delivered = dict(zip(notes["note_id"], dates[notes["delivered_day"].to_numpy()], strict=True))
    redelivered = dict(zip(notes["note_id"], notes["redelivered_day"], strict=True))
    info = list(root.glob("notes/xiaohongshu/dt=*/*_info.json"))
    assert info
    for p in info:
        note_id, dt = p.name.removesuffix("_info.json"), p.parent.name[3:]
        assert dt == delivered[note_id] or (redelivered[note_id] >= 0 and dt == dates[redelivered[note_id]])
    ex = _read(root, truth, "exposures").astype({"note_id": str})
    first_seen = _local_day(_times(ex["event_time"])).groupby(ex["note_id"]).min()
    later = [nid for nid, d in first_seen.items() if nid in delivered and d < delivered[nid]]
    assert len(later) > 0.1 * len(first_seen)


def test_in_order_flag_delivers_everything_on_its_own_day(tmp_path):
    out = tmp_path / "in_order"
    summary = simulate_world(out, users=400, days=9, start=START, seed=4, seeds_dir=SEEDS,
                             arrival=ArrivalParams.in_order())
    assert summary.arrival == "in_order" and summary.late_rows == 0 and summary.resent_files == 0
    assert not (out / ".versions").exists()
    truth = json.loads((out / "ground_truth.json").read_text(encoding="utf-8"))
    schedule = load_schedule(out)
    assert schedule.missed_runs == () and schedule.runs == schedule.days
    assert all(len(f["versions"]) == 1 for f in schedule.files)
    assert {f["dt"] for f in schedule.files if f["source"] == "id_links"} == {START.isoformat()}
    for source, col in (("exposures", "event_time"), ("searches", "event_time"), ("orders", "paid_at")):
        df = _read(out, truth, source)
        bad = {m["line"] for m in truth["defects"]["malformed"] if m["source"] == source}
        if bad:
            df = df[~df[col].astype(str).str.contains("2026-02-30")]
        df = df[df[col].notna()]
        assert (_local_day(_times(df[col])) == df["_dt"]).all(), source
    orders = _read(out, truth, "orders").drop_duplicates()
    assert orders["order_id"].is_unique
    a = truth["arrival"]
    assert a["mode"] == "in_order" and a["late_rows"] == {"exposures": 0, "searches": 0, "orders": 0}
    assert a["order_versions"]["refunded_later"] == 0 and a["id_links"]["accounts_revoked"] == 0
    assert set(a["notes"]["delivery_lag_days"]) == {"0"}
    # the realistic world of the same seed: same people, same behaviour before arrival changes it
    real = simulate_world(tmp_path / "real", users=400, days=9, start=START, seed=4, seeds_dir=SEEDS)
    assert real.arrival == "realistic" and real.late_rows > 0 and real.exposures == summary.exposures
