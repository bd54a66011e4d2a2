"""SPEC 5.8: the brand boost signal per user and brand as of the end of a day, top N per user."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from ..settings import FunnelParams
from ..timeutil import as_of
from .attribution import DAY_US
from .touches import TOUCH_ORDER


def boost_signals(linked: pd.DataFrame, day: date, params: FunnelParams) -> pd.DataFrame:
    """brand_boost_signals rows (without run_id) as of the end of ``day``, every exposure kind counted."""
    end = as_of(day)
    window = linked.loc[
        (linked["touch_at"] >= end - pd.Timedelta(params.seed_window)) & (linked["touch_at"] < end)
    ]
    weights = params.kind_weight
    unknown = sorted(set(window["kind"].unique()) - set(weights))
    if unknown:
        raise ValueError(f"boost: no kind weight for exposure kind(s) {unknown}")
    # A fixed summation order makes equal histories sum to equal floats (rank ties stay ties).
    window = window.sort_values(["user_id", "brand_id", *TOUCH_ORDER], kind="stable")
    age_days = (end - window["touch_at"]).to_numpy(dtype="timedelta64[us]").astype("int64") / DAY_US
    kind_weight = window["kind"].map(weights).to_numpy(dtype="float64")
    contribution = kind_weight * np.exp2(-age_days / params.boost_half_life_days)
    signals = (
        pd.DataFrame(
            {"user_id": window["user_id"], "brand_id": window["brand_id"], "raw": contribution}
        )
        .groupby(["user_id", "brand_id"], sort=True)["raw"]
        .sum()
        .reset_index()
    )
    signals["score"] = 1.0 - np.exp(-signals["raw"].to_numpy())
    signals = signals.sort_values(
        ["user_id", "score", "brand_id"], ascending=[True, False, True], kind="stable"
    )
    signals["rank"] = signals.groupby("user_id", sort=False).cumcount().to_numpy(dtype="int64") + 1
    signals = signals.loc[signals["rank"] <= params.boost_top_n]
    signals.insert(0, "as_of_dt", day)
    return signals.sort_values(["as_of_dt", "user_id", "brand_id"], kind="stable").reset_index(
        drop=True
    )
