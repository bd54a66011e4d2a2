"""When each simulated file arrives: the arrival schedule of SPEC 5 "Arrival", and ``materialize``.

Real feeds do not arrive in order. The simulator plans, from its own seeded stream:

- **notes** are crawled 0..``note_crawl_delay_max_days`` days after publication, so a note's file
  lands in a later ``dt`` folder than the first exposures to it;
- **id links** come in batches every ``link_batch_every_days`` days from the first day; the first
  batch holds ``link_first_batch_share`` of the linked accounts, the rest come in later batches
  (their exposures are unlinked until then). Some links are **corrected** (an earlier batch names
  another user, a later batch the final claims) or **revoked** (a later batch names the account's
  user with confidence 0);
- a share of exposure, search and order rows arrive 1..``late_max_days`` days **late**, in a later
  ``dt`` folder;
- **order versions**: a paid order is later refunded, or its amount corrected, by a new version of
  it (same order_id, later ``dt`` folder);
- **re-sends**: a delivery (one file of a ``dt`` folder) first arrives without some of its rows and
  is replaced days later by the complete file (a superset);
- **spend** follows the rules of orders: a share of spend rows arrive late, some spends get a
  corrected amount as a later version (same platform, author, note, type and time: the same
  derived spend_id, in a later ``dt`` folder), and a spend delivery is re-sent; all of it from the
  spend stream, so the other files do not change;
- **missed runs**: days on which the daily run does not happen (a run-order matter: nothing in the
  data changes; the next run catches up).

The landing zone is written in its final state (every file in its last version), plus
``arrivals.json`` (every file's path, dt, arrival day and versions) and the earlier versions of
re-sent files under ``.versions/<arrival day>/<path>``. :func:`materialize` rebuilds the landing zone
as it stood on any day.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import schemas

if TYPE_CHECKING:  # world.py imports ArrivalParams from here
    from .world import Behaviour, World

MANIFEST = "arrivals.json"
VERSIONS = ".versions"
#: landing folders materialize manages (SPEC 1); nothing else under the target is touched
SOURCES = ("notes", "exposures", "id_links", "searches", "orders", "spend", "items")


@dataclass(frozen=True)
class ArrivalParams:
    """How late and out of order the files of a simulated world arrive (default: realistic)."""

    note_crawl_delay_max_days: int = 10  # a note is crawled 0..this many days after publication
    link_batch_every_days: int = 7  # id_links batches on days 0, 7, 14, ...
    link_first_batch_share: float = 0.6  # of linked accounts, first named in the first batch
    link_corrected_share: float = 0.03  # of linked accounts: an earlier batch names another user
    link_revoked_share: float = 0.02  # of accounts that resolve: a later batch revokes (confidence 0)
    late_share: float = 0.05  # of exposure, search and order rows: in a later dt folder
    late_max_days: int = 10
    refund_share: float = 0.03  # of paid orders: a later version with status refunded
    amount_correction_share: float = 0.02  # of paid orders: a later version with another amount
    version_max_delay_days: int = 10
    resend_count: int = 3  # event files first delivered incomplete, replaced by a superset
    resend_keep_share: float = 0.8  # rows of a re-sent file already in its first version
    resend_max_delay_days: int = 5
    missed_runs: int = 1  # scheduled daily runs that do not happen (never the first or last day)
    spend_correction_share: float = 0.05  # of spends: a later version with another amount
    spend_resend_count: int = 1  # spend files first delivered incomplete, replaced by a superset

    @classmethod
    def in_order(cls) -> ArrivalParams:
        """Everything on time: notes on their publication day, every link on the first day, no late
        rows, order versions, re-sends or missed runs (the files are those of an in-order world)."""
        return cls(
            note_crawl_delay_max_days=0, link_first_batch_share=1.0, link_corrected_share=0.0,
            link_revoked_share=0.0, late_share=0.0, refund_share=0.0, amount_correction_share=0.0,
            resend_count=0, missed_runs=0, spend_correction_share=0.0, spend_resend_count=0,
        )

    @property
    def is_in_order(self) -> bool:
        """True when nothing arrives late or out of order."""
        return (self.note_crawl_delay_max_days == 0 and self.link_first_batch_share >= 1.0
                and self.link_corrected_share == 0 and self.link_revoked_share == 0 and self.late_share == 0
                and self.refund_share == 0 and self.amount_correction_share == 0 and self.resend_count == 0
                and self.missed_runs == 0 and self.spend_correction_share == 0 and self.spend_resend_count == 0)


# ---------------------------------------------------------------- planning (simulator side)


def child_rng(seq: np.random.SeedSequence, i: int) -> np.random.Generator:
    """The generator of child ``i`` of ``seq`` (what ``seq.spawn`` gives), however often it is asked."""
    return np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, i)))


def _later(rng: np.random.Generator, base: np.ndarray, max_days: int, last: int) -> np.ndarray:
    """base + 1..max_days days, capped at the last day (equal to base where no later day is left)."""
    lag = rng.integers(1, max(1, max_days) + 1, len(base))
    return np.minimum(base + lag, last)


def late_days(rng: np.random.Generator, day: np.ndarray, days: int, share: float, max_days: int) -> np.ndarray:
    """Arrival day of each row of the given event days: the same day, or 1..max_days later for a
    ``share`` of rows (capped at the last day of the world, so the last day's rows are on time)."""
    day = np.asarray(day, dtype=np.int64)
    if share <= 0 or len(day) == 0:
        return day.copy()
    late = rng.random(len(day)) < share
    return np.where(late, _later(rng, day, max_days, days - 1), day)


def plan_notes(rng: np.random.Generator, world: World) -> None:
    """Note delivery days: publication day + crawl delay (capped at the last day), re-deliveries
    after that. Sets ``delivered_day`` and ``redelivered_day`` of ``world.notes``."""
    a = world.params.arrival
    notes = world.notes
    pub_day = np.searchsorted(world.day_starts, notes["published"].to_numpy(), "right") - 1
    delay = rng.integers(0, a.note_crawl_delay_max_days + 1, len(notes))
    delivered = np.clip(pub_day + delay, 0, world.days - 1)
    lag = notes["redeliver_lag"].to_numpy()
    notes["delivered_day"] = delivered
    notes["redelivered_day"] = np.where((lag > 0) & (delivered + lag < world.days), delivered + lag, -1)
    # days between publication (the first day, for older notes) and delivery
    notes["delivery_lag_days"] = delivered - np.clip(pub_day, 0, None)


def plan_links(rng: np.random.Generator, world: World) -> pd.DataFrame:
    """id_links deliveries (platform, ext_user_id, user_id, confidence, day), in weekly batches.

    ``world.links`` holds the claims make_links drew. Each linked account is first named in the
    first batch (``link_first_batch_share``) or a later one. A corrected account's first batch
    names a wrong user with a confident claim and a later batch its drawn claims; a revoked
    account's first batch holds its drawn claims and a later batch one claim to its resolved user
    with confidence 0. Afterwards ``world.links`` holds the **final** claims (the latest delivery
    naming each account, SPEC 3), ``world.accounts["link_user"]`` the final resolution (revoked:
    -1), and ``world.link_stats`` counts both.
    """
    a = world.params.arrival
    acc = world.accounts
    n_acc, n_users = len(acc), len(world.user_ids)
    threshold = world.params.funnel.min_link_confidence
    batch_days = np.arange(0, world.days, max(1, a.link_batch_every_days))
    nb = len(batch_days)

    key = pd.DataFrame({
        "platform": np.asarray(schemas.PLATFORMS)[acc["platform"].to_numpy()],
        "ext_user_id": acc["ext_user_id"].to_numpy(),
        "account": np.arange(n_acc),
    })
    claims = world.links.merge(key, on=["platform", "ext_user_id"], how="left", validate="many_to_one")
    claimed = np.zeros(n_acc, dtype=bool)
    claimed[claims["account"].to_numpy()] = True
    link_user = acc["link_user"].to_numpy().copy()

    r_first, r_fix, r_second = rng.random(n_acc), rng.random(n_acc), rng.random(n_acc)
    first = np.where((r_first < a.link_first_batch_share) | (nb == 1), 0,
                     1 + (rng.random(n_acc) * max(nb - 1, 1)).astype(np.int64))
    first = np.minimum(first, nb - 1)
    can_change = first < nb - 1
    corrected = claimed & can_change & (r_fix < a.link_corrected_share)
    revoked = (link_user >= 0) & can_change & ~corrected & (r_fix >= a.link_corrected_share) & (
        r_fix < a.link_corrected_share + a.link_revoked_share)
    second = np.minimum(first + 1 + (r_second * (nb - 1 - first)).astype(np.int64), nb - 1)
    wrong_user = (acc["user"].to_numpy() + rng.integers(1, n_users, n_acc)) % n_users
    wrong_conf = np.round(rng.uniform(threshold, 1.0, n_acc), 3)

    acc_of = claims["account"].to_numpy()
    drawn = claims.assign(batch=np.where(corrected[acc_of], second[acc_of], first[acc_of]))
    wrong = np.flatnonzero(corrected)
    early_wrong = pd.DataFrame({
        "platform": key["platform"].to_numpy()[wrong], "ext_user_id": key["ext_user_id"].to_numpy()[wrong],
        "user_id": world.user_ids[wrong_user[wrong]], "confidence": wrong_conf[wrong],
        "account": wrong, "batch": first[wrong],
    })
    rv = np.flatnonzero(revoked)
    revocations = pd.DataFrame({
        "platform": key["platform"].to_numpy()[rv], "ext_user_id": key["ext_user_id"].to_numpy()[rv],
        "user_id": world.user_ids[link_user[rv]], "confidence": np.zeros(len(rv)),
        "account": rv, "batch": second[rv],
    })
    deliveries = pd.concat([drawn, early_wrong, revocations], ignore_index=True)
    deliveries["day"] = batch_days[deliveries["batch"].to_numpy()]
    deliveries = deliveries.sort_values(["day", "platform", "ext_user_id", "user_id"], kind="stable", ignore_index=True)

    final = pd.concat([drawn[~revoked[acc_of]], revocations], ignore_index=True)
    world.links = final[["platform", "ext_user_id", "user_id", "confidence"]].sort_values(
        ["platform", "ext_user_id", "user_id"], ignore_index=True)
    link_user[revoked] = -1
    acc["link_user"] = link_user
    true_user = acc["user"].to_numpy()
    world.link_stats.update({
        "accounts_resolving_to_a_user": int((link_user >= 0).sum()),
        "accounts_resolving_to_another_user": int(((link_user >= 0) & (link_user != true_user)).sum()),
        "accounts_revoked": int(revoked.sum()),
        "accounts_corrected": int(corrected.sum()),
        "link_rows": int(len(world.links)),
        "link_rows_delivered": int(len(deliveries)),
    })
    world.link_batches = {
        "days": [int(d) for d in batch_days],
        "accounts_first_named": [int(((first == b) & claimed).sum()) for b in range(nb)],
        "rows": [int((deliveries["batch"] == b).sum()) for b in range(nb)],
    }
    return deliveries[["platform", "ext_user_id", "user_id", "confidence", "day"]]


@dataclass
class OrderVersions:
    """Orders' first deliveries and their later versions."""

    arrival: np.ndarray  # per row of beh.orders: the day its first version arrives
    versions: pd.DataFrame  # order (row of beh.orders), kind (refund / amount), status, amount_fen, day


def plan_orders(rng: np.random.Generator, world: World, beh: Behaviour, day_of: np.ndarray) -> OrderVersions:
    """Late first deliveries and later versions (refund, corrected amount) of paid orders.

    Updates the bookkeeping to the final versions: ``beh.orders`` gains ``final_status`` and
    ``final_amount_fen``, and a pair whose order is refunded later no longer converts.
    """
    a = world.params.arrival
    o = beh.orders
    n, last = len(o), world.days - 1
    arrival = late_days(rng, day_of, world.days, a.late_share, a.late_max_days)
    r = rng.random(n)
    v_day = _later(rng, arrival, a.version_max_delay_days, last)
    factor = rng.uniform(0.5, 0.95, n)
    paid = o["status"].to_numpy() == "paid"
    has_later = paid & (v_day > arrival)
    refund = has_later & (r < a.refund_share)
    amount = has_later & ~refund & (r < a.refund_share + a.amount_correction_share)
    old = o["amount_fen"].to_numpy()
    new_amount = np.clip(np.floor(old * factor).astype(np.int64), 1, np.maximum(old - 1, 1))
    rows = np.flatnonzero(refund | amount)
    versions = pd.DataFrame({
        "order": rows,
        "kind": np.where(refund[rows], "refund", "amount"),
        "status": np.where(refund[rows], "refunded", "paid"),
        "amount_fen": np.where(refund[rows], old[rows], new_amount[rows]),
        "day": v_day[rows],
    })
    o["final_status"] = np.where(refund, "refunded", o["status"].to_numpy())
    o["final_amount_fen"] = np.where(amount, new_amount, old)
    # a pair converts on its own paid order only (searches are spaced): refunded later, it does not
    nb = len(world.brands)
    gone = o["search"].to_numpy()[refund].astype(np.int64) * nb + o["brand"].to_numpy()[refund]
    pairs = beh.pairs
    pair_key = pairs["search"].to_numpy().astype(np.int64) * nb + pairs["brand"].to_numpy()
    pairs["refunded"] = pairs["converted"].to_numpy() & np.isin(pair_key, gone)
    pairs["converted"] = pairs["converted"].to_numpy() & ~pairs["refunded"].to_numpy()
    return OrderVersions(arrival=arrival, versions=versions)


@dataclass
class SpendVersions:
    """Spends' first deliveries and their later versions (corrected amounts)."""

    arrival: np.ndarray  # per spend row: the day its first version arrives
    versions: pd.DataFrame  # spend (row), amount_fen, day
    final_amount_fen: np.ndarray  # per spend row: the amount of its latest version


def plan_spend(rng: np.random.Generator, world: World, spend: pd.DataFrame, day_of: np.ndarray) -> SpendVersions:
    """Late first deliveries of spend rows and later versions with a corrected amount (x 0.8-1.25,
    never the same), as orders' corrections: strictly after the first delivery, never two
    versions of a spend in one delivery."""
    a = world.params.arrival
    n, last = len(spend), world.days - 1
    arrival = late_days(rng, day_of, world.days, a.late_share, a.late_max_days)
    r = rng.random(n)
    v_day = _later(rng, arrival, a.version_max_delay_days, last)
    factor = rng.uniform(0.8, 1.25, n)
    old = spend["amount_fen"].to_numpy()
    new = np.maximum(np.round(old * factor / 100).astype(np.int64) * 100, 100)
    new = np.where(new == old, old + 100, new)
    corrected = (v_day > arrival) & (r < a.spend_correction_share)
    rows = np.flatnonzero(corrected)
    versions = pd.DataFrame({"spend": rows, "amount_fen": new[rows], "day": v_day[rows]})
    return SpendVersions(arrival=arrival, versions=versions, final_amount_fen=np.where(corrected, new, old))


def plan_spend_resends(rng: np.random.Generator, rows_per_day: np.ndarray, a: ArrivalParams) -> dict[tuple[str, None, int], int]:
    """Which spend deliveries are re-sent, and on which day: {("spend", None, dt day): day}.

    A uniform day among those with at least two rows and a later day to be re-sent on."""
    days = len(rows_per_day)
    candidates = [d for d in range(days - 1) if rows_per_day[d] >= 2]
    k = min(a.spend_resend_count, len(candidates))
    if k <= 0:
        return {}
    chosen = sorted(int(d) for d in rng.choice(candidates, k, replace=False))
    return {("spend", None, d): int(_later(rng, np.array([d]), a.resend_max_delay_days, days - 1)[0]) for d in chosen}


def plan_resends(rng: np.random.Generator, days: int, a: ArrivalParams) -> dict[tuple[str, str | None, int], int]:
    """Which event deliveries are re-sent, and on which day: {(source, platform, dt day): day}.

    Sources take turns (orders, exposures, searches, ...); within one, a uniform file of a day
    that has a later day to be re-sent on (orders: not the first day, which has hardly any). A
    planned re-send of a file with fewer than two rows does not happen.
    """
    groups = {
        "orders": [("orders", None, d) for d in range(1, days - 1)],
        "exposures": [("exposures", p, d) for d in range(days - 1) for p in schemas.PLATFORMS],
        "searches": [("searches", None, d) for d in range(days - 1)],
    }
    out: dict[tuple[str, str | None, int], int] = {}
    k = min(a.resend_count, sum(len(g) for g in groups.values()))
    turn = 0
    while len(out) < k:
        left = [c for c in list(groups.values())[turn % len(groups)] if c not in out]
        turn += 1
        if not left:
            continue
        src, platform, d = left[int(rng.integers(0, len(left)))]
        out[(src, platform, d)] = int(_later(rng, np.array([d]), a.resend_max_delay_days, days - 1)[0])
    return out


def plan_missed_runs(rng: np.random.Generator, days: int, a: ArrivalParams) -> list[int]:
    """Days whose scheduled run does not happen: never the first or the last day."""
    k = min(a.missed_runs, max(days - 2, 0))
    if k <= 0:
        return []
    return sorted(int(d) for d in 1 + rng.choice(days - 2, k, replace=False))


def subset_mask(rng: np.random.Generator, n: int, keep: float) -> np.ndarray:
    """Rows of a re-sent file already in its first version (n >= 2): at least one in, one out."""
    mask = rng.random(n) < keep
    out = int(rng.integers(0, n))
    mask[out] = False
    if not mask.any():
        mask[(out + 1) % n] = True
    return mask


# ---------------------------------------------------------------- reading the schedule back


@dataclass(frozen=True)
class Schedule:
    """The arrival schedule of a simulated world (``arrivals.json``)."""

    days: tuple[date, ...]
    runs: tuple[date, ...]  # the days a daily run happens (the others are missed)
    missed_runs: tuple[date, ...]
    files: tuple[dict, ...]


def load_schedule(sim_dir: Path) -> Schedule:
    """The arrival schedule written by ``simulate_world`` into ``sim_dir``."""
    m = json.loads((Path(sim_dir) / MANIFEST).read_text(encoding="utf-8"))

    def dates(values):
        return tuple(date.fromisoformat(v) for v in values)

    start, end = date.fromisoformat(m["start"]), date.fromisoformat(m["end"])
    days = tuple(start + timedelta(days=i) for i in range((end - start).days + 1))
    return Schedule(days=days, runs=dates(m["runs"]), missed_runs=dates(m["missed_runs"]), files=tuple(m["files"]))


def files_as_of(sim_dir: Path, as_of: date) -> dict[str, Path]:
    """{landing path: stored file} of the landing zone as it stood on day ``as_of``."""
    day = _as_date(as_of).isoformat()
    sim_dir = Path(sim_dir)
    out = {}
    for f in load_schedule(sim_dir).files:
        current = [v for v in f["versions"] if v["arrival"] <= day]
        if current:
            out[f["path"]] = sim_dir / current[-1]["file"]
    return out


@dataclass(frozen=True)
class Materialized:
    """What materialize did."""

    as_of: str
    files: int  # files present in the landing zone afterwards
    added: int
    replaced: int
    removed: int


def materialize(sim_dir: Path, as_of: date, landing: Path) -> Materialized:
    """Make ``landing`` look exactly like the simulated landing zone as it stood on day ``as_of``.

    Only files that had arrived by ``as_of``, each in the version current then (hard links, or
    copies across file systems). Under the source folders of SPEC 1 (notes, exposures, id_links,
    searches, orders, items) every other file is removed and empty folders with it; nothing else
    under ``landing`` is touched. Idempotent: a file already holding the right bytes is left alone.
    """
    sim_dir, landing = Path(sim_dir), Path(landing)
    if landing.resolve() == sim_dir.resolve():
        raise ValueError("materialize needs a landing folder other than the simulation's own")
    want = files_as_of(sim_dir, as_of)
    removed = added = replaced = 0
    for source in SOURCES:
        root = landing / source
        if not root.exists():
            continue
        for p in sorted(root.rglob("*"), reverse=True):
            rel = p.relative_to(landing).as_posix()
            if (p.is_file() or p.is_symlink()) and rel not in want:
                p.unlink()
                removed += 1
        for p in sorted((q for q in root.rglob("*") if q.is_dir()), key=lambda q: len(q.parts), reverse=True):
            if not any(p.iterdir()):
                p.rmdir()
        if not any(root.iterdir()):
            root.rmdir()
    for rel, src in sorted(want.items()):
        dest = landing / rel
        if dest.exists():
            if _same_bytes(src, dest):
                continue
            replaced += 1
        else:
            added += 1
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.materialize")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    return Materialized(as_of=_as_date(as_of).isoformat(), files=len(want), added=added, replaced=replaced, removed=removed)


def _same_bytes(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:
        return False
    return a.stat().st_size == b.stat().st_size and filecmp.cmp(a, b, shallow=False)


def _as_date(d) -> date:
    return d if isinstance(d, date) else date.fromisoformat(str(d))
