"""SPEC 5.6: the five attribution models, splitting each seeded order's amount over its eligible touches."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import schemas

DAY_US = 86_400_000_000  # microseconds per day: decay exponents are in days as floats


def model_shares(eligible: pd.DataFrame, decay_half_life_days: float) -> dict[str, np.ndarray]:
    """Per model, each eligible touch's share of its order (shares of an order sum to 1)."""
    seq = eligible["touch_seq"].to_numpy(dtype="int64")
    n = eligible["touch_count"].to_numpy(dtype="int64")
    first = (seq == 1).astype("float64")
    last = (seq == n).astype("float64")
    age_days = (eligible["anchor_searched_at"] - eligible["touch_at"]).to_numpy(
        dtype="timedelta64[us]"
    ).astype("int64") / DAY_US
    weight = np.exp2(-age_days / decay_half_life_days)
    weight_sum = pd.Series(weight).groupby(eligible["order_id"].to_numpy()).transform("sum")
    with np.errstate(divide="ignore", invalid="ignore"):
        middle = np.where(n > 2, 0.2 / (n - 2), 0.0)
    position = np.select([n == 1, n == 2, (seq == 1) | (seq == n)], [1.0, 0.5, 0.4], default=middle)
    return {
        "last_touch": last,
        "first_touch": first,
        "linear": 1.0 / n,
        "time_decay": weight / weight_sum.to_numpy(),
        "position_based": position,
    }


def credits(eligible: pd.DataFrame, decay_half_life_days: float) -> pd.DataFrame:
    """fct_attribution_credits rows (without run_id): one per (order, eligible touch, model)."""
    shares = model_shares(eligible, decay_half_life_days)
    # Every declared credit column the eligible touch already carries (model, credit come below).
    keep = [c for c in schemas.FCT_ATTRIBUTION_CREDITS.names if c in eligible.columns]
    amount = eligible["amount_fen"].to_numpy(dtype="float64")
    parts = []
    for model in schemas.ATTRIBUTION_MODELS:
        part = eligible[keep].copy()
        part["model"] = model
        part["credit_fen"] = amount * shares[model]
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["order_id", "model", "touch_seq"], kind="stable").reset_index(drop=True)
