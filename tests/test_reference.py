"""Reference data: the shipped seeds load and validate; bad seeds fail with file, line and fix."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pandas as pd
import pytest

from pipelines import schemas
from pipelines.reference import (
    SeedError,
    canonical_author_id,
    creator_hash,
    is_creator_hash,
    load_reference,
)
from pipelines.text.normalize import normalize_many

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


@pytest.fixture(scope="module")
def ref():
    return load_reference(SEEDS)


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    """A writable copy of the shipped seeds."""
    out = tmp_path / "seeds"
    shutil.copytree(SEEDS, out)
    return out


def _append(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")


def _rows(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


# ---------------------------------------------------------------- creator_hash


def test_creator_hash_is_first_16_hex_of_sha256():
    ids = pd.Series(["5f2a1b", "3xk8s9dw2mq4ane", None, "5f2a1b"], index=[10, 11, 12, 13])
    out = creator_hash(ids)
    assert list(out.index) == [10, 11, 12, 13]
    assert out[10] == hashlib.sha256(b"5f2a1b").hexdigest()[:16] == out[13]
    assert out[11] == hashlib.sha256(b"3xk8s9dw2mq4ane").hexdigest()[:16]
    assert pd.isna(out[12])


def test_canonical_author_id_keeps_hashes_and_hashes_the_rest():
    h = hashlib.sha256(b"1234567890").hexdigest()[:16]
    ids = pd.Series([h, "1234567890", h.upper(), h + "0", None])
    out = canonical_author_id(ids)
    # a hash stays, its raw id hashes to it, anything not exactly 16 lowercase hex is raw
    assert out[0] == h and out[1] == h
    assert out[2] == hashlib.sha256(h.upper().encode()).hexdigest()[:16]
    assert out[3] == hashlib.sha256((h + "0").encode()).hexdigest()[:16]
    assert pd.isna(out[4])
    assert is_creator_hash(ids).tolist() == [True, False, False, False, False]


# ---------------------------------------------------------------- the shipped seeds


def test_shipped_seeds_load_with_declared_columns(ref):
    assert list(ref.brands.columns) == schemas.BRANDS.names
    assert list(ref.categories.columns) == schemas.CATEGORIES.names
    assert list(ref.creators.columns) == schemas.CREATORS.names
    assert len(ref.categories) >= 8
    assert len(ref.brands) >= 60
    assert ref.brands["brand_id"].str.match(r"^b_[a-z0-9_]+$").all()
    assert ref.categories["category_id"].str.match(r"^cat_[a-z0-9_]+$").all()
    assert set(ref.brands["category_id"]) == set(ref.categories["category_id"])


def test_shipped_creators_are_hashed_spread_over_platforms_and_verticals(ref):
    c = ref.creators
    assert is_creator_hash(c["author_id"]).all()
    per_platform = c["platform"].value_counts()
    assert set(per_platform.index) == set(schemas.PLATFORMS)
    assert per_platform.between(90, 110).all()
    per_vertical = c["vertical"].value_counts()
    assert set(per_vertical.index) == set(ref.categories["category_id"])
    assert per_vertical.max() <= 1.5 * per_vertical.min()  # roughly even
    raw = pd.read_csv(SEEDS / "creators.csv", dtype=str)
    # realistic raw ids, none of which could be mistaken for a hash
    assert not is_creator_hash(raw["author_id"]).any()
    shapes = {
        "xiaohongshu": r"^[0-9a-f]{24}$",
        "douyin": r"^[1-9]\d{10,18}$",
        "bilibili": r"^[1-9]\d{5,9}$",
        "kuaishou": r"^3x[0-9a-z]{13}$",
        "weibo": r"^[1-9]\d{9}$",
    }
    for platform, pattern in shapes.items():
        ids = raw.loc[raw["platform"] == platform, "author_id"]
        assert ids.str.match(pattern).all(), platform


def _normal_items(frame: pd.DataFrame, column: str, owner: str) -> pd.DataFrame:
    items = frame.assign(item=frame[column].str.split("|")).explode("item")
    items["normal"] = normalize_many(items["item"].str.strip().tolist())
    return items[[owner, "item", "normal"]]


def test_keywords_do_not_collide_with_aliases_and_aliases_are_unique(ref):
    aliases = _normal_items(ref.brands, "aliases", "brand_id")
    keywords = _normal_items(ref.categories, "keywords", "category_id")
    assert not set(aliases["normal"]) & set(keywords["normal"])
    per_alias = (
        aliases.drop_duplicates(["brand_id", "normal"]).groupby("normal")["brand_id"].nunique()
    )
    assert per_alias.max() == 1, per_alias[per_alias > 1]
    assert keywords.groupby("normal")["category_id"].nunique().max() == 1
    # the deliberate hard cases are present
    normal = set(aliases["normal"])
    assert {"mac", "mi", "hr", "sk-ii", "小米", "美的", "雀巢", "雀巢咖啡", "米"} <= normal
    assert "雅诗兰黛" in set(aliases.loc[aliases["item"] == "雅詩蘭黛", "normal"])


# ---------------------------------------------------------------- bad seeds


def test_missing_folder_and_missing_file(tmp_path: Path, seeds_copy: Path):
    with pytest.raises(SeedError, match="seeds folder not found"):
        load_reference(tmp_path / "nowhere")
    (seeds_copy / "brands.csv").unlink()
    with pytest.raises(
        SeedError, match=r"brands\.csv: file not found.*brand_id, name, aliases, category_id"
    ):
        load_reference(seeds_copy)


def test_creators_file_is_optional(seeds_copy: Path):
    (seeds_copy / "creators.csv").unlink()
    ref = load_reference(seeds_copy)
    assert len(ref.creators) == 0 and list(ref.creators.columns) == schemas.CREATORS.names


def test_missing_column_names_the_header(seeds_copy: Path):
    path = seeds_copy / "categories.csv"
    text = path.read_text(encoding="utf-8").splitlines()
    text[0] = "category_id,name,words"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    with pytest.raises(SeedError, match=r"categories\.csv: missing column\(s\) keywords"):
        load_reference(seeds_copy)


def test_duplicate_brand_id_names_both_lines(seeds_copy: Path):
    path = seeds_copy / "brands.csv"
    n = _rows(path)
    _append(path, "b_mac,魅可二号,魅可2,cat_makeup")
    first = next(
        i
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if line.startswith("b_mac,")
    )
    with pytest.raises(SeedError) as e:
        load_reference(seeds_copy)
    msg = str(e.value)
    assert "brands.csv" in msg and f"line {n + 1}" in msg and f"already on line {first}" in msg
    assert "'b_mac'" in msg


def test_unknown_brand_category(seeds_copy: Path):
    path = seeds_copy / "brands.csv"
    n = _rows(path)
    _append(path, "b_tesla,特斯拉,特斯拉|Tesla,cat_cars")
    with pytest.raises(
        SeedError, match=rf"brands\.csv: 1 invalid row(.|\n)*line {n + 1}: category_id 'cat_cars'"
    ):
        load_reference(seeds_copy)


def test_empty_cell(seeds_copy: Path):
    path = seeds_copy / "brands.csv"
    n = _rows(path)
    _append(path, "b_tesla,特斯拉,,cat_digital")
    with pytest.raises(SeedError, match=rf"line {n + 1}: column 'aliases' is empty"):
        load_reference(seeds_copy)


def test_bad_creator_platform_and_vertical(seeds_copy: Path):
    path = seeds_copy / "creators.csv"
    n = _rows(path)
    _append(path, "taobao,123456,cat_pet")
    with pytest.raises(
        SeedError,
        match=rf"creators\.csv(.|\n)*line {n + 1}: platform 'taobao' is not one of xiaohongshu",
    ):
        load_reference(seeds_copy)
    path.write_text(
        path.read_text(encoding="utf-8").replace("taobao,123456,cat_pet", "weibo,123456,cat_cars"),
        encoding="utf-8",
    )
    with pytest.raises(SeedError, match=rf"line {n + 1}: vertical 'cat_cars' is not a category_id"):
        load_reference(seeds_copy)


def test_raw_id_and_its_hash_are_the_same_creator(seeds_copy: Path):
    path = seeds_copy / "creators.csv"
    n = _rows(path)
    h = hashlib.sha256(b"1234567890").hexdigest()[:16]
    _append(path, "weibo,1234567890,cat_pet")
    _append(path, f"weibo,{h},cat_pet")
    with pytest.raises(
        SeedError,
        match=rf"line {n + 2}: duplicate key .* \(after hashing raw ids\) already on line {n + 1}",
    ):
        load_reference(seeds_copy)


def test_many_problems_are_listed_with_a_count(seeds_copy: Path):
    path = seeds_copy / "creators.csv"
    for i in range(25):
        _append(path, f"weibo,99999{i:05d},cat_nope")
    with pytest.raises(SeedError, match=r"25 invalid row\(s\)(.|\n)*and 5 more"):
        load_reference(seeds_copy)


def test_bom_and_padding_are_tolerated(seeds_copy: Path):
    path = seeds_copy / "categories.csv"
    text = path.read_text(encoding="utf-8").replace("cat_pet,宠物", "cat_pet , 宠物")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    ref = load_reference(seeds_copy)
    assert "cat_pet" in set(ref.categories["category_id"])
