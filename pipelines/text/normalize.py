"""The one text normalisation of SPEC 4: Unicode NFKC, case-folded, Traditional -> Simplified.

Notes, queries, aliases and keywords all go through here, so they compare equal exactly when
their normal forms do. Many texts are normalised in one pass: they are joined with a separator
that all three steps leave alone, converted once, and split again. Lengths may change on the way
(NFKC turns "ﬁ" into "fi", case-folding "ß" into "ss"), so nothing relies on positions.

NFKC is the slow step (CPython normalises a whole string once any character in it needs it), so
only the texts holding a character that NFKC could change, in isolation or next to another, are
passed through it; every other text is already in NFKC.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import opencc
import pandas as pd

#: Joins texts for the batch pass. A C0 control character: NFKC, case-folding and OpenCC all map
#: it to itself, and being a starter that never composes it keeps NFKC from acting across texts.
SEPARATOR = "\x1f"
_REPLACEMENT = " "  # what a separator inside an input text becomes
# Hangul vowel and trailing-consonant jamo compose algorithmically with a preceding syllable.
_HANGUL_SECOND = (range(0x1161, 0x1176), range(0x11A8, 0x11C3))


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    """The OpenCC Traditional -> Simplified converter (built once; loading it costs ~10 ms)."""
    return opencc.OpenCC("t2s")


@lru_cache(maxsize=1)
def _composing_starters() -> frozenset[int]:
    """Starters (ccc 0) that NFC can compose with the character before them (NFKC_QC = Maybe)."""
    seconds = set()
    for cp in range(sys.maxunicode + 1):
        d = unicodedata.decomposition(chr(cp))
        if d and not d.startswith("<"):
            parts = d.split()
            if len(parts) == 2 and unicodedata.combining(chr(int(parts[1], 16))) == 0:
                seconds.add(int(parts[1], 16))
    for r in _HANGUL_SECOND:
        seconds.update(r)
    return frozenset(seconds)


@lru_cache(maxsize=65536)
def _nfkc_sensitive(cp: int) -> bool:
    """True if NFKC may change a text because it holds this code point."""
    ch = chr(cp)
    if 0xD800 <= cp <= 0xDFFF:  # a lone surrogate: normalised (replaced) with its text
        return True
    return (
        unicodedata.normalize("NFKD", ch) != ch
        or unicodedata.combining(ch) != 0
        or cp in _composing_starters()
    )


def _codepoints(text: str) -> np.ndarray:
    """The code points of a string as a uint32 array (index i = character i)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _nfkc_many(texts: list[str]) -> list[str]:
    """NFKC of every text, running the normaliser only over texts that it could change."""
    joined = SEPARATOR.join(texts)
    if unicodedata.is_normalized("NFKC", joined):
        return texts
    cps = _codepoints(joined)
    present = np.zeros(sys.maxunicode + 1, dtype=bool)
    present[cps] = True
    sensitive = np.zeros(sys.maxunicode + 1, dtype=bool)
    for cp in np.flatnonzero(present).tolist():  # a loop over distinct characters, not texts
        sensitive[cp] = _nfkc_sensitive(cp)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    text_start = np.cumsum(lengths + 1) - (lengths + 1)
    hit = np.flatnonzero(sensitive[cps])
    rows = np.unique(np.searchsorted(text_start, hit, side="right") - 1)
    out = np.array(texts, dtype=object)
    subset = _safe(unicodedata.normalize("NFKC", SEPARATOR.join(out[rows].tolist())))
    out[rows] = subset.split(SEPARATOR)
    return out.tolist()


def _safe(text: str) -> str:
    """The text with lone surrogates (broken UTF-16 in a JSON export) replaced by '?'."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def normalize_many(texts: Sequence[str | None]) -> list[str]:
    """NFKC, case-fold and Traditional -> Simplified of every text; None and NaN become ""."""
    if len(texts) == 0:
        return []
    cleaned = pd.Series(texts, dtype=object).fillna("").tolist()
    joined = SEPARATOR.join(cleaned)
    if joined.count(SEPARATOR) != len(cleaned) - 1:  # some text holds the separator itself
        cleaned = pd.Series(cleaned, dtype=object).str.replace(SEPARATOR, _REPLACEMENT).tolist()
    folded = SEPARATOR.join(_nfkc_many(cleaned)).casefold()
    out = _t2s().convert(_safe(folded)).split(SEPARATOR)
    if len(out) != len(cleaned):  # the invariant the separator choice guarantees
        raise AssertionError(
            f"normalisation changed the number of texts: {len(cleaned)} -> {len(out)}"
        )
    return out


def normalize(text: str | None) -> str:
    """The normal form of one text; None becomes the empty string."""
    return normalize_many([text])[0]


def normalize_series(texts: pd.Series) -> pd.Series:
    """normalize_many() of a Series, keeping its index; nulls become the empty string."""
    return pd.Series(normalize_many(texts.tolist()), index=texts.index, dtype="str")
