"""SPEC 5.1: linked exposures per brand of the note, and the touches among them.

Exposures are the one input with millions of rows, so they are handled as integer codes: every
string key is replaced by its position in a sorted list of the distinct values (code order is
string order, so sorting codes sorts the strings), joins are array look-ups, and strings come back
only for the rows that are published.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schemas
from .prepare import (
    brand_categories,
    columns,
    day_of,
    decode,
    lexsort,
    run_starts,
    sorted_ids,
    timestamps,
)

#: Touch order wherever one is needed (docs/semantics.md): SPEC's (time, platform, note_id) plus
#: kind and ext_user_id so that no two touches of one user and brand tie.
TOUCH_ORDER: list[str] = ["touch_at", "platform", "note_id", "kind", "ext_user_id"]


def note_dimension(
    notes: pd.DataFrame, note_brands: pd.DataFrame, brands: pd.DataFrame, creators: pd.DataFrame
) -> pd.DataFrame:
    """One row per (note, brand it mentions) with the brand's category, the author and vertical.

    Sorted by (platform, note_id, brand_id).
    """
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
    return out.sort_values(["platform", "note_id", "brand_id"], kind="stable", ignore_index=True)


@dataclass
class Linked:
    """Distinct exposures of linked ext ids, one row per brand of the note (every kind), as codes.

    Each code array indexes its list of distinct values (sorted, so code order is string order):
    ``user`` -> users, ``brand`` -> brands, ``platform`` -> platforms, ``note`` -> note_ids,
    ``ext`` -> ext_ids, ``kind`` -> kinds; ``mention`` is the row of ``dim`` (the note dimension:
    author, category, vertical); ``t`` is the exposure time in UTC microseconds. ``touch_key``
    is False on the rows that repeat an earlier row's touch key (they differ only in dwell_ms).
    """

    user: np.ndarray
    brand: np.ndarray
    t: np.ndarray
    platform: np.ndarray
    note: np.ndarray
    ext: np.ndarray
    kind: np.ndarray
    mention: np.ndarray
    touch_key: np.ndarray
    users: pd.Index
    brands: pd.Index
    platforms: pd.Index
    note_ids: pd.Index
    ext_ids: pd.Index
    kinds: pd.Index
    dim: pd.DataFrame

    def take(self, rows: np.ndarray) -> Linked:
        """The given rows (positions), every code array taken alike."""
        arrays = {
            name: getattr(self, name)[rows]
            for name in (
                "user",
                "brand",
                "t",
                "platform",
                "note",
                "ext",
                "kind",
                "mention",
                "touch_key",
            )
        }
        return Linked(
            **arrays,
            users=self.users,
            brands=self.brands,
            platforms=self.platforms,
            note_ids=self.note_ids,
            ext_ids=self.ext_ids,
            kinds=self.kinds,
            dim=self.dim,
        )

    def kind_codes(self, kinds: tuple[str, ...] | list[str]) -> np.ndarray:
        return np.flatnonzero(self.kinds.isin(list(kinds)))


def _codes(values: pd.Series, known: tuple[str, ...], what: str) -> tuple[np.ndarray, pd.Index]:
    """Codes of an enumerated column into its sorted known values; raises naming the first bad row."""
    codes, uniques = pd.factorize(values, sort=True)
    levels = pd.Index(sorted(known), dtype="str")
    position = levels.get_indexer(uniques)
    if (position < 0).any():
        bad = np.isin(codes, np.flatnonzero(position < 0))
        row = values.index[int(np.argmax(bad))]
        raise ValueError(
            f"exposures: row {row} has {what} {uniques[np.flatnonzero(position < 0)[0]]!r}; "
            f"known {what}s are {known}"
        )
    return position[codes] if len(codes) else codes, levels


def _positions(values: pd.Series, sorted_uniques: pd.Index) -> np.ndarray:
    """Position of each value in ``sorted_uniques``, -1 where absent (one hash pass in Arrow)."""
    if len(values) == 0 or len(sorted_uniques) == 0:
        return np.full(len(values), -1, dtype="int64")
    found = pc.index_in(
        pa.array(values), value_set=pa.array(sorted_uniques, type=pa.large_string())
    )
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype("int64")


def _pack(parts: list[tuple[np.ndarray, int]]) -> np.ndarray:
    """One int64 per row from several non-negative codes (each below its bound), order-preserving."""
    out = np.zeros(len(parts[0][0]), dtype="int64")
    span = 1
    for codes, bound in parts:
        span *= max(bound, 1)
        if span >= 2**62:
            raise OverflowError("too many distinct values to pack into one int64 key")
        out = out * max(bound, 1) + codes
    return out


def _distinct_touches(
    packed: np.ndarray, when: np.ndarray, dwell: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(distinct, touch_key): rows not repeating an earlier row's (packed, when, dwell), and,
    among those, the first row of each (packed, when) (int64 arrays of equal length).

    Rows equal in (packed, when) are the only ones either test can drop: a 64-bit hash of that pair
    finds the candidates (one hash-table pass over all rows), which are then compared exactly
    (a hash collision never merges distinct rows).
    """
    h = np.zeros(len(packed), dtype="uint64")
    for k in (packed, when):
        h = h * np.uint64(0x9E3779B97F4A7C15) + pd.util.hash_array(k)
    candidates = np.flatnonzero(pd.Series(h).duplicated(keep=False).to_numpy())
    distinct = np.ones(len(packed), dtype=bool)
    touch_key = np.ones(len(packed), dtype=bool)
    if len(candidates):
        sub = pd.DataFrame({"p": packed[candidates], "w": when[candidates], "d": dwell[candidates]})
        repeat = sub.duplicated().to_numpy()
        distinct[candidates[repeat]] = False
        later = sub.loc[~repeat].duplicated(["p", "w"]).to_numpy()
        touch_key[candidates[~repeat][later]] = False
    return distinct, touch_key[distinct]


