"""SPEC 3 key rules as the engine applies them: typed columns, duplicate collapse, link winners, paid orders."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from .. import schemas
from ..timeutil import UTC_DTYPE


def columns(df: pd.DataFrame, table: schemas.Table, names: Sequence[str]) -> pd.DataFrame:
    """The named columns of an input frame, typed as declared; raises naming table, row and problem."""
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise ValueError(
            f"{table.name}: input lacks column(s) {missing}; it has {list(df.columns)}"
        )
    out = df.loc[:, list(names)]
    for name in names:
        col = table.column(name)
        values = out[name]
        if not col.nullable:
            nulls = values.isna()
            if nulls.any():
                raise ValueError(
                    f"{table.name}: row {nulls.idxmax()!r} has no {name}; every row needs one"
                )
        if col.type == "ts":
            if not isinstance(values.dtype, pd.DatetimeTZDtype):
                raise ValueError(
                    f"{table.name}.{name}: expected aware UTC timestamps, got dtype {values.dtype}"
                )
            out[name] = values.dt.tz_convert("UTC").astype(UTC_DTYPE)
        elif col.type == "str" and values.dtype != "str":
            out[name] = values.astype("str")
        elif col.type == "float64":
            out[name] = values.astype("float64")
    return out


def distinct(df: pd.DataFrame, table: schemas.Table, key: Sequence[str] = ()) -> pd.DataFrame:
    """Rows equal in every column but ``dt`` collapse; a key seen again with other content is an error."""
    names = [n for n in table.names if n != "dt"]
    out = columns(df, table, names).drop_duplicates()
    if key:
        clash = out.duplicated(list(key), keep=False)
        if clash.any():
            first = out[clash].iloc[0]
            rows = list(out.index[clash & (out[list(key)] == first[list(key)]).all(axis=1)])
            value = tuple(first[k] for k in key)
            raise ValueError(
                f"{table.name}: key {dict(zip(key, value, strict=True))} appears with different content in "
                f"rows {rows}; ingestion should have quarantined the later delivery"
            )
    return out.reset_index(drop=True)


def link_winners(id_links: pd.DataFrame) -> pd.DataFrame:
    """Per (platform, ext_user_id) the claim with the highest confidence, ties to the smallest user_id."""
    links = distinct(id_links, schemas.ID_LINKS)
    bad = (links["confidence"] < 0) | (links["confidence"] > 1)
    if bad.any():
        row = links[bad].iloc[0]
        raise ValueError(
            f"id_links: confidence {row['confidence']} of ({row['platform']}, "
            f"{row['ext_user_id']}) is outside [0, 1]"
        )
    ordered = links.sort_values(
        ["platform", "ext_user_id", "confidence", "user_id"], ascending=[True, True, False, True]
    )
    return ordered.drop_duplicates(["platform", "ext_user_id"], keep="first").reset_index(drop=True)


def linked_ids(id_links: pd.DataFrame, min_confidence: float) -> pd.DataFrame:
    """(platform, ext_user_id, user_id) of the winners at or above the threshold (losers never link)."""
    winners = link_winners(id_links)
    ok = winners["confidence"] >= min_confidence
    return winners.loc[ok, ["platform", "ext_user_id", "user_id"]].reset_index(drop=True)


def brand_categories(brands: pd.DataFrame) -> pd.DataFrame:
    """(brand_id, category_id) from brands.csv, one row per brand."""
    out = columns(brands, schemas.BRANDS, ["brand_id", "category_id"]).drop_duplicates()
    dup = out["brand_id"].duplicated(keep=False)
    if dup.any():
        raise ValueError(
            f"brands: brand_id {out.loc[dup, 'brand_id'].iloc[0]!r} has more than one category"
        )
    return out.reset_index(drop=True)


def paid_orders(orders: pd.DataFrame, brands: pd.DataFrame) -> pd.DataFrame:
    """Paid orders of known brands, category taken from brands.csv whatever the order says."""
    out = distinct(orders, schemas.ORDERS, key=("order_id",))
    bad = out["amount_fen"] <= 0
    if bad.any():
        raise ValueError(
            f"orders: order {out.loc[bad, 'order_id'].iloc[0]!r} has amount_fen "
            f"{out.loc[bad, 'amount_fen'].iloc[0]}; amounts must be > 0"
        )
    paid = out.loc[out["status"] == "paid"].drop(columns=["category_id", "status"])
    paid = paid.merge(brand_categories(brands), on="brand_id", how="inner")
    paid["amount_fen"] = paid["amount_fen"].astype("int64")
    return paid.reset_index(drop=True)


def unique_searches(searches: pd.DataFrame) -> pd.DataFrame:
    """Searches with exact duplicates collapsed, one row per search_id."""
    return distinct(searches, schemas.SEARCHES, key=("search_id",))


def merge_asof(left: pd.DataFrame, right: pd.DataFrame, **kw) -> pd.DataFrame:
    """``pd.merge_asof`` that also takes empty frames (pandas fails on empty Arrow-string keys)."""
    if len(left) and len(right):
        return pd.merge_asof(left, right, **kw)
    out = left.copy()
    for name in right.columns:
        if name not in kw.get("by", ()):
            out[name] = pd.Series(
                pd.NA if len(left) else None, index=left.index, dtype=right[name].dtype
            )
    return out
