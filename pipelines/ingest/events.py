"""Readers for the event and dimension inputs: exposures, id_links, searches, orders, spend, items.

Files carry the canonical column names of ``schemas`` (case and surrounding spaces ignored; extra
columns ignored). Every type, enum, range and required check derives from the table's declaration.
A table's platform comes from its landing folder where it has one (exposures, id_links), else
from the file's platform column (spend), whose spellings (``validate.PLATFORM_ALIASES``) are read
as the platform they name.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from .. import schemas
from ..reference import canonical_author_id
from .files import RawRecords
from .quarantine import Checks, FileContext
from .validate import column, platform_agrees, platform_names

#: Columns a file may leave out because ingestion fills them: from the folder, (orders) from the
#: items snapshot, (spend) a default type and an id derived from the row (``spend_ids``).
FILLED: dict[str, tuple[str, ...]] = {
    "orders": ("brand_id", "category_id"),
    "spend": ("spend_id", "spend_type"),
}
FROM_CONTEXT = ("dt", "platform")
#: FILLED columns computed from the row's other typed values when the file leaves them empty.
DERIVED: dict[str, tuple[str, ...]] = {"spend": ("spend_id",)}
#: The spend_type of a spend row that names none: SPEC 5.11's spend file has no type, it is a fee.
DEFAULT_SPEND_TYPE = "creator_fee"


class WrongShape(Exception):
    """The file's columns are not those of the table it was delivered as."""


def canonical_columns(raw: pd.DataFrame, checks: Checks) -> pd.DataFrame:
    """The frame with column names stripped and lower-cased.

    Spellings of one name (``Kind`` and ``kind`` in one JSONL file, say) become one column: a
    row takes the value of whichever spelling it gives. A row that gives two of them is
    flagged in ``checks`` as a malformed record (which value it meant is unknown).
    """
    names = [str(c).strip().lower() for c in raw.columns]
    if len(set(names)) == len(names):
        return raw.set_axis(names, axis=1)
    out: dict[str, pd.Series] = {}
    for name in dict.fromkeys(names):
        at = [i for i, n in enumerate(names) if n == name]
        values = raw.iloc[:, at[0]]
        if len(at) > 1:
            spellings = raw.iloc[:, at]
            given = spellings.notna() & spellings.astype("string").apply(lambda s: s.str.strip().ne("")).fillna(False)
            shown = ", ".join(repr(str(raw.columns[i])) for i in at)
            checks.flag(given.sum(axis=1).gt(1), "malformed_record", f"field {name!r} is given more than once (as {shown}); keep one spelling")
            values = spellings.where(given).bfill(axis=1).iloc[:, 0].where(given.any(axis=1), values)
        out[name] = values
    return pd.DataFrame(out, index=raw.index)


def required_columns(table: schemas.Table, platform_folder: bool = True) -> list[str]:
    """Columns a file of ``table`` must carry (its platform too when no folder gives it)."""
    context = FROM_CONTEXT if platform_folder else tuple(c for c in FROM_CONTEXT if c != "platform")
    skip = set(context) | set(FILLED.get(table.name, ()))
    return [c.name for c in table.columns if not c.nullable and c.name not in skip]


def check_shape(columns: list[str], table: schemas.Table, platform_folder: bool = True) -> None:
    """Raise ``WrongShape`` naming what is missing and which table the file looks like."""
    cols = set(columns)
    missing = [c for c in required_columns(table, platform_folder) if c not in cols]
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
    category_id is empty take them from ``items`` (the catalog snapshot) by item_id. Spend rows
    without a spend_type are fees (``DEFAULT_SPEND_TYPE``), without a spend_id take the one
    derived from the row (``spend_ids``); their author_id is a creator_hash (a raw id is hashed).
    """
    raw = records.frame.reset_index(drop=True)
    checks = Checks(raw.index)
    raw = canonical_columns(raw, checks)
    check_shape(list(raw.columns), table, platform_folder=ctx.platform is not None)
    if table.name == "orders":
        raw = _fill_from_items(raw, items)
    if table.name == "spend":
        raw = _fill_spend_type(raw)
    derived = DERIVED.get(table.name, ())
    out: dict[str, object] = {}
    for col in table.columns:
        if col.name == "dt":
            out["dt"] = ctx.day
        elif col.name == "platform" and ctx.platform is not None:
            if "platform" in raw.columns:
                platform_agrees(raw["platform"], ctx.platform, checks)
            out["platform"] = ctx.platform
        elif col.name == "platform" and col.name in raw.columns:
            out["platform"] = column(platform_names(raw["platform"]), col, checks)
        elif col.name in derived:
            # Given where the file has it; derived from the typed row after this loop otherwise.
            given = raw[col.name] if col.name in raw.columns else pd.Series(None, index=raw.index, dtype=object)
            out[col.name] = column(given, replace(col, nullable=True), checks)
        elif col.name in raw.columns:
            out[col.name] = column(raw[col.name], col, checks, day=ctx.day)
        elif col.nullable:
            out[col.name] = None
        else:
            # Only FILLED columns reach here; they are required once filling had its chance.
            out[col.name] = column(pd.Series(None, index=raw.index, dtype=object), col, checks)
    frame = pd.DataFrame(out, index=raw.index)
    if table.name == "spend":
        present = frame["author_id"].notna()
        frame.loc[present, "author_id"] = canonical_author_id(frame.loc[present, "author_id"])
        frame["spend_id"] = frame["spend_id"].fillna(spend_ids(frame))
    frame["_pos"] = np.arange(len(raw))
    return frame, checks


def spend_ids(frame: pd.DataFrame) -> pd.Series:
    """The derived spend_id of typed spend rows: ``schemas.SPEND_ID_FROM`` joined with ``|``,
    spent_at as UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` and an empty note_id as ``""``. The same
    payment written with another time spelling or a raw author id gets the same id, so a re-sent
    file names the same spends and a corrected amount is a new version of its spend (SPEC 3's
    rule for orders). Missing where a part is missing (such a row is quarantined anyway)."""
    parts = []
    for name in schemas.SPEND_ID_FROM:
        values = frame[name]
        if schemas.SPEND.column(name).type == "ts":
            values = pd.Series(values, copy=False).dt.tz_convert("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        text = pd.Series(values, copy=False).astype("str")
        parts.append(text.fillna("") if schemas.SPEND.column(name).nullable else text)
    out = parts[0]
    for part in parts[1:]:
        out = out + "|" + part
    return out


def _fill_spend_type(raw: pd.DataFrame) -> pd.DataFrame:
    """Spend rows that name no spend_type (no column, or an empty value) are creator fees."""
    raw = raw.copy()
    if "spend_type" not in raw.columns:
        raw["spend_type"] = DEFAULT_SPEND_TYPE
        return raw
    have = raw["spend_type"]
    text = have.astype("string").str.strip()
    empty = (have.isna() | text.isna() | text.eq("")).fillna(True).astype(bool)
    if empty.any():
        raw["spend_type"] = have.astype(object).where(~empty, DEFAULT_SPEND_TYPE)
    return raw


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
