"""The simulator's words: brand alias variants, category terms and filler, checked against the dictionary.

Every fragment the simulator writes into a note or a query is one of these, and fragments are
always joined by separators that no dictionary term contains. So the brands a note mentions and the
categories a query names are known by construction, whatever matcher reads them, provided it
follows SPEC 4 (NFKC, case-fold, Traditional -> Simplified, leftmost-longest, Latin on word
boundaries, aliases of fewer than 2 characters ignored). The checks here are deliberately stricter
than the matcher (plain substrings, no word boundaries), so a fragment accepted here can only match
what it is meant to match.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from ..text.normalize import normalize

#: The project's SPEC 4 normalisation, memoised: the checks below ask for the same strings often.
normalise = lru_cache(maxsize=None)(normalize)

#: Joins fragments; no alias or keyword contains any of these characters.
SEPARATORS: tuple[str, ...] = ("，", "！", "。", " ", "\n", "～", "✨", "👍", "\t", "｜")

_FILLER_ZH: tuple[str, ...] = (
    "今天", "分享一下", "真的", "绝绝子", "姐妹们", "冲鸭", "亲测", "回购", "安利", "种草",
    "无限回购", "宝藏", "平价", "学生党", "打工人", "周末", "一起", "攻略", "合集", "测评",
    "真实体验", "细节", "效果", "值得", "入手", "必备", "清单", "氛围感", "质感", "性价比",
    "日常", "上班", "通勤", "约会", "旅行", "出差", "开箱", "体验", "干货", "避坑",
    "新手", "教程", "建议收藏", "码住", "太爱了", "惊喜", "满意", "推荐给大家", "不踩雷", "私藏",
    "小众", "高颜值", "实用", "方便", "省心", "划算", "闭眼入", "后悔没早买", "用了一个月", "说说感受",
    "记录生活", "我的日常", "碎碎念", "随手拍", "周末去哪儿", "春天", "秋冬", "夏天", "年货节", "双十一",
    "无标题",
)
_FILLER_LATIN: tuple[str, ...] = ("vlog", "OOTD", "plog", "daily", "haul", "review", "tips", "top10")
_TAG_FILLER: tuple[str, ...] = (
    "好物分享", "种草", "日常分享", "生活记录", "测评", "宝藏好物", "学生党", "平价好物", "开箱",
    "干货分享",
)


@lru_cache(maxsize=1)
def _s2t():
    import opencc

    return opencc.OpenCC("s2t")


def to_traditional(text: str) -> str:
    """Simplified -> Traditional spelling."""
    return _s2t().convert(text)


def to_fullwidth(text: str) -> str:
    """ASCII printable characters as their full-width forms (NFKC folds them back)."""
    return "".join(chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ("\u3000" if ch == " " else ch) for ch in text)


def _split(value: str) -> list[str]:
    return [p.strip() for p in str(value).split("|") if p.strip()]


@dataclass(frozen=True)
class Dictionary:
    """The normalised dictionary of SPEC 4: alias -> brand and keyword -> category."""

    alias_brand: dict[str, str]  # normalised alias -> brand_id (aliases shared by brands dropped)
    keyword_category: dict[str, str]  # normalised keyword -> category_id
    ambiguous: frozenset[str]  # normalised terms claimed by more than one brand / category

    def terms_in(self, text: str) -> set[str]:
        """Every dictionary term that occurs in normalised ``text`` as a plain substring."""
        norm = normalise(text)
        return {t for t in (*self.alias_brand, *self.keyword_category, *self.ambiguous) if t in norm}


def build_dictionary(brands: pd.DataFrame, categories: pd.DataFrame) -> Dictionary:
    """The dictionary of brands.csv aliases and categories.csv keywords, normalised."""
    claims: dict[str, set[str]] = {}
    for brand_id, aliases in zip(brands["brand_id"], brands["aliases"], strict=True):
        for a in _split(aliases):
            n = normalise(a)
            if len(n) >= 2:
                claims.setdefault(n, set()).add(f"b:{brand_id}")
    for category_id, keywords in zip(categories["category_id"], categories["keywords"], strict=True):
        for k in _split(keywords):
            n = normalise(k)
            if len(n) >= 2:
                claims.setdefault(n, set()).add(f"c:{category_id}")
    alias_brand = {t: next(iter(c))[2:] for t, c in claims.items() if len(c) == 1 and next(iter(c)).startswith("b:")}
    keyword_category = {t: next(iter(c))[2:] for t, c in claims.items() if len(c) == 1 and next(iter(c)).startswith("c:")}
    ambiguous = frozenset(t for t, c in claims.items() if len(c) > 1)
    return Dictionary(alias_brand, keyword_category, ambiguous)


@dataclass(frozen=True)
class Vocabulary:
    """Checked fragments, as frames with integer codes the world generator indexes into."""

    #: brand_id, category_id, text, script (simplified/latin/traditional/fullwidth), tag_ok,
    #: context (a context alias of SPEC 4: counts in a note only beside a keyword of its category)
    note_aliases: pd.DataFrame
    #: category_id, text, kind (keyword/alias), brand_id (for alias queries), script
    query_terms: pd.DataFrame
    #: category_id, text, traditional (keywords that name no brand, for note text and tags)
    note_keywords: pd.DataFrame
    #: text, traditional (filler that contains no dictionary term, in either script)
    fillers: pd.DataFrame
    tag_fillers: pd.DataFrame
    separators: tuple[str, ...]
    dropped: dict[str, list[str]]  # what the checks rejected, for the record


def _style(text: str) -> str:
    if any("\uff01" <= ch <= "\uff5e" for ch in text):
        return "fullwidth"
    if any(ch.isascii() and ch.isalpha() for ch in text):
        return "latin"
    if normalise(text) != text.casefold():
        return "traditional"
    return "simplified"


def build_vocabulary(brands: pd.DataFrame, categories: pd.DataFrame) -> Vocabulary:
    """Alias variants, query terms, keywords and filler that pass the dictionary checks."""
    d = build_dictionary(brands, categories)
    every = (*d.alias_brand, *d.keyword_category, *d.ambiguous)
    for sep in SEPARATORS:
        clash = [t for t in every if normalise(sep).strip() and normalise(sep) in t]
        if clash:
            raise ValueError(f"dictionary terms {clash[:5]} contain the separator {sep!r}; pick another")
    brand_category = dict(zip(brands["brand_id"], brands["category_id"], strict=True))
    dropped: dict[str, list[str]] = {"aliases": [], "keywords": [], "fillers": []}

    # context aliases (SPEC 4) count in a note only with context: note_aliases marks them
    context_of = brands["context_aliases"] if "context_aliases" in brands else pd.Series("", index=brands.index)
    alias_rows, query_rows = [], []
    for brand_id, aliases, context in zip(brands["brand_id"], brands["aliases"], context_of.fillna(""), strict=True):
        cat = brand_category[brand_id]
        context_norm = {normalise(c) for c in _split(context)}
        variants: dict[str, str] = {}
        for a in _split(aliases):
            variants.setdefault(a, _style(a))
            trad = to_traditional(a)
            if trad != a:
                variants.setdefault(trad, "traditional")
            if any(ch.isascii() and ch.isalpha() for ch in a):
                variants.setdefault(to_fullwidth(a), "fullwidth")
        for text, style in variants.items():
            n = normalise(text)
            found = {t for t in every if t in n}
            if d.alias_brand.get(n) != brand_id or any(d.alias_brand.get(t) != brand_id for t in found):
                dropped["aliases"].append(text)
                continue
            tag_ok = "," not in text and " " not in text and "\u3000" not in text and "#" not in text
            alias_rows.append((brand_id, cat, text, style, tag_ok, n in context_norm))
            query_rows.append((cat, text, "alias", brand_id, style))
    keyword_rows = []
    for category_id, keywords in zip(categories["category_id"], categories["keywords"], strict=True):
        for k in _split(keywords):
            n = normalise(k)
            found = {t for t in every if t in n}
            if d.keyword_category.get(n) != category_id:
                dropped["keywords"].append(k)
                continue
            if all(d.keyword_category.get(t) == category_id for t in found):
                query_rows.append((category_id, k, "keyword", "", _style(k)))
            trad = to_traditional(k)
            if not any(t in d.alias_brand or t in d.ambiguous for t in found) and normalise(trad) == n:
                keyword_rows.append((category_id, k, trad))
    filler_rows = []
    for f in _FILLER_ZH + _FILLER_LATIN:
        trad = to_traditional(f)
        if any(t in normalise(f) or t in normalise(trad) for t in every):
            dropped["fillers"].append(f)
            continue
        filler_rows.append((f, trad))
    tag_rows = [(f, to_traditional(f)) for f in _TAG_FILLER if not any(t in normalise(f) or t in normalise(to_traditional(f)) for t in every)]
    if not filler_rows or not tag_rows:
        raise ValueError("every filler word contains a dictionary term; the simulator cannot write clean text")
    return Vocabulary(
        note_aliases=pd.DataFrame(alias_rows, columns=["brand_id", "category_id", "text", "script", "tag_ok", "context"]),
        query_terms=pd.DataFrame(query_rows, columns=["category_id", "text", "kind", "brand_id", "script"]),
        note_keywords=pd.DataFrame(keyword_rows, columns=["category_id", "text", "traditional"]),
        fillers=pd.DataFrame(filler_rows, columns=["text", "traditional"]),
        tag_fillers=pd.DataFrame(tag_rows, columns=["text", "traditional"]),
        separators=SEPARATORS,
        dropped=dropped,
    )


def pick(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``size`` uniform indices into a pool of ``n`` (``n`` must be positive)."""
    if n <= 0:
        raise ValueError("cannot pick from an empty pool")
    return rng.integers(0, n, size=size)
