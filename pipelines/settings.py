"""The one settings object: where things live, the funnel parameters of SPEC section 5 and the
data-quality thresholds.

Every value resolves in this order: an explicit argument (a command-line flag, ``Settings(...)``)
> an environment variable > the settings file > the default. The settings file is
``seedfunnel.toml``: the one ``--config`` or ``SEEDFUNNEL_CONFIG`` names, else ``seedfunnel.toml``
in the working folder when there is one (docs/settings.md). Airflow tasks build ``Settings()`` and
so read the same file and variables. ``Settings.sources`` says where each value came from
(``seedfunnel settings`` prints them). The warehouse URL additionally honours the Airflow connection
``seedfunnel_warehouse`` when running inside Airflow (looked up lazily, never at import time), after
the argument, the environment and the file.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path

from .redact import redact_text, redact_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TIMEZONE = "Asia/Shanghai"
AIRFLOW_CONN_ID = "seedfunnel_warehouse"

#: The settings file: named by ``--config`` or this variable, else CONFIG_FILE in the working folder.
ENV_CONFIG = "SEEDFUNNEL_CONFIG"
CONFIG_FILE = "seedfunnel.toml"
ENV_HOME = "SEEDFUNNEL_HOME"
ENV_WAREHOUSE_URL = "SEEDFUNNEL_WAREHOUSE_URL"
ENV_SEEDS = "SEEDFUNNEL_SEEDS"
ENV_LANDING = "SEEDFUNNEL_LANDING"
ENV_BUCKETS = "SEEDFUNNEL_BUCKETS"
#: Name an Airflow worker reports as its hostname (``worker_hostname``); unset: the machine's FQDN.
ENV_WORKER_NAME = "SEEDFUNNEL_WORKER_NAME"
#: Seconds between task retries in the DAGs, read when a DAG file is parsed (default 300).
ENV_RETRY_DELAY = "SEEDFUNNEL_RETRY_DELAY_SECONDS"
#: "0": lake and state writes are not fsynced (test suites and throwaway runs; a crash of the
#: machine may lose the last writes, renames stay atomic). Unset or anything else: fsynced.
ENV_FSYNC = "SEEDFUNNEL_FSYNC"

#: Kind weights of the brand boost signal (SPEC 5.8); its keys are the exposure kinds.
KIND_WEIGHTS: dict[str, float] = {
    "impression": 0.2,
    "read": 1.0,
    "like": 1.5,
    "collect": 2.0,
    "comment": 2.0,
    "share": 2.5,
}


class SettingsError(ValueError):
    """A setting that cannot be used; the message names its source, key, value and the rule."""


# A field's rule: (kind, check) in its metadata. kind: "float", "int", "kinds" (a list of exposure
# kinds), "weights" (exposure kind -> weight), "category_windows" (category id -> its own windows);
# check: POSITIVE, NON_NEGATIVE, FRACTION, AT_LEAST_ONE.
POSITIVE, NON_NEGATIVE, FRACTION, AT_LEAST_ONE = "> 0", ">= 0", "within [0, 1]", ">= 1"

#: The windows a category may set for itself (SPEC 5.11, decision cycles): keys of FunnelParams.
WINDOW_KEYS = ("seed_window_days", "conversion_window_days")


def _param(default, kind: str, check: str | None, doc: str, *, suite: bool = True):
    """A dataclass field of FunnelParams / QualityParams with its rule and meaning. ``suite``
    (QualityParams): a threshold the GX suites name; False for one that shapes a check frame."""
    return field(default=default, metadata={"kind": kind, "check": check, "doc": doc, "suite": suite})


def _problem(kind: str, check: str | None, value) -> str | None:
    """Why ``value`` breaks the rule, or None when it keeps it."""
    if kind in ("float", "int"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"must be a number, got {type(value).__name__}"
        if not math.isfinite(value):
            return "must be a finite number"
        if kind == "int" and value != int(value):
            return "must be a whole number"
        bad = {
            POSITIVE: value <= 0,
            NON_NEGATIVE: value < 0,
            FRACTION: not 0 <= value <= 1,
            AT_LEAST_ONE: value < 1,
        }.get(check, False)
        return f"must be {check}" if bad else None
    if kind == "kinds":
        if isinstance(value, str) or not all(isinstance(v, str) for v in value):
            return "must be a list of exposure kinds"
        unknown = sorted(set(value) - set(KIND_WEIGHTS))
        if unknown:
            return f"has unknown exposure kind(s) {unknown}; kinds are {list(KIND_WEIGHTS)}"
        return None if value else "must name at least one exposure kind"
    if kind == "weights":
        weights = dict(value)
        unknown = sorted(set(weights) - set(KIND_WEIGHTS))
        if unknown:
            return f"has unknown exposure kind(s) {unknown}; kinds are {list(KIND_WEIGHTS)}"
        for k, w in weights.items():
            why = _problem("float", NON_NEGATIVE, w)
            if why:
                return f"weight of {k!r} {why}"
        return None
    if kind == "category_windows":
        # The message continues the key: "funnel.category_windows" + ".cat_baby.seed_window_days = ...".
        for category, windows in value:
            if not isinstance(category, str) or not category.strip():
                return f": category id {category!r} must be a non-empty string"
            if not windows:
                return f".{category} names no window; set {' and/or '.join(WINDOW_KEYS)}"
            for key, days in windows:
                if key not in WINDOW_KEYS:
                    close = difflib.get_close_matches(str(key), WINDOW_KEYS, n=1)
                    hint = f"did you mean {close[0]!r}? " if close else ""
                    return f".{category}: unknown window {key!r}; {hint}known: {', '.join(WINDOW_KEYS)}"
                why = _problem("float", POSITIVE, days)
                if why:
                    return f".{category}.{key} = {days!r} {why}"
        return None
    raise KeyError(kind)


def _number(v):
    """A weight as float when it is a number (left as it is otherwise, for the check to name)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def _pairs(value) -> list:
    """(key, value) pairs of a mapping or of a sequence of pairs."""
    return list(value.items()) if isinstance(value, Mapping) else [tuple(pair) for pair in value]


