"""``seedfunnel seeds lint``: brand aliases that are likely ambiguous in notes (SPEC 4).

An alias that is also an everyday word, a short acronym or a piece of other words names its brand
only in context, so it belongs in ``context_aliases`` of brands.csv. The lint finds such aliases
from general vocabularies, never from ``context_aliases`` itself, so a test can hold seeds/ to it:

- ``acronym``: 1-3 Latin letters or digits (HR is human resources, NB is slang for awesome);
- ``english word``: a Latin alias that is an ordinary English word: frequent in English, and
  markedly more frequent there than in other European languages (a brand name is about as
  frequent in every language: CAMEL is flagged, Samsung is not);
- ``common word``: a Chinese alias that the jieba dictionary tags as an ordinary word (not a name)
  and that is frequent in wordfreq's Chinese list (好奇 'curious', 渴望 'long for', 苹果 'apple');
- ``across words``: a Chinese alias that text forms by chance at the seam of two words about as
  often as it is used itself (美的 in 精美的: a word ending in 美, then 的);
- ``inside words``: a Chinese alias that mostly occurs inside longer words that are no alias
  (雪峰 in the names 冯雪峰, 李雪峰; 迪奥 in 克劳迪奥).

Frequencies are Zipf values (log10 of occurrences per billion words) from wordfreq.
"""

from __future__ import annotations

import importlib.util
import math
import re
from collections import defaultdict
from functools import cache, lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..reference import split_list
from .matcher import MIN_ENTRY_LENGTH
from .normalize import normalize_many

ACRONYM = re.compile(r"[a-z0-9]{1,3}")
LATIN_WORD = re.compile(r"[a-z]+")
CJK = re.compile(r"[\u3400-\u9fff]+")
#: Languages an international brand name is about as frequent in as in English.
OTHER_LANGUAGES = ("de", "fr", "es", "it", "pt", "nl", "pl", "id", "ru")
#: jieba's tags for names (people, places, organisations, other proper nouns) and foreign words.
NAME_TAGS = frozenset({"nr", "nrt", "nrfg", "ns", "nt", "nz", "eng"})

MIN_COMMON_ZIPF = 3.0  # a Chinese word at least this frequent is common
MIN_ENGLISH_ZIPF = 3.0
MIN_ENGLISH_EXCESS = 0.7  # English Zipf above the median of OTHER_LANGUAGES
UNKNOWN_ZIPF = 3.0  # an alias missing from the list is taken as this frequent (across words)
MIN_INSIDE_SHARE = 0.15  # occurrences inside longer words / occurrences on its own
MIN_INSIDE_ZIPF = 2.5


def zipf(freq: float) -> float:
    """Zipf value of a frequency (0 for a word not in the list)."""
    return math.log10(freq * 1e9) if freq > 0 else 0.0


@cache
def _freqs(lang: str) -> dict[str, float]:
    from wordfreq import get_frequency_dict

    return get_frequency_dict(lang, wordlist="best")


@lru_cache(maxsize=1)
def _jieba_tags() -> dict[str, str]:
    """word -> part-of-speech tag from jieba's dictionary (word, count, tag per line)."""
    # Found without importing jieba (its import compiles regexes Python warns about).
    spec = importlib.util.find_spec("jieba")
    folder = Path(next(iter(spec.submodule_search_locations)))
    text = (folder / "dict.txt").read_text(encoding="utf-8")
    return {w: t for w, _, t in (line.split(" ") for line in text.splitlines() if line.count(" ") == 2)}


@lru_cache(maxsize=1)
def _affixes() -> tuple[dict[str, float], dict[str, float]]:
    """Total frequency of the Chinese words ending / starting with each 1-2 character string."""
    ends: dict[str, float] = defaultdict(float)
    starts: dict[str, float] = defaultdict(float)
    for w, f in _freqs("zh").items():
        for k in (1, 2):
            if len(w) >= k:
                ends[w[-k:]] += f
                starts[w[:k]] += f
    return ends, starts


@lru_cache(maxsize=1)
def _zh_words() -> tuple[list[str], np.ndarray, str, np.ndarray]:
    """The Chinese words, their frequencies, the words joined by newlines and each one's start."""
    words = _freqs("zh")
    listed = list(words)
    lengths = np.fromiter(map(len, listed), dtype=np.int64, count=len(listed))
    return listed, np.array(list(words.values()), dtype=float), "\n".join(listed), np.cumsum(lengths + 1) - lengths - 1