def linked_exposures(
    exposures: pd.DataFrame,
    links: pd.DataFrame,
    notes: pd.DataFrame,
    users: pd.Index | None = None,
    brands: pd.Index | None = None,
) -> Linked:
    """Distinct exposures of linked ext ids, one row per brand of the note (every kind).

    ``links``: (platform, ext_user_id, user_id) of the linking winners; ``notes``: the note
    dimension (note_dimension); ``users`` / ``brands``: sorted distinct ids to code against
    (by default those of the links / the notes; they must include them).
    """
    events = columns(
        exposures, schemas.EXPOSURES, [n for n in schemas.EXPOSURES.names if n != "dt"]
    )
    kind, kinds = _codes(events["kind"], schemas.EXPOSURE_KINDS, "kind")
    platform, platforms = _codes(events["platform"], schemas.PLATFORMS, "platform")
    width = max(len(platforms), 1)

    # Linked ids: the ext id's position among the links' sorted ext ids, then (ext, platform) -> user.
    ext_ids = pd.Index(links["ext_user_id"].unique(), dtype="str").sort_values()
    users = sorted_ids(links["user_id"]) if users is None else users
    link_plat = platforms.get_indexer(links["platform"])
    user_of = np.full(max(len(ext_ids), 1) * width, -1, dtype="int64")
    ok = link_plat >= 0
    user_of[ext_ids.get_indexer(links["ext_user_id"])[ok] * width + link_plat[ok]] = (
        users.get_indexer(links["user_id"])[ok]
    )
    ext = _positions(events["ext_user_id"], ext_ids)
    user = np.where(ext >= 0, user_of[np.maximum(ext, 0) * width + platform], -1)

    # Notes with brands: (note, platform) -> the run of its rows in the note dimension.
    note_ids = pd.Index(notes["note_id"].unique(), dtype="str").sort_values()
    known = np.flatnonzero(platforms.get_indexer(notes["platform"]) >= 0)
    dim_key = (
        note_ids.get_indexer(notes["note_id"])[known] * width
        + platforms.get_indexer(notes["platform"])[known]
    )
    start = np.zeros(max(len(note_ids), 1) * width, dtype="int64")
    count = np.zeros(max(len(note_ids), 1) * width, dtype="int64")
    np.add.at(count, dim_key, 1)
    # The dimension is sorted by (platform, note_id, brand_id): a key's rows are contiguous.
    first = run_starts(dim_key)
    start[dim_key[first]] = known[first]
    note = _positions(events["note_id"], note_ids)
    key = np.maximum(note, 0) * width + platform
    keep = np.flatnonzero((user >= 0) & (note >= 0) & (count[key] > 0))

    t = events["event_time"].to_numpy(dtype="datetime64[us]").view("int64")
    dwell = events["dwell_ms"].to_numpy(dtype="float64", na_value=np.nan)
    # Exact duplicates (every column but dt) collapse; what is left differing only in dwell_ms
    # is one touch (touch_key marks the first of each). Hashes find the few rows that may repeat
    # an earlier one; only those are compared exactly (no sort of all the exposures).
    packed = _pack(
        [
            (ext[keep], len(ext_ids)),
            (note[keep], len(note_ids)),
            (platform[keep], width),
            (kind[keep], len(kinds)),
        ]
    )
    when, dwell = t[keep], dwell[keep]
    dwell_bits = np.where(np.isnan(dwell), -1, dwell).view("int64")  # every NaN alike
    distinct, touch_key = _distinct_touches(packed, when, dwell_bits)
    keep = keep[distinct]

    # One row per brand of the note.
    key = key[keep]
    n = count[key]
    rows = np.repeat(keep, n)
    offset = np.arange(len(rows)) - np.repeat(np.cumsum(n) - n, n)
    mention = np.repeat(start[key], n) + offset
    brands = sorted_ids(notes["brand_id"]) if brands is None else brands
    brand_of = brands.get_indexer(notes["brand_id"])
    return Linked(
        user=user[rows],
        brand=brand_of[mention],
        t=t[rows],
        platform=platform[rows],
        note=note[rows],
        ext=ext[rows],
        kind=kind[rows],
        mention=mention,
        touch_key=np.repeat(touch_key, n),
        users=users,
        brands=brands,
        platforms=platforms,
        note_ids=note_ids,
        ext_ids=ext_ids,
        kinds=kinds,
        dim=notes.reset_index(drop=True),
    )