def _category_windows(value) -> tuple[tuple[str, tuple[tuple[str, float], ...]], ...]:
    """Per-category windows as ``((category_id, ((key, days), ...)), ...)``: categories sorted,
    keys in WINDOW_KEYS order (unknown keys after them, for the check to name), numbers as float.
    Takes a mapping {category: {key: days}} or the same as nested pairs (the stored form)."""
    rank = {k: i for i, k in enumerate(WINDOW_KEYS)}
    try:
        out = []
        for category, windows in dict(_pairs(value)).items():
            own = sorted(dict(_pairs(windows)).items(), key=lambda kv: (rank.get(kv[0], len(rank)), str(kv[0])))
            out.append((category, tuple((k, _number(v)) for k, v in own)))
    except (TypeError, ValueError):
        raise SettingsError(
            f"funnel.category_windows = {value!r} must map category ids to tables of "
            f"{' and/or '.join(WINDOW_KEYS)}"
        ) from None
    return tuple(sorted(out, key=lambda cw: str(cw[0])))


def _merge(kind: str, base, extra):
    """A value given over another: weights and per-category windows change only what they name."""
    if kind == "weights":
        return {**dict(base), **extra}
    if kind == "category_windows":
        out = {c: dict(_pairs(w)) for c, w in _pairs(base)}
        for c, w in _pairs(extra):
            out[c] = {**out.get(c, {}), **dict(_pairs(w))}
        return out
    return extra


def _validate(params, section: str) -> None:
    """Check every field against its rule; numbers take their field's type (15 and 15.0 are one
    setting, and fingerprint alike)."""
    for f in fields(params):
        value = getattr(params, f.name)
        if f.metadata["kind"] in ("float", "int") and isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isfinite(value) and (f.metadata["kind"] == "float" or value == int(value)):
                object.__setattr__(params, f.name, float(value) if f.metadata["kind"] == "float" else int(value))
    for f in fields(params):
        why = _problem(f.metadata["kind"], f.metadata["check"], getattr(params, f.name))
        if why:
            if f.metadata["kind"] == "category_windows":
                error = SettingsError(f"{section}.{f.name}{why}")
            else:
                error = SettingsError(f"{section}.{f.name} = {getattr(params, f.name)!r} {why}")
            error.key = f"{section}.{f.name}"
            raise error


