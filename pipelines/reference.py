"""Reference data (seeds/): brands, categories and creators, loaded and validated.

Errors name the file, the CSV line (the header is line 1) and what to fix, and list every problem
found in a file at once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import schemas

CREATOR_HASH_LENGTH = 16
_HASH_PATTERN = rf"^[0-9a-f]{{{CREATOR_HASH_LENGTH}}}$"
_MAX_LISTED = 20  # problems listed per error message; the count says how many more


class SeedError(ValueError):
    """A seed file is missing or invalid; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Reference:
    """Validated reference data; creators' author_id is canonical (16-hex creator_hash)."""

    brands: pd.DataFrame
    categories: pd.DataFrame
    creators: pd.DataFrame

    @property
    def brand_category(self) -> pd.Series:
        """category_id indexed by brand_id."""
        return self.brands.set_index("brand_id")["category_id"]


def creator_hash(values: pd.Series) -> pd.Series:
    """First 16 hex of sha256 of each raw platform user id (MediaCrawler's creator_hash); nulls stay null."""
    s = pd.Series(values, copy=False)
    present = s.notna()
    text = s[present].astype("str")
    # hashlib has no vectorised form; hashing each distinct id once keeps it cheap.
    digests = {
        v: hashlib.sha256(v.encode("utf-8")).hexdigest()[:CREATOR_HASH_LENGTH]
        for v in text.unique()
    }
    out = pd.Series(None, index=s.index, dtype="str")
    out[present] = text.map(digests)
    return out


def is_creator_hash(values: pd.Series) -> pd.Series:
    """True where a value is already a creator_hash: exactly 16 lowercase hex characters."""
    matched = pd.Series(values, copy=False).astype("str").str.fullmatch(_HASH_PATTERN)
    return matched.fillna(False).astype(bool)


def canonical_author_id(values: pd.Series) -> pd.Series:
    """Author ids as creator_hash: 16-lowercase-hex values kept, anything else hashed."""
    s = pd.Series(values, copy=False).astype("str")
    return s.where(is_creator_hash(s), creator_hash(s))


def split_list(values: pd.Series) -> pd.Series:
    """|-separated seed cells as lists of stripped, non-empty items (a null cell is an empty list)."""
    return values.fillna("").astype(str).str.split("|").map(lambda xs: [x.strip() for x in xs if x.strip()])


def context_not_in_aliases(brands: pd.DataFrame) -> pd.Series:
    """Per brand, the context aliases (comma-joined, quoted) that its aliases do not list; "" if none."""
    pairs = zip(split_list(brands["context_aliases"]), split_list(brands["aliases"]), strict=True)
    return pd.Series(
        [", ".join(repr(c) for c in ctx if c not in set(al)) for ctx, al in pairs],
        index=brands.index,
        dtype=object,
    )


def load_reference(seeds_dir: Path) -> Reference:
    """Read and validate brands.csv, categories.csv and creators.csv (optional) from seeds_dir."""
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise SeedError(
            f"{seeds_dir}: seeds folder not found; point SEEDFUNNEL_SEEDS at a folder with brands.csv and categories.csv"
        )
    categories = _read_seed(seeds_dir / "categories.csv", schemas.CATEGORIES)
    brands = _read_seed(seeds_dir / "brands.csv", schemas.BRANDS)
    creators_path = seeds_dir / "creators.csv"
    creators = (
        _read_seed(creators_path, schemas.CREATORS)
        if creators_path.exists()
        else schemas.empty_frame(schemas.CREATORS)
    )

    known_categories = set(categories["category_id"])
    _check(
        seeds_dir / "brands.csv",
        context_not_in_aliases(brands).ne(""),
        brands.assign(stray=context_not_in_aliases(brands)),
        lambda r: (
            f"context_aliases of brand {r.brand_id!r} lists {r.stray}, which is not in its aliases; add it to aliases or remove it"
        ),
    )
    _check(
        seeds_dir / "brands.csv",
        ~brands["category_id"].isin(known_categories),
        brands,
        lambda r: (
            f"category_id {r.category_id!r} of brand {r.brand_id!r} is not in categories.csv; add it there or fix the brand"
        ),
    )
    if len(creators):
        _check(
            creators_path,
            ~creators["platform"].isin(schemas.PLATFORMS),
            creators,
            lambda r: f"platform {r.platform!r} is not one of {', '.join(schemas.PLATFORMS)}",
        )
        _check(
            creators_path,
            ~creators["vertical"].isin(known_categories),
            creators,
            lambda r: f"vertical {r.vertical!r} is not a category_id of categories.csv",
        )
        creators = creators.assign(author_id=canonical_author_id(creators["author_id"]))
        _check_unique(creators_path, creators, schemas.CREATORS.key, " (after hashing raw ids)")

    return Reference(
        brands=schemas.conform(schemas.BRANDS, brands),
        categories=schemas.conform(schemas.CATEGORIES, categories),
        creators=schemas.conform(schemas.CREATORS, creators),
    )


def _read_seed(path: Path, table: schemas.Table) -> pd.DataFrame:
    """One seed CSV as strings, declared columns only, with a `csv_line` column; shape checks done."""
    if not path.exists():
        raise SeedError(
            f"{path}: file not found; every seeds folder needs {path.name} (columns {', '.join(table.names)})"
        )
    try:
        # keep_default_na=False: "NA" or "null" is a valid alias, not a missing value.
        raw = pd.read_csv(
            path, dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True
        )
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise SeedError(f"{path}: cannot read as UTF-8 CSV with a header row: {e}") from e
    raw.columns = [str(c).strip() for c in raw.columns]
    required = [c.name for c in table.columns if not c.nullable]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise SeedError(
            f"{path}: missing column(s) {', '.join(missing)}; the header must name {', '.join(required)} (found {', '.join(raw.columns)})"
        )
    # Optional (nullable) columns may be absent or empty.
    df = raw.reindex(columns=table.names, fill_value="").apply(lambda col: col.str.strip())
    df["csv_line"] = range(2, len(df) + 2)  # header is line 1
    for name in required:
        _check(
            path,
            df[name].eq(""),
            df,
            lambda r, name=name: f"column {name!r} is empty; fill it in or remove the row",
        )
    _check_unique(path, df, table.key, "")
    return df


def _check(path: Path, bad: pd.Series, df: pd.DataFrame, describe) -> None:
    """Raise SeedError listing the lines where `bad` holds, each described by `describe(row)`."""
    if not bad.any():
        return
    rows = df[bad]
    lines = [f"  line {r.csv_line}: {describe(r)}" for r in rows.head(_MAX_LISTED).itertuples()]
    more = f"\n  ... and {len(rows) - _MAX_LISTED} more" if len(rows) > _MAX_LISTED else ""
    raise SeedError(f"{path}: {len(rows)} invalid row(s):\n" + "\n".join(lines) + more)


def _check_unique(path: Path, df: pd.DataFrame, key: tuple[str, ...], note: str) -> None:
    """Raise SeedError naming every line whose key repeats an earlier line's."""
    dup = df.duplicated(list(key), keep="first")
    if not dup.any():
        return
    first_line = df.drop_duplicates(list(key), keep="first").set_index(list(key))["csv_line"]
    key_name = ", ".join(key)

    def describe(r) -> str:
        k = tuple(getattr(r, c) for c in key)
        first = first_line.loc[k if len(k) > 1 else k[0]]
        return f"duplicate key ({key_name}) = {', '.join(map(repr, k))}{note} already on line {first}; keep one"

    _check(path, dup, df, describe)