def touches(linked: Linked, touch_kinds: tuple[str, ...]) -> pd.DataFrame:
    """Touches: linked exposures of a touch kind, one per fct_touches key, with their business day.

    Sorted by (user_id, brand_id, touch order); ``_order`` is each row's rank in key order,
    ``_user``, ``_brand``, ``_platform`` codes (into linked.users / brands / platforms) and ``_t``
    the time in microseconds.
    """
    # Two exposures differing only in dwell_ms are one touch: the touch key has no dwell.
    rows = np.flatnonzero(linked.touch_key & np.isin(linked.kind, linked.kind_codes(touch_kinds)))
    part = linked.take(rows)
    nu, nb, nn = len(linked.users), len(linked.brands), len(linked.note_ids)
    np_, nk, ne = len(linked.platforms), len(linked.kinds), len(linked.ext_ids)
    tie = _pack([(part.platform, np_), (part.note, nn), (part.kind, nk), (part.ext, ne)])
    order = lexsort((tie, part.t, _pack([(part.user, nu), (part.brand, nb)])))
    part = part.take(order)
    dim = linked.dim
    touch_at = timestamps(part.t)
    # Position of each row in fct_touches key order (platform, note_id, ext_user_id, touch_at,
    # kind, brand_id), for publish: sorting codes sorts the strings.
    key_order = np.empty(len(order), dtype="int64")
    key_order[
        lexsort(
            (
                _pack([(part.kind, nk), (part.brand, nb)]),
                part.t,
                _pack([(part.platform, np_), (part.note, nn), (part.ext, ne)]),
            )
        )
    ] = np.arange(len(order))
    return pd.DataFrame(
        {
            "platform": decode(linked.platforms, part.platform),
            "note_id": decode(linked.note_ids, part.note),
            "ext_user_id": decode(linked.ext_ids, part.ext),
            "touch_at": touch_at,
            "kind": decode(linked.kinds, part.kind),
            "user_id": decode(linked.users, part.user),
            "brand_id": decode(linked.brands, part.brand),
            "category_id": decode(dim["category_id"], part.mention),
            "author_id": decode(dim["author_id"], part.mention),
            "vertical": decode(dim["vertical"], part.mention),
            "dt": day_of(part.t),
            "_order": key_order,
            "_user": part.user,
            "_brand": part.brand,
            "_platform": part.platform,
            "_t": part.t,
        }
    )