@dataclass(frozen=True)
class FunnelParams:
    """Parameters of SPEC section 5, with their defaults (section ``[funnel]`` of the settings file)."""

    seed_window_days: float = _param(15, "float", POSITIVE, "SPEC 5.3: touches seed searches up to this many days later")
    conversion_window_days: float = _param(3, "float", POSITIVE, "SPEC 5.4: a pair converts on orders up to this many days after the search")
    min_link_confidence: float = _param(0.8, "float", FRACTION, "SPEC 5.1: the lowest id-link confidence that links")
    touch_kinds: tuple[str, ...] = _param(
        ("read", "like", "collect", "comment", "share"), "kinds", None, "SPEC 5.1: exposure kinds that make touches"
    )
    decay_half_life_days: float = _param(7, "float", POSITIVE, "SPEC 5.6: half-life of the time_decay model")
    boost_half_life_days: float = _param(3, "float", POSITIVE, "SPEC 5.8: half-life of the brand boost signal")
    boost_top_n: int = _param(50, "int", AT_LEAST_ONE, "SPEC 5.8: boost signals kept per user")
    kind_weights: tuple[tuple[str, float], ...] = _param(
        tuple(KIND_WEIGHTS.items()), "weights", None, "SPEC 5.8: weight of each exposure kind in the boost signal"
    )
    #: SPEC 5.10: a unit's activity stratum counts the user's searches (and category orders) in
    #: [t_s - activity_window, t_s).
    activity_window_days: float = _param(14, "float", POSITIVE, "SPEC 5.10: the strata count searches and orders this many days back")
    #: SPEC 5.11, decision cycles: category id -> its own seed_window_days and/or
    #: conversion_window_days. Every rule of SPEC 5 then reads the windows of the brand's category
    #: (``windows_of``); a key left out, and every category not named, keeps the global window.
    #: Stored as ``((category_id, ((key, days), ...)), ...)``; a mapping is accepted too.
    category_windows: tuple[tuple[str, tuple[tuple[str, float], ...]], ...] = _param(
        (), "category_windows", None,
        "SPEC 5.11: a category's own seed_window_days / conversion_window_days (its decision cycle); "
        "a table per category, [funnel.category_windows.<category_id>]",
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "touch_kinds", tuple(self.touch_kinds))
        weights = dict(self.kind_weights)
        object.__setattr__(self, "kind_weights", tuple((str(k), _number(w)) for k, w in weights.items()))
        object.__setattr__(self, "category_windows", _category_windows(self.category_windows))
        _validate(self, "funnel")

    @property
    def seed_window(self) -> timedelta:
        return timedelta(days=self.seed_window_days)

    @property
    def activity_window(self) -> timedelta:
        return timedelta(days=self.activity_window_days)

    @property
    def conversion_window(self) -> timedelta:
        return timedelta(days=self.conversion_window_days)

    @property
    def kind_weight(self) -> dict[str, float]:
        return dict(self.kind_weights)

    def windows_of(self, category_id: str | None) -> tuple[timedelta, timedelta]:
        """(seed_window, conversion_window) of a category (SPEC 5.11): its own where
        ``category_windows`` names it, the global ones otherwise (and for no category)."""
        own = dict(dict(self.category_windows).get(category_id, ()))
        return (
            timedelta(days=own.get("seed_window_days", self.seed_window_days)),
            timedelta(days=own.get("conversion_window_days", self.conversion_window_days)),
        )

    def all_windows(self) -> list[tuple[timedelta, timedelta]]:
        """The (seed_window, conversion_window) pairs in use: the global one (every category not
        named) and each named category's. Lookbacks and restatement reach take their maxima."""
        return [self.windows_of(None), *(self.windows_of(c) for c, _ in self.category_windows)]

    def category_seed_windows(self) -> dict[str, float]:
        """category_id -> seed window in days of every category ``category_windows`` names (a
        category's decision cycle, SPEC 5.11; the others have the global ``seed_window_days``)."""
        return {c: self.windows_of(c)[0] / timedelta(days=1) for c, _ in self.category_windows}

    @property
    def max_seed_window(self) -> timedelta:
        """The longest seed window of any category."""
        return max(seed for seed, _ in self.all_windows())

    @property
    def max_conversion_window(self) -> timedelta:
        """The longest conversion window of any category."""
        return max(conv for _, conv in self.all_windows())

    def check_categories(self, known, where: str = "categories.csv") -> None:
        """Raise SettingsError when ``category_windows`` names a category that ``known`` (the
        category ids of the reference data, read from ``where``) does not list."""
        known = {str(c) for c in known}
        unknown = [c for c, _ in self.category_windows if c not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise SettingsError(
                f"funnel.category_windows names category {unknown[0]!r}, which {where} does not list "
                f"({len(unknown)} unknown: {', '.join(map(repr, unknown))}); {hint}"
                f"known: {', '.join(sorted(known))}. Fix the id in the settings or add the category."
            )


@dataclass(frozen=True)
class QualityParams:
    """Thresholds of the data-quality checks (docs/quality.md); GX suites read them by name
    (section ``[quality]`` of the settings file)."""

    # Feed rates (docs/quality.md): critical only on a sudden drop of a feed's working share (linked
    # ids, exposures of known notes, orders of known brands, accepted rows) against its own trailing
    # history; the absolute floors and ceilings below only warn, as do days without history.
    feed_drop_ratio: float = _param(0.5, "float", FRACTION, "a feed rate is critical when its working share falls below this times the median of its trailing history")
    feed_history_days: int = _param(7, "int", AT_LEAST_ONE, "days of trailing history a feed rate is compared with", suite=False)
    feed_min_history_days: int = _param(3, "int", NON_NEGATIVE, "days of that history a drop needs to be judged; fewer only warn (0: never warn)")
    link_settle_days: int = _param(7, "int", NON_NEGATIVE, "id links arrive in batches: the id-link rate of day D is measured on the external ids that exposed on delivery day D - this", suite=False)
    note_settle_days: int = _param(7, "int", NON_NEGATIVE, "notes are crawled late: the orphan exposure rate of day D is measured on the exposures delivered on D - this", suite=False)
    #: Cross-platform id linking typically covers 30-50% of accounts, and links arrive in weekly
    #: batches: below a quarter is worth a look.
    min_id_link_rate: float = _param(0.25, "float", FRACTION, "floor of the id-link rate (a warning)")
    max_orphan_exposure_rate: float = _param(0.05, "float", FRACTION, "ceiling of the orphan exposure rate (a warning)")
    max_unknown_brand_rate: float = _param(0.05, "float", FRACTION, "ceiling of the share of orders of brands missing from brands.csv (a warning)")
    max_quarantine_rate: float = _param(0.05, "float", FRACTION, "ceiling of quarantined / input rows of a day (a warning)")
    #: A type code no exporter table lists yet keeps its note (note_type unknown): worth adding to
    #: the table, never a reason to stop the day. 0: every such note warns.
    max_unknown_note_type_rate: float = _param(0.0, "float", FRACTION, "ceiling of the share of the day's delivered notes whose type code no exporter table lists (note_type unknown; a warning)")
    max_event_delivery_age_days: int = _param(0, "int", NON_NEGATIVE, "exposures, searches and orders arrive at least this often")
    max_dimension_delivery_age_days: int = _param(30, "int", NON_NEGATIVE, "notes, id links and items arrive at least this often")
    max_event_lag_hours: float = _param(24.0, "float", NON_NEGATIVE, "latest event of a delivery at most this long before the day's end")
    credit_tolerance_fen: float = _param(0.01, "float", NON_NEGATIVE, "float tolerance of a credit sum")

    def __post_init__(self) -> None:
        _validate(self, "quality")

    def parameters(self) -> dict[str, float]:
        """The thresholds as GX suite parameters (``{"$PARAMETER": name}`` in the suites)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.metadata["suite"]}


# ---------------------------------------------------------------- resolution

#: Top-level keys of the settings file besides the sections: location and scale settings.
_TOP = ("home", "landing", "seeds", "warehouse_url", "buckets")


@dataclass(frozen=True)
class ModelParams:
    """The models over a reporting window of SPEC 5.11: data-driven attribution, cost and ROI
    (section ``[models]`` of the settings file; docs/attribution.md)."""

    model_window_days: int = _param(28, "int", AT_LEAST_ONE, "SPEC 5.11: the models are fitted over the paths of the last this-many days up to each as-of day")
    bootstrap_replicates: int = _param(100, "int", AT_LEAST_ONE, "replicates of the bootstrap over users behind every 95% interval of the models")
    bootstrap_seed: int = _param(0, "int", NON_NEGATIVE, "seed of the bootstrap: the same inputs give the same intervals")
    max_creators: int = _param(200, "int", AT_LEAST_ONE, "creators kept as channels of their own (by touches); the rest are pooled as '(other)'")

    def __post_init__(self) -> None:
        _validate(self, "models")


_SECTIONS = {"funnel": FunnelParams, "quality": QualityParams, "models": ModelParams}
_ENV = {"home": ENV_HOME, "landing": ENV_LANDING, "seeds": ENV_SEEDS, "warehouse_url": ENV_WAREHOUSE_URL, "buckets": ENV_BUCKETS}
DEFAULT = "default"


def env_name(section: str, key: str) -> str:
    """The environment variable of a section key: ``SEEDFUNNEL_FUNNEL__SEED_WINDOW_DAYS``."""
    return f"SEEDFUNNEL_{section.upper()}__{key.upper()}"


def _unknown(where: str, key: str, known) -> SettingsError:
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return SettingsError(f"{where}: unknown setting {key!r}; {hint}known: {', '.join(sorted(known))}")


def find_config(explicit: Path | str | None = None) -> tuple[Path | None, str]:
    """The settings file to read and what named it: ``--config``, SEEDFUNNEL_CONFIG, or
    ``seedfunnel.toml`` in the working folder; (None, "") when there is none."""
    named, by = (explicit, "--config") if explicit else (os.environ.get(ENV_CONFIG), ENV_CONFIG)
    if named:
        path = Path(named).expanduser()
        if not path.is_file():
            raise SettingsError(
                f"{by} names {path}, which is not a file; point it at a {CONFIG_FILE} "
                f"(`seedfunnel settings --toml` prints one with every value)"
            )
        return path, by
    here = Path.cwd() / CONFIG_FILE
    return (here, "the working folder") if here.is_file() else (None, "")


def read_config(path: Path) -> dict:
    """The settings file's values, checked for unknown keys and types (paths made absolute)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SettingsError(f"{path}: cannot read it as TOML ({e}); fix the file or point --config elsewhere") from None
    out: dict = {}
    for key, value in raw.items():
        where = f"{path}"
        if key in _SECTIONS:
            if not isinstance(value, dict):
                raise SettingsError(f"{path}: {key} must be a table ([{key}]), got {value!r}")
            known = {f.name: f for f in fields(_SECTIONS[key])}
            for name, v in value.items():
                if name not in known:
                    raise _unknown(f"{where} [{key}]", name, known)
                out[f"{key}.{name}"] = _from_file(path, f"{key}.{name}", known[name], v)
        elif key in _TOP:
            if key == "buckets":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise SettingsError(f"{path}: buckets = {value!r} must be a whole number >= 1")
            elif not isinstance(value, str):
                raise SettingsError(f"{path}: {key} = {value!r} must be a string")
            if key in ("home", "landing", "seeds"):
                value = (path.parent / Path(value).expanduser()).resolve()
            out[key] = value
        else:
            raise _unknown(where, key, [*_TOP, *(f"[{s}]" for s in _SECTIONS)])
    return out


def _from_file(path: Path, key: str, f, value):
    kind = f.metadata["kind"]
    if kind == "kinds":
        if not isinstance(value, list):
            raise SettingsError(f"{path}: {key} = {value!r} must be a list of exposure kinds")
        return tuple(value)
    if kind == "weights":
        if not isinstance(value, dict):
            raise SettingsError(f"{path}: {key} must be a table of exposure kind = weight, got {value!r}")
        return value
    if kind == "category_windows":
        bad = value if not isinstance(value, dict) else next((w for w in value.values() if not isinstance(w, dict)), None)
        if bad is not None:
            raise SettingsError(
                f"{path}: {key} must hold a table per category, [{key}.<category_id>] with "
                f"{' and/or '.join(WINDOW_KEYS)}, got {bad!r}"
            )
        return value
    return value


def _from_env(var: str, f, text: str):
    kind = f.metadata["kind"]
    try:
        if kind == "kinds":
            return tuple(k.strip() for k in text.split(",") if k.strip())
        if kind == "weights":
            pairs = (item.split("=", 1) for item in text.split(",") if item.strip())
            return {k.strip(): float(w) for k, w in pairs}
        if kind == "category_windows":
            out: dict[str, dict[str, float]] = {}
            for item in (i for i in text.split(",") if i.strip()):
                name, days = item.split("=", 1)
                category, window = name.strip().rsplit(".", 1)
                out.setdefault(category, {})[window] = float(days)
            return out
        return int(text) if kind == "int" else float(text)
    except ValueError:
        raise SettingsError(f"{var}={text!r} is not a valid {f.name} ({kind}: {_EXAMPLE[kind]})") from None


_EXAMPLE = {"float": "a number", "int": "a whole number", "kinds": "comma-separated kinds, e.g. read,like",
            "weights": "kind=weight pairs, e.g. impression=0.2,read=1",
            "category_windows": "category.window=days pairs, e.g. cat_baby.seed_window_days=70,cat_baby.conversion_window_days=7"}


def _section(name: str, given, config: dict, config_source: str) -> tuple[object, dict[str, str]]:
    """FunnelParams / QualityParams: the argument as given, else defaults < file < environment."""
    cls = _SECTIONS[name]
    if given is not None:
        return given, {f"{name}.{f.name}": "argument" for f in fields(cls)}
    values: dict = {}
    sources: dict[str, str] = {}
    for f in fields(cls):
        key = f"{name}.{f.name}"
        default = f.default if f.default is not MISSING else f.default_factory()
        values[f.name], sources[key] = default, DEFAULT
        if key in config:
            values[f.name] = _merge(f.metadata["kind"], default, config[key])
            sources[key] = config_source
        var = env_name(name, f.name)
        if os.environ.get(var):
            values[f.name] = _merge(f.metadata["kind"], values[f.name], _from_env(var, f, os.environ[var]))
            sources[key] = f"env {var}"
    prefix = env_name(name, "")
    known = {env_name(name, f.name) for f in fields(cls)}
    for var in os.environ:
        if var.startswith(prefix) and var not in known:
            raise _unknown("environment", var, sorted(known))
    try:
        return cls(**values), sources
    except SettingsError as e:
        key = getattr(e, "key", "")
        raise SettingsError(f"{e} (from {sources.get(key, DEFAULT)})") from None


@dataclass(frozen=True)
class Settings:
    """Where things live and every parameter, resolved: argument > environment > file > default.

    Fields left None are resolved when the object is made; ``sources`` says where each value came
    from (``default``, ``file <path>``, ``env <VAR>`` or ``argument``).
    """

    home: Path | None = None
    landing: Path | None = None
    seeds: Path | None = None
    warehouse_url: str | None = None
    buckets: int | None = None
    funnel: FunnelParams | None = None
    quality: QualityParams | None = None
    models: ModelParams | None = None
    #: The settings file to read (``--config``); None: SEEDFUNNEL_CONFIG, else ./seedfunnel.toml.
    config: Path | None = None
    sources: Mapping[str, str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        known = dict(self.sources or {})
        path, named_by = find_config(self.config)
        config = read_config(path) if path else {}
        in_file = f"file {path}"
        sources: dict[str, str] = {}

        def pick(name: str, default, convert=lambda v: v):
            given = getattr(self, name)
            if given is not None:
                sources[name] = known.get(name, "argument")
                return convert(given)
            var = _ENV.get(name)
            if var and os.environ.get(var):
                sources[name] = f"env {var}"
                try:
                    return convert(os.environ[var])
                except ValueError:
                    raise SettingsError(f"{var}={os.environ[var]!r} is not a valid {name}") from None
            if name in config:
                sources[name] = in_file
                return convert(config[name])
            sources[name] = DEFAULT
            return default if default is None else convert(default)

        home = pick("home", ".seedfunnel", Path)
        object.__setattr__(self, "home", home)
        object.__setattr__(self, "seeds", pick("seeds", PROJECT_ROOT / "seeds", Path))
        landing = pick("landing", None, Path)
        if landing is None:
            landing, sources["landing"] = home / "landing", "default (home/landing)"
        object.__setattr__(self, "landing", landing)
        object.__setattr__(self, "warehouse_url", pick("warehouse_url", None, str))
        buckets = pick("buckets", 1, int)
        if buckets < 1:
            raise SettingsError(f"buckets = {buckets} must be >= 1 (from {sources['buckets']})")
        object.__setattr__(self, "buckets", buckets)
        for name in _SECTIONS:
            value, section_sources = _section(name, getattr(self, name), config, in_file)
            if getattr(self, name) is not None:
                section_sources = {k: known.get(k, v) for k, v in section_sources.items()}
            object.__setattr__(self, name, value)
            sources.update(section_sources)
        object.__setattr__(self, "config", path)
        sources["config"] = f"{named_by}" if path else DEFAULT
        object.__setattr__(self, "sources", sources)

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def work(self) -> Path:
        """Scratch space for bucket outputs between the map and reduce steps."""
        return self.home / "work"

    def resolved_warehouse_url(self) -> str:
        """Argument > SEEDFUNNEL_WAREHOUSE_URL > settings file > Airflow connection > SQLite under home."""
        if self.warehouse_url:
            return self.warehouse_url
        url = _airflow_connection_url()
        if url:
            return url
        return f"sqlite:///{(self.home / 'warehouse.sqlite').resolve()}"

    def warehouse_source(self) -> str:
        """Where resolved_warehouse_url() comes from."""
        if self.warehouse_url:
            return self.sources.get("warehouse_url", "argument")
        if _airflow_connection_url():
            return f"airflow connection {AIRFLOW_CONN_ID}"
        return "default (SQLite in home)"

    def with_(self, **changes) -> Settings:
        """A copy with ``changes`` (their source: argument)."""
        sources = {k: v for k, v in (self.sources or {}).items() if k.split(".")[0] not in changes}
        return replace(self, sources=sources, **changes)

    def listing(self) -> list[tuple[str, str, str]]:
        """(setting, value, source) of every resolved value, secrets masked: what
        ``seedfunnel settings`` prints."""
        src = self.sources or {}
        rows = [
            ("config", str(self.config) if self.config else f"(none: no {CONFIG_FILE} here, {ENV_CONFIG} unset)", src.get("config", DEFAULT)),
            ("home", str(self.home), src.get("home", DEFAULT)),
            ("landing", str(self.landing), src.get("landing", DEFAULT)),
            ("seeds", str(self.seeds), src.get("seeds", DEFAULT)),
            ("warehouse_url", redact_url(self.resolved_warehouse_url()), self.warehouse_source()),
            ("buckets", str(self.buckets), src.get("buckets", DEFAULT)),
            ("lake", str(self.lake), "home/lake"),
            ("reports", str(self.reports), "home/reports"),
        ]
        for name in _SECTIONS:
            params = getattr(self, name)
            for f in fields(params):
                value = getattr(params, f.name)
                shown = json.dumps(dict(value) if f.metadata["kind"] == "weights" else
                                   list(value) if f.metadata["kind"] == "kinds" else
                                   {c: dict(w) for c, w in value} if f.metadata["kind"] == "category_windows" else value)
                rows.append((f"{name}.{f.name}", shown, src.get(f"{name}.{f.name}", DEFAULT)))
        return rows

    def describe(self) -> dict[str, str]:
        """setting -> value of ``listing()`` (secrets masked)."""
        return {key: value for key, value, _ in self.listing()}

    def to_toml(self) -> str:
        """The resolved settings as a settings file (paths absolute). The warehouse URL is left out:
        it may hold a password; give it by SEEDFUNNEL_WAREHOUSE_URL or the Airflow connection."""
        def lit(v) -> str:
            if isinstance(v, bool):
                return "true" if v else "false"
            if isinstance(v, (int, float)):
                return repr(v)
            if isinstance(v, (list, tuple)):
                return "[" + ", ".join(lit(x) for x in v) + "]"
            return json.dumps(str(v), ensure_ascii=False)

        lines = [f"# seedfunnel settings ({CONFIG_FILE}); every key is optional, see docs/settings.md"]
        lines += [f"home = {lit(Path(self.home).resolve())}", f"landing = {lit(Path(self.landing).resolve())}",
                  f"seeds = {lit(Path(self.seeds).resolve())}", f"buckets = {self.buckets}",
                  f"# warehouse_url: not written here; set {ENV_WAREHOUSE_URL} or the Airflow connection {AIRFLOW_CONN_ID}"]
        for name in _SECTIONS:
            params = getattr(self, name)
            lines.append(f"\n[{name}]")
            tables = []
            for f in fields(params):
                value = getattr(params, f.name)
                if f.metadata["kind"] == "weights":
                    tables.append((f.name, dict(value)))
                    continue
                if f.metadata["kind"] == "category_windows":
                    if not value:
                        lines.append(f"# {f.name}: none  # {f.metadata['doc']}")
                    tables += [(f"{f.name}.{_toml_key(c)}", dict(w)) for c, w in value]
                    continue
                lines.append(f"{f.name} = {lit(value)}  # {f.metadata['doc']}")
            for table, mapping in tables:
                lines.append(f"\n[{name}.{table}]")
                lines += [f"{k} = {lit(v)}" for k, v in mapping.items()]
        return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    """A TOML key: bare when it may be, else quoted."""
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key, ensure_ascii=False)


def worker_hostname() -> str:
    """Airflow's ``[core] hostname_callable``: SEEDFUNNEL_WORKER_NAME, else the machine's FQDN.

    Lets several Celery workers on one machine record distinct TaskInstance hostnames.
    """
    import socket

    return os.environ.get(ENV_WORKER_NAME) or socket.getfqdn()


class ConnectionLookupError(RuntimeError):
    """The Airflow connection of the warehouse exists (or may) but could not be read."""


def _airflow_connection_url() -> str | None:
    """The URI of the Airflow connection, only when running inside an Airflow task.

    Only "not defined" falls back to the default warehouse. Any other failure of the lookup (a
    secrets backend down or denying access, a broken connection) is an error: falling back would
    publish production data to a local SQLite file and succeed.
    """
    env_uri = os.environ.get(f"AIRFLOW_CONN_{AIRFLOW_CONN_ID.upper()}")
    if not os.environ.get("AIRFLOW_CTX_DAG_ID") and not env_uri:
        return None
    try:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            conn = BaseHook.get_connection(AIRFLOW_CONN_ID)
        except AirflowNotFoundException:
            return None
        uri = conn.get_uri()
    except Exception as e:
        raise ConnectionLookupError(
            f"cannot read the Airflow connection {AIRFLOW_CONN_ID!r} ({e.__class__.__name__}: "
            f"{redact_text(str(e), env_uri)}); refusing to fall back to a local SQLite warehouse. "
            f"Fix the connection or its secrets backend, or set {ENV_WAREHOUSE_URL}."
        ) from None
    # Airflow spells PostgreSQL "postgres://"; SQLAlchemy wants a driver name.
    if uri.startswith("postgres://") or uri.startswith("postgresql://"):
        uri = "postgresql+psycopg://" + uri.split("://", 1)[1]
    return uri
