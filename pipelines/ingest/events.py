"""Readers for the event and dimension inputs: exposures, id_links, searches, orders, items.

Files carry the canonical column names of ``schemas`` (case and surrounding spaces ignored; extra
columns ignored). Every type, enum, range and required check derives from the table's declaration.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schemas
from .files import RawRecords
from .quarantine import Checks, FileContext
from .validate import column, platform_agrees

#: Columns a file may leave out because ingestion fills them: from the folder, or (orders) items.
FILLED: dict[str, tuple[str, ...]] = {
    "orders": ("brand_id", "category_id"),
}
FROM_CONTEXT = ("dt", "platform")


class WrongShape(Exception):
    """The file's columns are not those of the table it was delivered as."""


def canonical_columns(raw: pd.DataFrame) -> pd.DataFrame:
    """The frame with column names stripped and lower-cased."""
    return raw.rename(columns=lambda c: str(c).strip().lower())


def required_columns(table: schemas.Table) -> list[str]:
    """Columns a file of ``table`` must carry."""
    skip = set(FROM_CONTEXT) | set(FILLED.get(table.name, ()))
    return [c.name for c in table.columns if not c.nullable and c.name not in skip]


def check_shape(columns: list[str], table: schemas.Table) -> None:
    """Raise ``WrongShape`` naming what is missing and which table the file looks like."""
    cols = set(columns)
    missing = [c for c in required_columns(table) if c not in cols]
    if not missing:
        return
    looks = [
        t.name
        for t in schemas.INPUT_TABLES
        if t.name != table.name and t.name != "notes" and set(required_columns(t)) <= cols
    ]
    hint = f"; it looks like a {' or '.join(looks)} file" if looks else ""
    raise WrongShape(f"lacks column(s) {missing} of {table.name} (it has {sorted(cols)}){hint}")


def to_table(
    records: RawRecords,
    table: schemas.Table,
    ctx: FileContext,
    items: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, Checks]:
    """Type and check one file's records as ``table`` rows (+ ``_pos``); failures flagged in the checks.

    Raises ``WrongShape`` when the file lacks a required column. Orders whose brand_id or
    category_id is empty take them from ``items`` (the catalog snapshot) by item_id.
    """
    raw = canonical_columns(records.frame).reset_index(drop=True)
    check_shape(list(raw.columns), table)
    if table.name == "orders":
        raw = _fill_from_items(raw, items)
    checks = Checks(raw.index)
    out: dict[str, object] = {}
    for col in table.columns:
        if col.name == "dt":
            out["dt"] = ctx.day
        elif col.name == "platform" and ctx.platform is not None:
            if "platform" in raw.columns:
                platform_agrees(raw["platform"], ctx.platform, checks)
            out["platform"] = ctx.platform
        elif col.name in raw.columns:
            out[col.name] = column(raw[col.name], col, checks, day=ctx.day)
        elif col.nullable:
            out[col.name] = None
        else:
            # Only FILLED columns reach here; they are required once filling had its chance.
            out[col.name] = column(pd.Series(None, index=raw.index, dtype=object), col, checks)
    frame = pd.DataFrame(out, index=raw.index)
    frame["_pos"] = np.arange(len(raw))
    return frame, checks


def _fill_from_items(raw: pd.DataFrame, items: pd.DataFrame | None) -> pd.DataFrame:
    """Empty brand_id / category_id of orders taken from the items snapshot by item_id."""
    raw = raw.copy()
    for name in FILLED["orders"]:
        if name not in raw.columns:
            raw[name] = None
    if items is None or items.empty:
        return raw
    catalog = items.drop_duplicates("item_id", keep="last").set_index("item_id")
    key = raw["item_id"].astype("string").str.strip()
    for name in FILLED["orders"]:
        have = raw[name].astype("string").str.strip()
        empty = (have.isna() | have.eq("")).fillna(True).astype(bool)
        if empty.any():
            filled = key[empty].map(catalog[name])
            raw[name] = raw[name].astype(object)
            raw.loc[empty, name] = filled.astype(object).where(filled.notna(), None)
    return raw
