"""SPEC 5 in SQL on DuckDB: the independent reference engine the pandas engine is tested against.

``compute(inputs, params, start, end, run_id)`` registers the input frames in an in-memory DuckDB
connection, runs the statements of ``STEPS`` in order (each creates one temp table), and fetches
one frame per table of ``schemas.FUNNEL_TABLES``, conformed and sorted by key.

Every timestamp is handled as epoch microseconds (BIGINT) so that every window edge is an exact
integer comparison; a business day is the Asia/Shanghai date of the timestamp.

Row sets (what is emitted for a call with days ``start .. end``):

- fct_touches: touches whose touch day is in start..end.
- fct_search_pairs: pairs whose search day is in start..end.
- fct_seeded_orders, fct_attribution_credits: seeded orders paid on a day in start..end;
  credits are one row per (order, eligible touch, model), zero credits included, 5 models.
- agg_brand_funnel_daily: dense, every day of start..end x every brand of brands x
  (the five platforms + 'all'); counts 0 and money 0.0 where nothing happened.
- agg_conversion_uplift: dense, every day of start..end x subjects
  (level 'all' / subject 'all'; level 'category' x every category of categories;
  level 'brand' x every brand of brands) x 8 slices
  ('all'/'all', 'platform' x the five platforms, 'vertical_match' x 'match'/'mismatch').
- agg_uplift_strata: those subjects and slices x the strata with at least one unit
  (seeded in the slice or in the subject's baseline), days start..end.
- brand_boost_signals: one snapshot per as_of_dt in start..end, each from the exposures in
  [as_of - seed_window, as_of).

Readings of docs/semantics.md where it leaves room (reported to the lead):

1. Touches are distinct on the fct_touches key: exposures that differ only in dwell_ms (distinct
   exposures under SPEC 3) make one touch, since dwell_ms is not part of that key and the
   warehouse could not hold both. The boost signal sums exposures, so there both count.
2. seeded_brand_ids / converted_brand_ids are '' (empty string) when there is no brand.
3. A pair converts (for b, or at category level) only through paid orders whose brand is in
   brands.csv; the category is the brand's category there. Orders whose brand is not in brands.csv
   are ignored by the funnel.
4. Brand-level pairs for b are (s, c(b)); the brand's "last touch" for a pair is the latest eligible
   touch for b in touch order; its vertical decides match (null vertical is a mismatch). Level
   'all' slices each unit (s, c(b), b) the same way. Category level uses the pair's last touch
   over all its seeded brands, vertical against the pair's category.
5. searched_back_users: a user touched for b on day d (on platform p for a platform row; t_first
   the first such touch) who has a pair (s, c(b)) seeded for b with t_first < t_s <= t_first +
   seed_window; the search may fall on any day, inside or after start..end.
6. cvr_seeded is null only when seeded_pairs is 0 (likewise cvr_baseline); uplift and its interval
   are null when any of the four counts is 0.
7. Boost: linked exposures of every kind for a brand of the note (touch_kinds do not apply), in
   [as_of - seed_window, as_of); the terms of raw are summed in ascending order so that equal
   multisets give bit-equal raws and rank ties fall to the smaller brand_id as SPEC says.
8. A touch for a brand not in brands.csv still appears in fct_touches and boost; it seeds nothing.
9. Finality (``pipelines.windows``): pairs and uplift rows final when
   dt + ceil(conversion_window) < end; agg_brand_funnel_daily when
   dt + ceil(max(seed_window, conversion_window)) < end; each with the windows of the row's
   category (a brand's category, a category subject's own), level 'all' with the longest of any.
10. Versions (SPEC 3): per search_id / order_id the version of the latest delivery (largest dt)
    wins, rows equal but for dt collapse; an order counts only when that version is paid. Per
    (platform, ext_user_id) only the claims of its latest delivery compete.
11. Level 'all' pools the brand-level units (s, c(b), b) over every brand (SPEC 5.7); level
    'category' counts pairs (s, c), seeded for any brand of c, converting at category level.
12. Strata (SPEC 5.10): a unit's stratum is (its brand, or its category at category level; the
    user's distinct searches of the log, latest versions, in [t_s - activity_window, t_s),
    banded; whether the user has a paid order of the pair's category paid in that window).
    The adjusted figure is SPEC's Mantel-Haenszel formula as written, null when R or S is 0.
13. Windows per category (SPEC 5.11): the table ``category_windows`` holds seed_us / conv_us
    and the finality days of every category the inputs name; every window rule joins it on the
    category of the pair (= of the brand), of the order's brand or of the touch's brand. A touch
    of a brand missing from brands.csv (boost only) takes the global window of ``p``; a row of
    level 'all' the finality day of ``p``, that of the longest window of any category.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import date, timedelta

import duckdb
import pandas as pd
import pyarrow as pa

from .. import schemas
from ..funnel.inputs import FunnelInputs
from ..settings import TIMEZONE, FunnelParams
from ..timeutil import as_of, days
from ..windows import daily_final_before, pairs_final_before

US_PER_DAY = 86_400_000_000
Z = 1.96

# Touch order of docs/semantics.md, ascending; "last" is the same order descending.
_TOUCH_ORDER_COLUMNS = ("t", "platform", "note_id", "kind", "ext_user_id")


def _touch_order(alias: str = "", descending: bool = False) -> str:
    """ORDER BY terms of the touch order, optionally qualified by a table alias."""
    prefix = f"{alias}." if alias else ""
    suffix = " DESC" if descending else ""
    return ", ".join(f"{prefix}{c}{suffix}" for c in _TOUCH_ORDER_COLUMNS)


TOUCH_ORDER_DESC = _touch_order(descending=True)

# Inputs that must be unique on their declared key once exact duplicates collapse (within one
# delivery for the versioned ones): conflicting versions are quarantined at ingestion.
_KEYED_INPUTS = ("notes", "searches", "orders", "brands", "categories", "creators")
# Inputs read with their delivery day: a later delivery of a key is a new version of it (SPEC 3).
_VERSIONED_INPUTS = ("id_links", "searches", "orders")
# Of a note the funnel reads only its key and author; text and counts are the matcher's business.
_NOTE_COLUMNS = (*schemas.NOTES.key, "author_id")



def _activity_band(count: str) -> str:
    """SQL CASE banding a count of searches by the labels of ``schemas.ACTIVITY_BANDS``."""
    lows = schemas.activity_band_lows()
    bands = sorted(zip(lows, schemas.ACTIVITY_BANDS, strict=True), reverse=True)
    whens = " ".join(f"WHEN {count} >= {low} THEN '{label}'" for low, label in bands)
    return f"CASE {whens} END"


_ACTIVITY_BAND = _activity_band("a.n")

STEPS: tuple[tuple[str, str], ...] = (
    ("brands", "SELECT DISTINCT brand_id, category_id FROM in_brands"),
    ("creators", "SELECT DISTINCT platform, author_id, vertical FROM in_creators"),
    ("notes", "SELECT DISTINCT platform, note_id, author_id FROM in_notes"),
    (
        "exposures_u",
        # Exact duplicates collapse, the delivery day ignored (DISTINCT treats null dwell as equal).
        """
        SELECT DISTINCT platform, note_id, ext_user_id, epoch_us(event_time) AS t, kind, dwell_ms
        FROM in_exposures
        """,
    ),
    (
        "links",
        # Only the claims of the latest delivery naming the external id compete; the winner
        # (highest confidence, then smallest user_id) links only when it clears the threshold.
        """
        WITH current_claims AS (
            SELECT platform, ext_user_id, user_id, confidence
            FROM in_id_links
            QUALIFY dt = max(dt) OVER (PARTITION BY platform, ext_user_id)
        )
        SELECT platform, ext_user_id, user_id
        FROM (
            SELECT platform, ext_user_id, user_id, confidence,
                   row_number() OVER (PARTITION BY platform, ext_user_id
                                      ORDER BY confidence DESC, user_id ASC) AS rn
            FROM current_claims
        ) w CROSS JOIN p
        WHERE rn = 1 AND confidence >= p.min_link_confidence
        """,
    ),
    (
        "brand_exposures",
        """
        SELECT l.user_id, nb.brand_id, b.category_id, e.t, e.platform, e.note_id, n.author_id,
               e.ext_user_id, e.kind, cr.vertical
        FROM exposures_u e
        JOIN links l USING (platform, ext_user_id)
        JOIN (SELECT DISTINCT platform, note_id, brand_id FROM in_note_brands) nb
          USING (platform, note_id)
        JOIN notes n USING (platform, note_id)
        LEFT JOIN brands b ON b.brand_id = nb.brand_id
        LEFT JOIN creators cr ON cr.platform = e.platform AND cr.author_id = n.author_id
        """,
    ),
    (
        "touches",
        # brand_exposures carries no dwell_ms: DISTINCT makes one touch per fct_touches key.
        """
        SELECT DISTINCT be.* FROM brand_exposures be JOIN touch_kinds k USING (kind)
        """,
    ),
    (
        "searches_u",
        # The version of the latest delivery of each search_id.
        """
        SELECT DISTINCT search_id, user_id, epoch_us(event_time) AS t
        FROM (
            SELECT * FROM in_searches QUALIFY dt = max(dt) OVER (PARTITION BY search_id)
        ) latest
        """,
    ),
    (
        "pairs",
        """
        SELECT s.search_id, s.user_id, s.t AS ts, sc.category_id
        FROM searches_u s
        JOIN (SELECT DISTINCT search_id, category_id FROM in_search_categories) sc USING (search_id)
        """,
    ),
    (
        "paid",
        # Orders whose latest version is paid; the brand's category is the one in brands.csv,
        # whatever the order says.
        """
        SELECT DISTINCT o.order_id, o.user_id, o.brand_id, b.category_id, o.amount_fen,
               epoch_us(o.paid_at) AS t
        FROM (
            SELECT * FROM in_orders QUALIFY dt = max(dt) OVER (PARTITION BY order_id)
        ) o JOIN brands b USING (brand_id)
        WHERE o.status = 'paid'
        """,
    ),
    (
        "pair_touches",
        # Touches for a brand of the pair's category c with t_s - seed_window(c) <= t < t_s.
        """
        SELECT pr.search_id, pr.category_id, t.* EXCLUDE (category_id)
        FROM pairs pr
        JOIN category_windows w ON w.category_id = pr.category_id
        JOIN touches t
          ON t.user_id = pr.user_id AND t.category_id = pr.category_id
         AND t.t >= pr.ts - w.seed_us AND t.t < pr.ts
        """,
    ),
    (
        "pair_brand_conversions",
        # t_s <= paid_at <= t_s + conversion_window(c), orders of a brand of the pair's category c.
        """
        SELECT DISTINCT pr.search_id, pr.category_id, o.brand_id
        FROM pairs pr
        JOIN category_windows w ON w.category_id = pr.category_id
        JOIN paid o
          ON o.user_id = pr.user_id AND o.category_id = pr.category_id
         AND o.t >= pr.ts AND o.t <= pr.ts + w.conv_us
        """,
    ),
    (
        "brand_pairs",
        # One row per (pair (s, c), brand b of c): seeded for b, converts for b, b's last touch.
        f"""
        WITH last_for_brand AS (
            SELECT search_id, brand_id, platform, vertical
            FROM (
                SELECT search_id, brand_id, platform, vertical,
                       row_number() OVER (PARTITION BY search_id, brand_id
                                          ORDER BY {TOUCH_ORDER_DESC}) AS rn
                FROM pair_touches
            ) r WHERE rn = 1
        )
        SELECT pr.search_id, pr.user_id, pr.ts, pr.category_id, b.brand_id,
               lb.search_id IS NOT NULL AS is_seeded,
               cv.search_id IS NOT NULL AS is_converted,
               lb.platform AS last_platform,
               coalesce(lb.vertical = pr.category_id, false) AS is_vertical_match
        FROM pairs pr
        JOIN brands b ON b.category_id = pr.category_id
        LEFT JOIN last_for_brand lb ON lb.search_id = pr.search_id AND lb.brand_id = b.brand_id
        LEFT JOIN pair_brand_conversions cv
          ON cv.search_id = pr.search_id AND cv.brand_id = b.brand_id
        """,
    ),
    (
        "pair_facts",
        # The pair's last touch over all brands it is seeded for; brand_id only breaks exact ties
        # between touches of one exposure, which share platform and vertical.
        f"""
        WITH last_any AS (
            SELECT search_id, category_id, platform, vertical
            FROM (
                SELECT search_id, category_id, platform, vertical,
                       row_number() OVER (PARTITION BY search_id, category_id
                                          ORDER BY {TOUCH_ORDER_DESC}, brand_id DESC) AS rn
                FROM pair_touches
            ) r WHERE rn = 1
        ),
        seeded AS (
            SELECT search_id, category_id, string_agg(brand_id, '|' ORDER BY brand_id) AS ids
            FROM brand_pairs WHERE is_seeded GROUP BY search_id, category_id
        ),
        converted AS (
            SELECT search_id, category_id, string_agg(brand_id, '|' ORDER BY brand_id) AS ids
            FROM pair_brand_conversions GROUP BY search_id, category_id
        )
        SELECT pr.search_id, pr.user_id, pr.ts, pr.category_id,
               coalesce(sd.ids, '') AS seeded_brand_ids,
               coalesce(cv.ids, '') AS converted_brand_ids,
               sd.ids IS NOT NULL AS is_seeded,
               cv.ids IS NOT NULL AS is_converted,
               la.platform AS last_touch_platform,
               coalesce(la.vertical = pr.category_id, false) AS is_vertical_match
        FROM pairs pr
        LEFT JOIN last_any la USING (search_id, category_id)
        LEFT JOIN seeded sd USING (search_id, category_id)
        LEFT JOIN converted cv USING (search_id, category_id)
        """,
    ),
    (
        "seeded_orders",
        # Anchor: the latest seeded pair (s, c(b)) with t_s <= paid_at <= t_s + conv(c(b)),
        # ties on time to the larger search_id.
        """
        SELECT order_id, user_id, brand_id, category_id, amount_fen, t, anchor_search_id, anchor_t
        FROM (
            SELECT o.*, bp.search_id AS anchor_search_id, bp.ts AS anchor_t,
                   row_number() OVER (PARTITION BY o.order_id
                                      ORDER BY bp.ts DESC, bp.search_id DESC) AS rn
            FROM paid o
            JOIN category_windows w ON w.category_id = o.category_id
            JOIN brand_pairs bp
              ON bp.is_seeded AND bp.user_id = o.user_id AND bp.brand_id = o.brand_id
             AND o.t >= bp.ts AND o.t <= bp.ts + w.conv_us
        ) r WHERE rn = 1
        """,
    ),
    (
        "eligible_touches",
        # The anchor pair's touches for the order's brand are exactly the eligible touches.
        f"""
        SELECT so.order_id, so.amount_fen, so.anchor_t, pt.user_id, pt.brand_id, pt.t,
               pt.platform, pt.note_id, pt.author_id, pt.kind, pt.ext_user_id, pt.vertical,
               so.category_id,
               row_number() OVER (PARTITION BY so.order_id ORDER BY {_touch_order('pt')}) AS touch_seq,
               count(*) OVER (PARTITION BY so.order_id) AS n,
               pow(2.0, -((so.anchor_t - pt.t) / {US_PER_DAY}.0) / p.decay_half_life_days) AS w
        FROM seeded_orders so CROSS JOIN p
        JOIN pair_touches pt
          ON pt.search_id = so.anchor_search_id AND pt.brand_id = so.brand_id
        """,
    ),
    (
        "credits",
        """
        WITH et AS (
            SELECT *, sum(w) OVER (PARTITION BY order_id) AS w_total FROM eligible_touches
        )
        SELECT order_id, touch_seq, user_id, brand_id, t, platform, note_id, author_id, m.model,
               amount_fen::DOUBLE * CASE m.model
                   WHEN 'last_touch' THEN CASE WHEN touch_seq = n THEN 1.0 ELSE 0.0 END
                   WHEN 'first_touch' THEN CASE WHEN touch_seq = 1 THEN 1.0 ELSE 0.0 END
                   WHEN 'linear' THEN 1.0 / n
                   WHEN 'time_decay' THEN w / w_total
                   WHEN 'position_based' THEN CASE
                       WHEN n = 1 THEN 1.0
                       WHEN n = 2 THEN 0.5
                       WHEN touch_seq = 1 OR touch_seq = n THEN 0.4
                       ELSE 0.2 / (n - 2) END
               END AS credit_fen
        FROM et CROSS JOIN models m
        """,
    ),
    (
        "order_facts",
        """
        SELECT so.*, et.n AS touch_count, et.platform AS last_touch_platform,
               coalesce(et.vertical = so.category_id, false) AS is_vertical_match
        FROM seeded_orders so
        JOIN eligible_touches et ON et.order_id = so.order_id AND et.touch_seq = et.n
        """,
    ),
    (
        "pair_strata",
        # SPEC 5.10: the user's distinct searches in [t_s - activity_window, t_s), banded, and
        # whether they have a paid order of the pair's category paid in that window.
        f"""
        WITH activity AS (
            SELECT pr.search_id, pr.category_id, count(DISTINCT s.search_id) AS n
            FROM pairs pr CROSS JOIN p
            LEFT JOIN searches_u s
              ON s.user_id = pr.user_id AND s.t >= pr.ts - p.act_us AND s.t < pr.ts
            GROUP BY ALL
        ),
        ordered AS (
            SELECT DISTINCT pr.search_id, pr.category_id
            FROM pairs pr CROSS JOIN p
            JOIN paid o
              ON o.user_id = pr.user_id AND o.category_id = pr.category_id
             AND o.t >= pr.ts - p.act_us AND o.t < pr.ts
        )
        SELECT a.search_id, a.category_id, {_ACTIVITY_BAND} AS activity,
               o.search_id IS NOT NULL AS has_recent_order
        FROM activity a LEFT JOIN ordered o USING (search_id, category_id)
        """,
    ),
    (
        "uplift_pairs",
        # Every unit at the three levels with its stratum, seeded flag, conversion and slices.
        # Brand and all: units (s, c(b), b), stratum (b, activity, order); all pools the brands.
        # Category: units (s, c), stratum (c, activity, order).
        """
        WITH brand_units AS (
            SELECT business_day(bp.ts) AS dt, bp.brand_id, bp.user_id, bp.is_seeded,
                   bp.is_converted, bp.last_platform, bp.is_vertical_match, ps.activity,
                   ps.has_recent_order
            FROM brand_pairs bp JOIN pair_strata ps USING (search_id, category_id)
        )
        SELECT dt, 'brand' AS level, brand_id AS subject_id, brand_id AS stratum_id, activity,
               has_recent_order, user_id, is_seeded, is_converted, last_platform, is_vertical_match
        FROM brand_units
        UNION ALL
        SELECT dt, 'all', 'all', brand_id, activity, has_recent_order, user_id, is_seeded,
               is_converted, last_platform, is_vertical_match
        FROM brand_units
        UNION ALL
        SELECT business_day(pf.ts), 'category', pf.category_id, pf.category_id, ps.activity,
               ps.has_recent_order, pf.user_id, pf.is_seeded, pf.is_converted,
               pf.last_touch_platform, pf.is_vertical_match
        FROM pair_facts pf JOIN pair_strata ps USING (search_id, category_id)
        """,
    ),
    (
        "uplift_grid",
        """
        SELECT d.dt, s.level, s.subject_id, sl.slice, sl.slice_value
        FROM days d
        CROSS JOIN (
            SELECT 'all' AS level, 'all' AS subject_id
            UNION ALL SELECT DISTINCT 'category', category_id FROM in_categories
            UNION ALL SELECT 'brand', brand_id FROM brands
        ) s
        CROSS JOIN uplift_slices sl
        """,
    ),
    (
        "subject_windows",
        # The finality day of each uplift subject: its brand's category's, a category's own;
        # level 'all' has none here and takes p's (reading 13).
        """
        SELECT 'brand' AS level, b.brand_id AS subject_id, w.pair_final_before
        FROM brands b JOIN category_windows w USING (category_id)
        UNION ALL
        SELECT 'category', category_id, pair_final_before FROM category_windows
        """,
    ),
    (
        "uplift_counts",
        """
        WITH baseline AS (
            SELECT dt, level, subject_id,
                   count(*) FILTER (WHERE NOT is_seeded) AS baseline_pairs,
                   count(*) FILTER (WHERE NOT is_seeded AND is_converted) AS baseline_conversions
            FROM uplift_pairs GROUP BY ALL
        ),
        seeded AS (
            SELECT dt, level, subject_id, slice, slice_value,
                   count(*) AS seeded_pairs,
                   count(*) FILTER (WHERE is_converted) AS seeded_conversions
            FROM (
                SELECT *, 'all' AS slice, 'all' AS slice_value FROM uplift_pairs WHERE is_seeded
                UNION ALL
                SELECT *, 'platform', last_platform FROM uplift_pairs WHERE is_seeded
                UNION ALL
                SELECT *, 'vertical_match',
                       CASE WHEN is_vertical_match THEN 'match' ELSE 'mismatch' END
                FROM uplift_pairs WHERE is_seeded
            ) s GROUP BY ALL
        )
        SELECT g.dt, g.level, g.subject_id, g.slice, g.slice_value,
               coalesce(s.seeded_pairs, 0) AS seeded_pairs,
               coalesce(s.seeded_conversions, 0) AS seeded_conversions,
               coalesce(b.baseline_pairs, 0) AS baseline_pairs,
               coalesce(b.baseline_conversions, 0) AS baseline_conversions
        FROM uplift_grid g
        LEFT JOIN seeded s USING (dt, level, subject_id, slice, slice_value)
        LEFT JOIN baseline b USING (dt, level, subject_id)
        """,
    ),
    (
        "strata_counts",
        # SPEC 5.10: per stratum the slice's seeded counts and the subject's whole baseline;
        # strata with no unit (N_k = 0) are left out, and so are subjects the dense uplift rows
        # do not have (a search category missing from categories.csv).
        """
        WITH units AS (
            SELECT dt, level, subject_id, stratum_id, activity, has_recent_order,
                   count(*) FILTER (WHERE NOT is_seeded) AS baseline_pairs,
                   count(*) FILTER (WHERE NOT is_seeded AND is_converted) AS baseline_conversions
            FROM uplift_pairs GROUP BY ALL
        ),
        seeded AS (
            SELECT dt, level, subject_id, slice, slice_value, stratum_id, activity,
                   has_recent_order, count(*) AS seeded_pairs,
                   count(*) FILTER (WHERE is_converted) AS seeded_conversions
            FROM (
                SELECT *, 'all' AS slice, 'all' AS slice_value FROM uplift_pairs WHERE is_seeded
                UNION ALL
                SELECT *, 'platform', last_platform FROM uplift_pairs WHERE is_seeded
                UNION ALL
                SELECT *, 'vertical_match',
                       CASE WHEN is_vertical_match THEN 'match' ELSE 'mismatch' END
                FROM uplift_pairs WHERE is_seeded
            ) s GROUP BY ALL
        )
        SELECT u.dt, u.level, u.subject_id, sl.slice, sl.slice_value, u.stratum_id, u.activity,
               u.has_recent_order,
               coalesce(s.seeded_pairs, 0) AS seeded_pairs,
               coalesce(s.seeded_conversions, 0) AS seeded_conversions,
               u.baseline_pairs, u.baseline_conversions
        FROM units u CROSS JOIN uplift_slices sl
        SEMI JOIN (SELECT DISTINCT level, subject_id FROM uplift_grid) g USING (level, subject_id)
        LEFT JOIN seeded s
          USING (dt, level, subject_id, slice, slice_value, stratum_id, activity, has_recent_order)
        WHERE coalesce(s.seeded_pairs, 0) + u.baseline_pairs > 0
        """,
    ),
    (
        "mantel_haenszel",
        # SPEC 5.10 as written: R = sum a n0 / N, S = sum c n1 / N,
        # Var(ln RR) = sum (m1 n1 n0 - a c N) / N^2 / (R S).
        """
        WITH k AS (
            SELECT dt, level, subject_id, slice, slice_value,
                   seeded_conversions::DOUBLE AS a, baseline_conversions::DOUBLE AS c,
                   seeded_pairs::DOUBLE AS n1, baseline_pairs::DOUBLE AS n0,
                   (seeded_pairs + baseline_pairs)::DOUBLE AS big_n
            FROM strata_counts
        )
        SELECT dt, level, subject_id, slice, slice_value,
               sum(a * n0 / big_n) AS r, sum(c * n1 / big_n) AS s,
               sum(((a + c) * n1 * n0 - a * c * big_n) / (big_n * big_n)) AS v
        FROM k GROUP BY ALL
        """,
    ),
    (
        "uplift",
        # SPEC 5.7: the log method for a ratio of two proportions; null when any count is zero.
        f"""
        WITH r AS (
            SELECT *,
                   CASE WHEN seeded_pairs > 0
                        THEN seeded_conversions::DOUBLE / seeded_pairs END AS cvr_seeded,
                   CASE WHEN baseline_pairs > 0
                        THEN baseline_conversions::DOUBLE / baseline_pairs END AS cvr_baseline,
                   seeded_pairs > 0 AND seeded_conversions > 0
                       AND baseline_pairs > 0 AND baseline_conversions > 0 AS is_defined
            FROM uplift_counts
        ), u AS (
            SELECT *,
                   CASE WHEN is_defined THEN cvr_seeded / cvr_baseline END AS uplift,
                   CASE WHEN is_defined THEN {Z} * sqrt(
                       1.0 / seeded_conversions - 1.0 / seeded_pairs
                       + 1.0 / baseline_conversions - 1.0 / baseline_pairs) END AS half_width
            FROM r
        )
        SELECT u.dt, u.level, u.subject_id, u.slice, u.slice_value, seeded_pairs,
               seeded_conversions, baseline_pairs, baseline_conversions, cvr_seeded, cvr_baseline,
               uplift,
               exp(ln(uplift) - half_width) AS uplift_ci_low,
               exp(ln(uplift) + half_width) AS uplift_ci_high,
               CASE WHEN mh.r > 0 AND mh.s > 0 THEN mh.r / mh.s END AS adjusted_uplift,
               CASE WHEN mh.r > 0 AND mh.s > 0
                    THEN exp(ln(mh.r / mh.s) - {Z} * sqrt(mh.v / (mh.r * mh.s))) END
                   AS adjusted_uplift_ci_low,
               CASE WHEN mh.r > 0 AND mh.s > 0
                    THEN exp(ln(mh.r / mh.s) + {Z} * sqrt(mh.v / (mh.r * mh.s))) END
                   AS adjusted_uplift_ci_high,
               u.dt < coalesce(sw.pair_final_before, p.pair_final_before) AS is_final
        FROM u CROSS JOIN p
        LEFT JOIN subject_windows sw USING (level, subject_id)
        LEFT JOIN mantel_haenszel mh USING (dt, level, subject_id, slice, slice_value)
        """,
    ),
    (
        "exposure_daily",
        # t_first per (day, brand, user, platform) and over all platforms; a user searched back
        # when some pair of the brand's category c seeded for it has
        # t_first < t_s <= t_first + seed(c).
        """
        WITH firsts AS (
            SELECT business_day(t) AS dt, brand_id, category_id, user_id, platform, min(t) AS t_first
            FROM touches GROUP BY ALL
            UNION ALL
            SELECT business_day(t), brand_id, category_id, user_id, 'all', min(t)
            FROM touches GROUP BY ALL
        ),
        flagged AS (
            SELECT f.dt, f.brand_id, f.user_id, f.platform,
                   EXISTS (
                       SELECT 1 FROM brand_pairs bp
                       WHERE bp.is_seeded AND bp.user_id = f.user_id AND bp.brand_id = f.brand_id
                         AND bp.ts > f.t_first
                         AND bp.ts <= f.t_first + coalesce(w.seed_us, p.seed_us)
                   ) AS searched_back
            FROM firsts f CROSS JOIN p
            LEFT JOIN category_windows w ON w.category_id = f.category_id
        )
        SELECT dt, brand_id, platform, count(*) AS exposed_users,
               count(*) FILTER (WHERE searched_back) AS searched_back_users
        FROM flagged GROUP BY ALL
        """,
    ),
    (
        "search_back_daily",
        """
        SELECT business_day(ts) AS dt, brand_id, last_platform AS platform,
               count(DISTINCT user_id) AS search_back_users
        FROM brand_pairs WHERE is_seeded GROUP BY ALL
        UNION ALL
        SELECT business_day(ts), brand_id, 'all', count(DISTINCT user_id)
        FROM brand_pairs WHERE is_seeded GROUP BY ALL
        """,
    ),
    (
        "order_daily",
        """
        SELECT business_day(t) AS dt, brand_id, last_touch_platform AS platform,
               count(*) AS seeded_orders, sum(amount_fen)::BIGINT AS seeded_gmv_fen
        FROM order_facts GROUP BY ALL
        UNION ALL
        SELECT business_day(t), brand_id, 'all', count(*), sum(amount_fen)::BIGINT FROM order_facts GROUP BY ALL
        """,
    ),
    (
        "credit_daily",
        # Credits belong to the day of payment and to each touch's own platform.
        """
        WITH c AS (
            SELECT business_day(so.t) AS dt, cr.brand_id, cr.platform, cr.model, cr.credit_fen
            FROM credits cr JOIN seeded_orders so USING (order_id)
        )
        SELECT dt, brand_id, platform, {by_model}
        FROM (
            SELECT dt, brand_id, platform, model, credit_fen FROM c
            UNION ALL
            SELECT dt, brand_id, 'all', model, credit_fen FROM c
        ) s GROUP BY dt, brand_id, platform
        """.replace(
            "{by_model}",
            ", ".join(
                f"sum(credit_fen) FILTER (WHERE model = '{m}') AS {m}"
                for m in schemas.ATTRIBUTION_MODELS
            ),
        ),
    ),
    (
        "boost",
        # One snapshot per as_of day; every exposure kind counts here; raw is summed in ascending
        # term order (reading 7). The window: the seed window of the brand's category (reading 13).
        f"""
        WITH terms AS (
            SELECT a.as_of_dt, be.user_id, be.brand_id,
                   k.weight * pow(2.0, -((a.as_of_us - be.t) / {US_PER_DAY}.0)
                                       / p.boost_half_life_days) AS term
            FROM brand_exposures be CROSS JOIN p
            LEFT JOIN category_windows w ON w.category_id = be.category_id
            JOIN as_of_days a
              ON be.t >= a.as_of_us - coalesce(w.seed_us, p.seed_us) AND be.t < a.as_of_us
            JOIN kind_weights k USING (kind)
        ), raws AS (
            SELECT as_of_dt, user_id, brand_id, list_sum(list_sort(list(term))) AS raw
            FROM terms GROUP BY ALL
        ), ranked AS (
            SELECT as_of_dt, user_id, brand_id, raw, 1.0 - exp(-raw) AS score,
                   row_number() OVER (PARTITION BY as_of_dt, user_id
                                      ORDER BY 1.0 - exp(-raw) DESC, brand_id ASC) AS rank
            FROM raws
        )
        SELECT as_of_dt, user_id, brand_id, raw, score, rank
        FROM ranked CROSS JOIN p WHERE rank <= p.boost_top_n
        """,
    ),
)


def _day_sql(column: str) -> str:
    return f"timezone('{TIMEZONE}', make_timestamptz({column}))::DATE"


# Business day of an epoch-microsecond column, used as business_day(...) in STEPS.
_DAY_MACRO = f"CREATE MACRO business_day(us) AS {_day_sql('us')}"

OUTPUTS: dict[str, str] = {
    "fct_touches": """
        SELECT business_day(t) AS dt, user_id, brand_id, make_timestamptz(t) AS touch_at, platform,
               note_id, author_id, ext_user_id, kind, vertical
        FROM touches WHERE business_day(t) IN (SELECT dt FROM days)
    """,
    "fct_search_pairs": """
        SELECT business_day(ts) AS dt, search_id, user_id, make_timestamptz(ts) AS searched_at,
               category_id, seeded_brand_ids, converted_brand_ids, is_seeded, is_converted,
               last_touch_platform, business_day(ts) < w.pair_final_before AS is_final
        FROM pair_facts JOIN category_windows w USING (category_id)
        WHERE business_day(ts) IN (SELECT dt FROM days)
    """,
    "fct_seeded_orders": """
        SELECT business_day(t) AS dt, order_id, user_id, brand_id, category_id, amount_fen,
               make_timestamptz(t) AS paid_at, anchor_search_id,
               make_timestamptz(anchor_t) AS anchor_searched_at, touch_count,
               last_touch_platform, is_vertical_match
        FROM order_facts WHERE business_day(t) IN (SELECT dt FROM days)
    """,
    "fct_attribution_credits": """
        SELECT business_day(so.t) AS dt, cr.order_id, cr.model, cr.touch_seq, cr.user_id, cr.brand_id,
               make_timestamptz(cr.t) AS touch_at, cr.platform, cr.note_id, cr.author_id,
               cr.credit_fen
        FROM credits cr JOIN seeded_orders so USING (order_id)
        WHERE business_day(so.t) IN (SELECT dt FROM days)
    """,
    "agg_brand_funnel_daily": """
        SELECT g.dt, g.brand_id, g.platform,
               coalesce(e.exposed_users, 0) AS exposed_users,
               coalesce(e.searched_back_users, 0) AS searched_back_users,
               CASE WHEN e.exposed_users > 0
                    THEN e.searched_back_users::DOUBLE / e.exposed_users END AS search_back_rate,
               coalesce(sb.search_back_users, 0) AS search_back_users,
               u.seeded_pairs, u.seeded_conversions, u.baseline_pairs, u.baseline_conversions,
               u.cvr_seeded, u.cvr_baseline, u.uplift, u.uplift_ci_low, u.uplift_ci_high,
               coalesce(o.seeded_orders, 0) AS seeded_orders,
               coalesce(o.seeded_gmv_fen, 0) AS seeded_gmv_fen,
               {attributed},
               g.dt < coalesce(w.funnel_final_before, p.funnel_final_before) AS is_final
        FROM (SELECT d.dt, b.brand_id, b.category_id, pl.platform
              FROM days d CROSS JOIN brands b CROSS JOIN funnel_platforms pl) g
        CROSS JOIN p
        LEFT JOIN category_windows w ON w.category_id = g.category_id
        JOIN uplift u
          ON u.dt = g.dt AND u.level = 'brand' AND u.subject_id = g.brand_id
         AND u.slice = CASE WHEN g.platform = 'all' THEN 'all' ELSE 'platform' END
         AND u.slice_value = g.platform
        LEFT JOIN exposure_daily e
          ON e.dt = g.dt AND e.brand_id = g.brand_id AND e.platform = g.platform
        LEFT JOIN search_back_daily sb
          ON sb.dt = g.dt AND sb.brand_id = g.brand_id AND sb.platform = g.platform
        LEFT JOIN order_daily o
          ON o.dt = g.dt AND o.brand_id = g.brand_id AND o.platform = g.platform
        LEFT JOIN credit_daily c
          ON c.dt = g.dt AND c.brand_id = g.brand_id AND c.platform = g.platform
    """.replace(
        "{attributed}",
        ",\n               ".join(
            f'coalesce(c.{m}, 0.0) AS attributed_gmv_{m}_fen' for m in schemas.ATTRIBUTION_MODELS
        ),
    ),
    "agg_conversion_uplift": """
        SELECT u.* FROM uplift u WHERE u.dt IN (SELECT dt FROM days)
    """,
    "agg_uplift_strata": """
        SELECT k.*, k.dt < coalesce(sw.pair_final_before, p.pair_final_before) AS is_final
        FROM strata_counts k CROSS JOIN p
        LEFT JOIN subject_windows sw USING (level, subject_id)
        WHERE k.dt IN (SELECT dt FROM days)
    """,
    "brand_boost_signals": "SELECT * FROM boost",
}


def compute(
    inputs: FunnelInputs, params: FunnelParams, start: date, end: date, run_id: str
) -> dict[str, pd.DataFrame]:
    """Every table of ``schemas.FUNNEL_TABLES`` for the days start..end, computed in DuckDB."""
    run_days = days(start, end)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute(_DAY_MACRO)
        for f in fields(FunnelInputs):
            con.register(f"in_{f.name}", _input_arrow(f.name, getattr(inputs, f.name)))
        for name, table in _parameter_tables(params, run_days, end, _category_ids(inputs)).items():
            con.register(name, table)
        for name, sql in STEPS:
            con.execute(f"CREATE TEMP TABLE {name} AS {sql}")
        out = {}
        for t in schemas.FUNNEL_TABLES:
            frame = con.sql(OUTPUTS[t.name]).to_arrow_table().to_pandas()
            frame["run_id"] = run_id
            out[t.name] = _finish(t, frame)
        return out
    finally:
        con.close()


def _finish(t: schemas.Table, frame: pd.DataFrame) -> pd.DataFrame:
    """Declared columns and types, sorted by key (then every column, for duplicate keys)."""
    frame = schemas.conform(t, frame)
    order = list(t.key) + [c for c in t.names if c not in t.key]
    return frame.sort_values(order, kind="mergesort", na_position="first").reset_index(drop=True)


def _category_ids(inputs: FunnelInputs) -> list[str]:
    """Every category id the inputs name (categories.csv, brands.csv, the searches' categories)."""
    ids = pd.concat(
        [inputs.categories["category_id"], inputs.brands["category_id"], inputs.search_categories["category_id"]]
    )
    return sorted(ids.dropna().astype(str).unique())


def _parameter_tables(
    params: FunnelParams, run_days: list[date], end: date, category_ids: list[str]
) -> dict[str, pa.Table]:
    """SPEC 5 parameters and the run's days as small tables the SQL joins against. ``p`` holds the
    global windows and, for rows of every category (level 'all'), the finality days of the longest;
    ``category_windows`` each category's own windows and finality days (SPEC 5.11)."""
    micro = timedelta(microseconds=1)
    unknown = sorted(set(params.touch_kinds) - set(schemas.EXPOSURE_KINDS))
    if unknown:
        raise ValueError(f"touch_kinds {unknown} are not exposure kinds {schemas.EXPOSURE_KINDS}")
    p = {
        "seed_us": params.seed_window // micro,
        "conv_us": params.conversion_window // micro,
        "act_us": params.activity_window // micro,
        "min_link_confidence": float(params.min_link_confidence),
        "decay_half_life_days": float(params.decay_half_life_days),
        "boost_half_life_days": float(params.boost_half_life_days),
        "boost_top_n": int(params.boost_top_n),
        "pair_final_before": pairs_final_before(params, end),
        "funnel_final_before": daily_final_before(params, end),
    }
    weights = params.kind_weight
    own = [params.windows_of(c) for c in category_ids]
    return {
        "p": pa.Table.from_pylist([p]),
        "category_windows": pa.table(
            {
                "category_id": pa.array(category_ids, pa.string()),
                "seed_us": pa.array([s // micro for s, _ in own], pa.int64()),
                "conv_us": pa.array([c // micro for _, c in own], pa.int64()),
                "pair_final_before": pa.array(
                    [pairs_final_before(params, end, c) for c in category_ids], pa.date32()
                ),
                "funnel_final_before": pa.array(
                    [daily_final_before(params, end, c) for c in category_ids], pa.date32()
                ),
            }
        ),
        "days": pa.table({"dt": pa.array(run_days, pa.date32())}),
        "as_of_days": pa.table(
            {
                "as_of_dt": pa.array(run_days, pa.date32()),
                "as_of_us": pa.array([as_of(d).value // 1_000 for d in run_days], pa.int64()),
            }
        ),
        "touch_kinds": pa.table({"kind": pa.array(sorted(set(params.touch_kinds)), pa.string())}),
        "kind_weights": pa.table(
            {
                "kind": pa.array(list(weights), pa.string()),
                "weight": pa.array([float(w) for w in weights.values()], pa.float64()),
            }
        ),
        "models": pa.table({"model": pa.array(schemas.ATTRIBUTION_MODELS, pa.string())}),
        "funnel_platforms": pa.table(
            {"platform": pa.array(schemas.PLATFORMS + (schemas.ALL,), pa.string())}
        ),
        "uplift_slices": _uplift_slices(),
    }


def _uplift_slices() -> pa.Table:
    """The 8 (slice, slice_value) rows of every uplift subject and day."""
    slices = [(schemas.ALL, schemas.ALL)]
    slices += [("platform", pl) for pl in schemas.PLATFORMS]
    slices += [("vertical_match", "match"), ("vertical_match", "mismatch")]
    return pa.table(
        {
            "slice": pa.array([s for s, _ in slices], pa.string()),
            "slice_value": pa.array([v for _, v in slices], pa.string()),
        }
    )


def _input_arrow(name: str, df: pd.DataFrame) -> pa.Table:
    """The input frame as Arrow with the declared types; a clear error for what cannot be used."""
    t = schemas.table(name)
    if name == "notes":
        wanted = _NOTE_COLUMNS
    else:
        wanted = tuple(c for c in t.names if c != "dt" or name in _VERSIONED_INPUTS)
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise ValueError(f"funnel input {name}: missing column(s) {missing}; it has {list(df.columns)}")
    frame = df.loc[:, list(wanted)].reset_index(drop=True)
    for c in wanted:
        col = t.column(c)
        if not col.nullable and frame[c].isna().any():
            rows = frame.index[frame[c].isna()].tolist()[:5]
            raise ValueError(f"funnel input {name}: column {c} is null at row position(s) {rows}")
    if name in _KEYED_INPUTS:
        # Versions of one key in different deliveries are expected; within one, a conflict.
        key = list(t.key)
        within = [*key, "dt"] if name in _VERSIONED_INPUTS else key
        distinct = frame.drop_duplicates()
        clash = distinct.duplicated(within, keep=False)
        if clash.any():
            first = distinct[clash].iloc[0]
            rows = frame.index[(frame[within] == first[within]).all(axis=1)].tolist()[:5]
            where = f" in delivery dt={first['dt']}" if name in _VERSIONED_INPUTS else ""
            raise ValueError(
                f"funnel input {name}: key {dict(first[key])} has conflicting rows{where} at "
                f"positions {rows}; conflicting versions must be quarantined at ingestion"
            )
    arrays = {}
    for c in wanted:
        typ = schemas.arrow_type(t.column(c).type)
        try:
            arrays[c] = pa.array(frame[c], from_pandas=True).cast(typ)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as e:
            raise ValueError(f"funnel input {name}.{c}: cannot read as {t.column(c).type}: {e}") from e
    return pa.table(arrays)


def boost_scores(boost: pd.DataFrame, run_id: str) -> pd.DataFrame:
    """agg_boost_scores from brand_boost_signals rows, in SQL: every day's ten bins
    [k/10, (k+1)/10) (the last one [0.9, 1]), its signals, users (rank 1) and median score."""
    n = schemas.BOOST_SCORE_BINS
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        con.register("boost", pa.Table.from_pandas(boost[["as_of_dt", "score", "rank"]], preserve_index=False))
        frame = con.sql(
            f"""
            WITH days AS (
                SELECT as_of_dt, count(*) AS day_signals, count(*) FILTER (WHERE rank = 1) AS day_users,
                       quantile_cont(score, 0.5) AS day_median_score
                FROM boost GROUP BY as_of_dt
            ), bins AS (
                SELECT k, k / {n} AS bin_low, (k + 1) / {n} AS bin_high FROM range({n}) AS r(k)
            ), counted AS (
                SELECT s.as_of_dt, b.k, count(*) AS signals
                FROM boost s JOIN bins b
                  ON s.score >= b.bin_low AND (s.score < b.bin_high OR (b.k = {n} - 1 AND s.score <= 1))
                GROUP BY s.as_of_dt, b.k
            )
            SELECT d.as_of_dt, b.bin_low, b.bin_high, coalesce(c.signals, 0) AS signals,
                   d.day_signals, d.day_users, d.day_median_score
            FROM days d CROSS JOIN bins b LEFT JOIN counted c ON c.as_of_dt = d.as_of_dt AND c.k = b.k
            """
        ).to_arrow_table().to_pandas()
    finally:
        con.close()
    frame["run_id"] = run_id
    return _finish(schemas.AGG_BOOST_SCORES, frame)
