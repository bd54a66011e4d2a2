"""What both funnel engines read: canonical lake rows plus the matcher's derived tables."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pandas as pd

from .. import schemas


@dataclass
class FunnelInputs:
    """Inputs of one engine call. Columns are those of the named schemas tables.

    - exposures, id_links, searches, orders: lake rows as delivered, from every delivery
      partition, each with its delivery day ``dt`` (duplicates and new versions across deliveries
      possible; the engine applies the key rules of SPEC 3 / docs/semantics.md: per search_id /
      order_id the latest delivery wins, per (platform, ext_user_id) the claims of the latest
      delivery naming it compete).
    - notes: resolved, one row per (platform, note_id) (at least platform, note_id, author_id).
    - note_brands, search_categories: the matcher's output on those notes and on the searches'
      latest versions (categories are taken per search_id).
    - orders: brand_id already filled from items where the order file lacked it.
    - brands, categories, creators: reference data (seeds); creators' author_id already canonical.
    """

    exposures: pd.DataFrame
    id_links: pd.DataFrame
    notes: pd.DataFrame
    note_brands: pd.DataFrame
    searches: pd.DataFrame
    search_categories: pd.DataFrame
    orders: pd.DataFrame
    brands: pd.DataFrame
    categories: pd.DataFrame
    creators: pd.DataFrame

    @classmethod
    def empty(cls) -> FunnelInputs:
        """Inputs with no rows, typed by the schema declaration (useful for fixtures)."""
        return cls(**{f.name: schemas.empty_frame(f.name) for f in fields(cls)})
