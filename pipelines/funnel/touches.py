"""SPEC 5.1: linked exposures per brand of the note, and the touches among them."""

from __future__ import annotations

import pandas as pd

from .. import schemas
from ..timeutil import business_day
from .prepare import brand_categories, columns, distinct

#: Touch order wherever one is needed (docs/semantics.md): SPEC's (time, platform, note_id) plus
#: kind and ext_user_id so that no two touches of one user and brand tie.
TOUCH_ORDER: list[str] = ["touch_at", "platform", "note_id", "kind", "ext_user_id"]


def note_dimension(
    notes: pd.DataFrame, note_brands: pd.DataFrame, brands: pd.DataFrame, creators: pd.DataFrame
) -> pd.DataFrame:
    """One row per (note, brand it mentions) with the brand's category, the author and vertical."""
    note = columns(notes, schemas.NOTES, ["platform", "note_id", "author_id"]).drop_duplicates()
    dup = note.duplicated(["platform", "note_id"], keep=False)
    if dup.any():
        row = note[dup].iloc[0]
        raise ValueError(
            f"notes: ({row['platform']}, {row['note_id']}) has more than one author; the engine "
            "expects resolved notes, one row per (platform, note_id)"
        )
    mentions = columns(note_brands, schemas.NOTE_BRANDS, ["platform", "note_id", "brand_id"])
    creator = columns(creators, schemas.CREATORS, ["platform", "author_id", "vertical"])
    creator = creator.drop_duplicates()
    dup = creator.duplicated(["platform", "author_id"], keep=False)
    if dup.any():
        row = creator[dup].iloc[0]
        raise ValueError(
            f"creators: ({row['platform']}, {row['author_id']}) has more than one vertical"
        )
    out = (
        mentions.drop_duplicates()
        # A brand missing from brands.csv still makes touches (and boost), but has no category,
        # so it seeds nothing.
        .merge(brand_categories(brands), on="brand_id", how="left")
        .merge(note, on=["platform", "note_id"], how="inner")
        .merge(creator, on=["platform", "author_id"], how="left")
    )
    return out.reset_index(drop=True)


def linked_exposures(
    exposures: pd.DataFrame, links: pd.DataFrame, notes: pd.DataFrame
) -> pd.DataFrame:
    """Distinct exposures of linked ext ids, one row per brand of the note (every kind)."""
    events = distinct(exposures, schemas.EXPOSURES)
    bad = ~events["kind"].isin(schemas.EXPOSURE_KINDS)
    if bad.any():
        raise ValueError(
            f"exposures: row {int(bad.idxmax())} has kind {events.loc[bad, 'kind'].iloc[0]!r}; "
            f"known kinds are {schemas.EXPOSURE_KINDS}"
        )
    bad = ~events["platform"].isin(schemas.PLATFORMS)
    if bad.any():
        raise ValueError(
            f"exposures: row {int(bad.idxmax())} has platform {events.loc[bad, 'platform'].iloc[0]!r}; "
            f"known platforms are {schemas.PLATFORMS}"
        )
    events = events.drop(columns=["dwell_ms"]).rename(columns={"event_time": "touch_at"})
    out = events.merge(links, on=["platform", "ext_user_id"], how="inner").merge(
        notes, on=["platform", "note_id"], how="inner"
    )
    return out.reset_index(drop=True)


def touches(linked: pd.DataFrame, touch_kinds: tuple[str, ...]) -> pd.DataFrame:
    """Touches: linked exposures of a touch kind, one per fct_touches key, with their business day."""
    # Two exposures differing only in dwell_ms are one touch: the touch key has no dwell.
    out = linked.loc[linked["kind"].isin(touch_kinds)].drop_duplicates(
        ["platform", "note_id", "ext_user_id", "touch_at", "kind", "brand_id"]
    )
    out = out.sort_values(["user_id", "brand_id", *TOUCH_ORDER], kind="stable")
    out = out.reset_index(drop=True)
    out["dt"] = business_day(out["touch_at"])
    return out