def _words_containing(alias: str) -> np.ndarray:
    """Indices of the Chinese words that contain ``alias`` (one C-level scan of all words)."""
    _, _, joined, starts = _zh_words()
    at = np.fromiter((m.start() for m in re.finditer(re.escape(alias), joined)), dtype=np.int64)
    return np.unique(np.searchsorted(starts, at, side="right") - 1)


def _acronym(alias: str) -> str | None:
    return "1-3 Latin letters or digits: an acronym of many things" if ACRONYM.fullmatch(alias) else None


def _english_word(alias: str) -> str | None:
    if not LATIN_WORD.fullmatch(alias):
        return None
    en = zipf(_freqs("en").get(alias, 0.0))
    others = float(np.median([zipf(_freqs(lang).get(alias, 0.0)) for lang in OTHER_LANGUAGES]))
    if en >= MIN_ENGLISH_ZIPF and en - others >= MIN_ENGLISH_EXCESS:
        return f"an ordinary English word (Zipf {en:.1f} in English, {others:.1f} elsewhere)"
    return None


def _common_word(alias: str) -> str | None:
    tag = _jieba_tags().get(alias)
    z = zipf(_freqs("zh").get(alias, 0.0))
    if CJK.fullmatch(alias) and tag is not None and tag not in NAME_TAGS and z >= MIN_COMMON_ZIPF:
        return f"a common Chinese word (jieba tag {tag!r}, Zipf {z:.1f})"
    return None


def _across_words(alias: str) -> str | None:
    if not CJK.fullmatch(alias) or len(alias) < 2:
        return None
    ends, starts = _affixes()
    own = zipf(_freqs("zh").get(alias, 0.0)) or UNKNOWN_ZIPF
    best, split = 0.0, ""
    for i in range(1, len(alias)):
        left, right = alias[:i], alias[i:]
        if len(left) > 2 or len(right) > 2:
            continue
        chance = ends.get(left, 0.0) * starts.get(right, 0.0)
        if chance > best:
            best, split = chance, f"{left}|{right}"
    if best and zipf(best) >= own:
        return f"formed at the seam of two words ({split}: Zipf {zipf(best):.1f} by chance, {own:.1f} as a word)"
    return None


def _inside_words(alias: str, aliases: frozenset[str]) -> str | None:
    if not CJK.fullmatch(alias):
        return None
    own = _freqs("zh").get(alias, 0.0)
    if zipf(own) < MIN_INSIDE_ZIPF:
        return None
    words, freqs, _, _ = _zh_words()
    holds = [i for i in _words_containing(alias) if words[i] != alias and words[i] not in aliases]
    share = freqs[holds].sum() / own
    if share >= MIN_INSIDE_SHARE:
        top = [words[i] for i in sorted(holds, key=lambda i: -freqs[i])[:3]]
        return f"mostly inside longer words ({share:.0%} as often: {', '.join(top)})"
    return None


def lint(brands: pd.DataFrame) -> pd.DataFrame:
    """Findings over a brands frame: brand_id, alias (as written), reason, detail, is_context.

    Every alias is judged in its normal form (SPEC 4); `is_context` says whether brands.csv
    already lists it in context_aliases (the lint itself never reads that column).
    """
    items = pd.DataFrame({"brand_id": brands["brand_id"], "alias": split_list(brands["aliases"])})
    items = items.explode("alias").dropna().reset_index(drop=True)
    items["normal"] = [s.strip() for s in normalize_many(items["alias"].tolist())]
    items = items[items["normal"].str.len() >= MIN_ENTRY_LENGTH]  # shorter ones never match
    every = frozenset(items["normal"])
    context = pd.DataFrame(
        {"brand_id": brands["brand_id"], "alias": split_list(brands.get("context_aliases", pd.Series("", index=brands.index)))}
    ).explode("alias").dropna()
    context_keys = set(zip(context["brand_id"], context["alias"], strict=True))
    checks = (
        ("acronym", _acronym),
        ("english word", _english_word),
        ("common word", _common_word),
        ("across words", _across_words),
        ("inside words", lambda a: _inside_words(a, every)),
    )
    found = []
    # A loop over the seed dictionary (a few hundred aliases), not over event data.
    for row in items.drop_duplicates(["brand_id", "normal"]).itertuples(index=False):
        for reason, check in checks:
            detail = check(row.normal)
            if detail:
                found.append((row.brand_id, row.alias, reason, detail, (row.brand_id, row.alias) in context_keys))
    return pd.DataFrame(found, columns=["brand_id", "alias", "reason", "detail", "is_context"])
