"""SPEC 4: normalisation and the leftmost-longest brand / category matcher.

Hand cases pin every rule; property tests compare the batch paths with plain per-text code and
the automaton + numpy matcher with a brute-force scan written out below.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import opencc
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipelines import schemas
from pipelines.reference import load_reference
from pipelines.text.matcher import Matcher
from pipelines.text.normalize import SEPARATOR, normalize, normalize_many, normalize_series

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
T2S = opencc.OpenCC("t2s")


@pytest.fixture(scope="module")
def seeds_matcher() -> Matcher:
    return Matcher.from_reference(load_reference(SEEDS))


def small_matcher(brands: dict[str, tuple[str, ...]], categories: dict[str, str]) -> Matcher:
    """A matcher from {brand_id: (aliases, category_id[, context_aliases])} and {category_id: keywords}."""
    b = pd.DataFrame(
        [(k, k, v[0], v[1], v[2] if len(v) > 2 else "") for k, v in brands.items()],
        columns=schemas.BRANDS.names,
    )
    c = pd.DataFrame([(k, k, kw) for k, kw in categories.items()], columns=schemas.CATEGORIES.names)
    return Matcher.from_frames(b, c)


def entries_per_row(m: Matcher, texts: list[str]) -> list[list[str]]:
    found = m.match(texts)
    return [found.loc[found["row"] == i, "entry"].tolist() for i in range(len(texts))]


def brands_per_row(m: Matcher, texts: list[str]) -> list[set[str]]:
    found = m.brands_in(texts)
    return [set(found.loc[found["row"] == i, "brand_id"]) for i in range(len(texts))]


# ---------------------------------------------------------------- normalisation


def test_normalize_folds_width_case_and_script():
    assert normalize("ＭＡＣ口紅") == "mac口红"  # full-width Latin via NFKC, 紅 -> 红
    assert normalize("雅詩蘭黛 Estée Lauder") == "雅诗兰黛 estée lauder"  # NFKC keeps accents
    assert normalize("SK-Ⅱ") == "sk-ii"  # the Roman numeral is one character, then two
    assert normalize("ﬁnish Straße") == "finish strasse"  # lengths change: ligature, sharp s
    assert normalize("１２８ＧＢ") == "128gb"
    assert normalize(None) == ""


def test_normalize_many_handles_nulls_separators_and_surrogates():
    out = normalize_many(["A", None, float("nan"), f"x{SEPARATOR}y", "\ud83d!", ""])
    assert out == ["a", "", "", "x y", "?!", ""]
    s = pd.Series(["ＡＢ", None], index=[7, 3])
    assert normalize_series(s).to_dict() == {7: "ab", 3: ""}


def plain(text: str) -> str:
    """SPEC 4 normalisation of one text, step by step, with no batching."""
    return T2S.convert(unicodedata.normalize("NFKC", text.replace(SEPARATOR, " ")).casefold())


TRICKY = (
    "abcXYZ019 -'·.é"
    "ＡＢＣ１２３　，！"  # full-width
    "ﬁßİΣςⅡ①㎏"  # length-changing under NFKC / case-folding
    "\u0301\u0308\u0327"  # combining marks that compose with a preceding letter
    "\u1100\u1161\u11a8가"  # Hangul jamo that compose into syllables
    "雅詩蘭黛蘋果華為髮乾后"  # Traditional and ambiguous characters
    "😀\x1f\n"
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(alphabet=TRICKY, max_size=12), max_size=30))
def test_batch_normalisation_equals_per_text(texts):
    # the joined pass (one NFKC/case-fold/OpenCC call, NFKC only where needed) splits back exactly
    batch = normalize_many(texts)
    assert len(batch) == len(texts)
    assert batch == [plain(t) for t in texts]


# ---------------------------------------------------------------- matching rules (hand cases)

HAND = small_matcher(
    {
        "b_mac": ("MAC|魅可", "cat_makeup"),
        "b_apple": ("苹果|Apple|MacBook|Mac mini", "cat_digital"),
        "b_xiaomi": ("小米|MI|米", "cat_digital"),
        "b_skii": ("SK-II|神仙水", "cat_skincare"),
        "b_estee": ("雅诗兰黛|Estée Lauder|Estee Lauder", "cat_skincare"),
        "b_nestle": ("雀巢", "cat_baby"),
        "b_nescafe": ("雀巢咖啡", "cat_drinks"),
        "b_3ce": ("3CE", "cat_makeup"),
        "b_midea": ("美的", "cat_appliance"),
    },
    {
        "cat_makeup": "口红|粉底",
        "cat_digital": "手机|耳机",
        "cat_skincare": "精华|面霜",
        "cat_baby": "奶粉",
        "cat_drinks": "咖啡|苹果醋",
        "cat_appliance": "空调",
    },
)


@pytest.mark.parametrize(
    ("text", "brands"),
    [
        ("MAC口红试色", {"b_mac"}),
        ("machine learning", set()),  # "mac" needs a word boundary after it
        ("i love mac.", {"b_mac"}),
        ("iMac", set()),  # ... and before it
        ("macbook air", {"b_apple"}),  # the longer alias wins at the same start
        ("Mac mini 2024", {"b_apple"}),
        ("miss you", set()),  # "mi" inside a word
        ("MI 14 Ultra", {"b_xiaomi"}),
        ("mi14", {"b_xiaomi"}),  # a model number glued to a name is its own word
        ("dopamine /ˈdoʊpəmiːn/", set()),  # IPA letters are letters
        ("Redmi", set()),
        ("mi手机", {"b_xiaomi"}),  # CJK next to Latin is a boundary
        (
            "小米粥怎么煮",
            {"b_xiaomi"},
        ),  # a brand that is a common word still matches (SPEC has no exception)
        ("很美的裙子", {"b_midea"}),
        ("米饭", set()),  # the 1-character alias is ignored
        ("雅詩蘭黛小棕瓶", {"b_estee"}),  # Traditional script
        ("ESTÉE LAUDER", {"b_estee"}),
        ("ｍａｃ 口红", {"b_mac"}),  # full-width
        ("SK-Ⅱ神仙水", {"b_skii"}),  # Roman numeral Ⅱ becomes "ii"
        ("sk-iii", set()),
        ("雀巢咖啡", {"b_nescafe"}),  # alias inside alias: longest wins, no double count
        ("雀巢奶粉", {"b_nestle"}),
        ("苹果醋减肥", set()),  # a keyword hides the alias inside it
        ("苹果手机", {"b_apple"}),
        ("3CE眼影", {"b_3ce"}),
        ("13CE", set()),  # digit before a digit-led alias
        ("", set()),
    ],
)
def test_hand_cases(text, brands):
    assert brands_per_row(HAND, [text]) == [brands]


def test_scan_is_greedy_left_to_right_not_globally_longest():
    m = small_matcher(
        {
            "b_1": ("甲乙", "c1"),
            "b_2": ("乙丙丁戊", "c1"),
            "b_3": ("丙丁", "c1"),
            "b_4": ("丁戊", "c1"),
        },
        {"c1": "zz"},
    )
    # "甲乙" is taken first; the scan resumes at "丙" and takes "丙丁", although "乙丙丁戊" is longer
    assert entries_per_row(m, ["甲乙丙丁戊", "己乙丙丁戊", "甲乙丁戊"]) == [
        ["甲乙", "丙丁"],
        ["乙丙丁戊"],
        ["甲乙", "丁戊"],
    ]


def test_boundary_failure_falls_back_to_a_shorter_entry():
    m = small_matcher(
        {
            "b_lay": ("lay", "c1"),
            "b_lays": ("lays1", "c1"),
            "b_zy": ("ays", "c1"),
            "b_mi": ("小米|小米mix", "c1"),
        },
        {"c1": "zz"},
    )
    # "lays12": "lays1" (ends in a digit) fails its end boundary, "lay" is followed by "s":
    # nothing at 0; "ays" at 1 has a Latin letter before it, so nothing matches at all
    assert entries_per_row(m, ["lays12", "lays1 x", "lay s", "lays1x"]) == [
        [],
        ["lays1"],
        ["lay"],
        ["lays1"],  # a digit then a letter: two words
    ]
    # "小米mix" fails its end boundary in "小米mixer"; the shorter "小米" needs none
    assert entries_per_row(m, ["小米mixer", "小米mix4"]) == [["小米"], ["小米mix"]]
    assert entries_per_row(m, ["小米mix 4"]) == [["小米mix"]]


def test_an_entry_with_two_targets_reports_both():
    m = small_matcher(
        {"b_one": ("双星", "cat_a"), "b_two": ("双星", "cat_b")}, {"cat_c": "双星|跑鞋"}
    )
    assert brands_per_row(m, ["双星跑鞋"]) == [{"b_one", "b_two"}]
    s = pd.DataFrame({"search_id": ["s1"], "query": ["双星跑鞋"]})
    got = m.search_categories(s)
    assert sorted(got["category_id"]) == ["cat_a", "cat_b", "cat_c"]


def test_matches_never_span_two_texts():
    m = small_matcher({"b_ab": ("ab", "c1")}, {"c1": "zz"})
    assert entries_per_row(m, ["xa", "bx", "ab"]) == [[], [], ["ab"]]


# ---------------------------------------------------------------- note_brands / search_categories


def test_note_brands_matches_title_text_and_each_tag_on_its_own():
    notes = pd.DataFrame(
        {
            "platform": ["xiaohongshu", "douyin", "weibo", "weibo"],
            "note_id": ["n1", "n2", "n3", "n4"],
            "title": ["MAC口红", "雀巢", None, "无品牌"],
            "text": ["今天用了雅詩蘭黛", "咖啡", "", "平平无奇"],
            "tags": [["小米", "美的"], ["苹果"], None, ["雀", "巢"]],
        }
    )
    got = HAND.note_brands(notes)
    assert list(got.columns) == schemas.NOTE_BRANDS.names
    assert list(got.itertuples(index=False, name=None)) == [
        ("douyin", "n2", "b_apple"),
        ("douyin", "n2", "b_nestle"),  # "雀巢" + "咖啡" across title and text is not 雀巢咖啡
        ("xiaohongshu", "n1", "b_estee"),
        ("xiaohongshu", "n1", "b_mac"),
        ("xiaohongshu", "n1", "b_midea"),
        ("xiaohongshu", "n1", "b_xiaomi"),
    ]


def test_note_brands_of_no_notes_is_an_empty_typed_frame():
    notes = schemas.empty_frame(schemas.NOTES)
    got = HAND.note_brands(notes)
    assert got.empty and list(got.columns) == schemas.NOTE_BRANDS.names


def test_search_categories_keywords_plus_brand_categories_distinct():
    s = pd.DataFrame(
        {
            "search_id": ["s1", "s2", "s3", "s4", "s5", "s1"],
            "query": [
                "雅诗兰黛 精华 面霜",
                "MAC 口红 和 苹果手机",
                "空调",
                "随便看看",
                None,
                "雅诗兰黛 精华 面霜",
            ],
        }
    )
    got = HAND.search_categories(s)
    assert list(got.columns) == schemas.SEARCH_CATEGORIES.names
    assert sorted(got.itertuples(index=False, name=None)) == [
        ("s1", "cat_skincare"),  # brand and two keywords of one category: one pair
        ("s2", "cat_digital"),  # a query in two categories
        ("s2", "cat_makeup"),
        ("s3", "cat_appliance"),
    ]


def test_search_categories_takes_brand_category_from_the_brands_frame():
    s = pd.DataFrame({"search_id": ["s1"], "query": ["雀巢"]})
    assert HAND.search_categories(s)["category_id"].tolist() == ["cat_baby"]
    moved = pd.DataFrame(
        {
            "brand_id": ["b_nestle"],
            "name": ["雀巢"],
            "aliases": ["雀巢"],
            "category_id": ["cat_food"],
        }
    )
    assert HAND.search_categories(s, moved)["category_id"].tolist() == ["cat_food"]


def test_shipped_seeds_on_realistic_queries(seeds_matcher):
    queries = [
        "雅诗兰黛小棕瓶 精华 推荐",
        "ＭＡＣ 子弹头口红",
        "macbook air 充电器",
        "小米14 手机壳",
        "雀巢咖啡 冻干咖啡",
        "猫冻干 推荐",
        "始祖鳥冲锋衣",
        "苹果醋",
    ]
    s = pd.DataFrame({"search_id": [f"s{i}" for i in range(len(queries))], "query": queries})
    got = (
        seeds_matcher.search_categories(s).groupby("search_id")["category_id"].apply(set).to_dict()
    )
    assert got == {
        "s0": {"cat_skincare"},
        "s1": {"cat_makeup"},
        "s2": {"cat_digital"},
        "s3": {"cat_digital"},
        "s4": {"cat_drinks"},
        "s5": {"cat_pet"},
        "s6": {"cat_outdoor"},
        "s7": {"cat_drinks"},
    }


# ---------------------------------------------------------------- property: agrees with brute force

FRAGMENTS = [
    "mac",
    "mi",
    "sk-ii",
    "3ce",
    "ab",
    "abc",
    "bcd",
    "cd",
    "小米",
    "雀巢",
    "雀巢咖啡",
    "苹果",
    "苹果醋",
    "咖啡",
]
ALPHABET = st.sampled_from(FRAGMENTS + list("abcdmikx13 -éəː雀巢小米果醋咖啡蘋Ａ"))


def word_class(ch: str) -> str:
    """"digit", "letter" (Latin, IPA, Greek, Cyrillic) or "" (not part of a word)."""
    if "0" <= ch <= "9":
        return "digit"
    letter = (
        "a" <= ch <= "z"
        or "A" <= ch <= "Z"
        or ("\u00c0" <= ch <= "\u02ff" and ch not in "×÷")
        or "\u0370" <= ch <= "\u052f"
        or "\u1e00" <= ch <= "\u1eff"
    )
    return "letter" if letter else ""


def brute_force(text: str, entries: list[str]) -> list[str]:
    """SPEC 4 scan written out: at each position the longest qualifying entry, else move on."""
    t = normalize(text)
    words = {e for e in (normalize(x).strip() for x in entries) if len(e) >= 2}
    out, i = [], 0
    while i < len(t):
        best = ""
        for e in words:
            j = i + len(e)
            if not t.startswith(e, i):
                continue
            if word_class(e[0]) and i > 0 and word_class(t[i - 1]) == word_class(e[0]):
                continue
            if word_class(e[-1]) and j < len(t) and word_class(t[j]) == word_class(e[-1]):
                continue
            if len(e) > len(best):
                best = e
        if best:
            out.append(best)
            i += len(best)
        else:
            i += 1
    return out


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(
        st.lists(ALPHABET, min_size=1, max_size=3).map("".join), min_size=1, max_size=12
    ),
    texts=st.lists(st.lists(ALPHABET, max_size=12).map("".join), min_size=1, max_size=8),
)
def test_matcher_agrees_with_brute_force(entries, texts):
    half = len(entries) // 2
    m = small_matcher(
        {f"b{i}": (e.replace("|", " "), "c0") for i, e in enumerate(entries[:half] or ["zz"])},
        {"c0": "|".join(entries[half:]) or "zz"},
    )
    used = (entries[:half] or ["zz"]) + (entries[half:] or ["zz"])
    assert entries_per_row(m, texts) == [brute_force(t, used) for t in texts]


DENSE = st.sampled_from(list("甲乙丙丁甲乙丙丁甲乙丙丁ab "))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    entries=st.lists(st.lists(DENSE, min_size=2, max_size=4).map("".join), min_size=1, max_size=10),
    texts=st.lists(st.lists(DENSE, max_size=40).map("".join), min_size=1, max_size=6),
)
def test_matcher_agrees_with_brute_force_on_dense_overlaps(entries, texts):
    # a tiny alphabet makes entries overlap in long chains: the greedy choice is what is tested
    m = small_matcher({f"b{i}": (e, "c0") for i, e in enumerate(entries)}, {"c0": "zz"})
    assert entries_per_row(m, texts) == [brute_force(t, entries + ["zz"]) for t in texts]


def test_large_batch_equals_small_batches(seeds_matcher):
    rng = np.random.default_rng(7)
    aliases = [a for cell in load_reference(SEEDS).brands["aliases"] for a in cell.split("|")]
    words = aliases + ["精华", "推荐", "手机", " ", "平价", "machine", "mini", "2025"]
    texts = ["".join(rng.choice(words, size=rng.integers(0, 5))) for _ in range(2000)]
    whole = seeds_matcher.brands_in(texts)
    parts = pd.concat(
        [
            seeds_matcher.brands_in(texts[i : i + 100]).assign(row=lambda d, i=i: d["row"] + i)
            for i in range(0, 2000, 100)
        ],
        ignore_index=True,
    )
    pd.testing.assert_frame_equal(whole, parts)


# ---------------------------------------------------------------- context aliases and evidence

CTX = small_matcher(
    {
        "b_huggies": ("好奇|Huggies", "cat_baby", "好奇"),
        "b_midea": ("美的|Midea", "cat_appliance", "美的"),
        "b_xiaomi": ("小米|Xiaomi|Redmi", "cat_digital", "小米"),
        "b_nb": ("NB|New Balance", "cat_sportswear", "NB"),
    },
    {"cat_baby": "纸尿裤|奶粉", "cat_appliance": "空调", "cat_digital": "手机", "cat_sportswear": "跑鞋"},
)


def ctx_notes(rows: list[tuple[str, str, str, list[str]]]) -> pd.DataFrame:
    """Notes (note_id, title, text, tags) on xiaohongshu, other columns as schemas.NOTES wants."""
    return pd.DataFrame(
        {
            "platform": "xiaohongshu",
            "note_id": [r[0] for r in rows],
            "title": [r[1] for r in rows],
            "text": [r[2] for r in rows],
            "tags": [r[3] for r in rows],
        }
    )


def test_context_alias_counts_only_in_context():
    notes = ctx_notes(
        [
            ("n1", "好奇纸尿裤测评", "", []),  # the category keyword in the same field
            ("n2", "", "对世界充满好奇", []),  # 'curious'
            ("n3", "精美的礼物", "", []),  # 美的 inside 精美的, no appliance word
            ("n4", "美的", "", ["空调"]),  # the keyword only in a tag still counts
            ("n5", "Redmi K70", "小米真香", []),  # a plain alias of the brand confirms
            ("n6", "这双NB跑鞋", "太NB了", []),
            ("n7", "太NB了", "", []),  # 'awesome'
            ("n8", "Midea", "", []),  # a plain alias needs no context
        ]
    )
    got = CTX.note_brands(notes)
    assert sorted(got[["note_id", "brand_id"]].itertuples(index=False, name=None)) == [
        ("n1", "b_huggies"),
        ("n4", "b_midea"),
        ("n5", "b_xiaomi"),
        ("n6", "b_nb"),
        ("n8", "b_midea"),
    ]


def test_evidence_keeps_every_match_with_field_position_rule_and_context():
    notes = ctx_notes(
        [
            ("n1", "好奇", "宝宝的纸尿裤选好奇", ["日常", "纸尿裤"]),
            ("n2", "好奇", "", []),
            ("n3", "Redmi K70", "小米真香", ["小米"]),
        ]
    )
    ev = CTX.note_brand_evidence(notes)
    assert list(ev.columns) == schemas.NOTE_BRAND_EVIDENCE.names
    rows = [
        (r.note_id, r.brand_id, r.field, r.field_index, r.position, r.alias, r.rule, r.is_counted)
        + (None if pd.isna(r.context) else r.context,)
        for r in ev.itertuples(index=False)
    ]
    assert rows == [
        # the first confirming match in reading order (title, text, tags; then position)
        ("n1", "b_huggies", "text", 0, 7, "好奇", "context", True, "纸尿裤"),
        ("n1", "b_huggies", "title", 0, 0, "好奇", "context", True, "纸尿裤"),
        ("n2", "b_huggies", "title", 0, 0, "好奇", "context", False, None),
        ("n3", "b_xiaomi", "tags", 0, 0, "小米", "context", True, "redmi"),
        ("n3", "b_xiaomi", "text", 0, 0, "小米", "context", True, "redmi"),
        ("n3", "b_xiaomi", "title", 0, 0, "redmi", "plain", True, None),
    ]
    pd.testing.assert_frame_equal(
        CTX.note_brands(notes),
        schemas.conform(
            schemas.NOTE_BRANDS,
            ev.loc[ev["is_counted"], schemas.NOTE_BRANDS.names].drop_duplicates(ignore_index=True),
        ),
    )


def test_evidence_positions_point_into_the_normalised_field():
    notes = ctx_notes([("n1", "ＡＢ美的空调", "", ["x", "y", "New Balance跑鞋"])])
    ev = CTX.note_brand_evidence(notes).set_index("brand_id")
    assert (ev.loc["b_midea", "field"], ev.loc["b_midea", "position"]) == ("title", 2)
    assert (ev.loc["b_nb", "field"], ev.loc["b_nb", "field_index"]) == ("tags", 2)


def test_a_context_alias_in_a_query_is_the_brand():
    s = pd.DataFrame({"search_id": ["s1", "s2", "s3"], "query": ["好奇", "美的", "NB 574"]})
    got = CTX.search_categories(s)
    assert sorted(got.itertuples(index=False, name=None)) == [
        ("s1", "cat_baby"),
        ("s2", "cat_appliance"),
        ("s3", "cat_sportswear"),
    ]
    assert brands_per_row(CTX, ["好奇"]) == [{"b_huggies"}]


def test_shipped_seeds_find_real_mentions_in_context(seeds_matcher):
    notes = ctx_notes(
        [
            ("n1", "美的空调真的省电", "", []),
            ("n2", "好奇纸尿裤", "", []),
            ("n3", "", "对未知充满好奇", []),
            ("n4", "小而美的创新探索", "", []),
            ("n5", "逛了两个AI圈的活动", "CAMEL-AI / Anthropic 的人都在", []),
            ("n6", "太NB了", "真的好NB", []),
            ("n7", "华为mate60", "", []),
        ]
    )
    got = seeds_matcher.note_brands(notes)
    assert sorted(got[["note_id", "brand_id"]].itertuples(index=False, name=None)) == [
        ("n1", "b_midea"),
        ("n2", "b_huggies"),
        ("n7", "b_huawei"),
    ]


def plain_note_brands(m: Matcher, notes: pd.DataFrame) -> set[tuple[str, str]]:
    """SPEC 4 with context aliases written out note by note over brute-force scans."""
    out = set()
    for r in notes.itertuples(index=False):
        fields = [r.title, r.text, *r.tags]
        found = [e for f in fields for e in brute_force(f, list(m.entries))]
        brands = {(b, e) for e in found for b in m_brands(m, e)}
        cats = {c for e in found for c in m_keyword_categories(m, e)}
        plain = {b for b, e in brands if not m_is_context(m, e, b)}
        for b, e in brands:
            cat = m.category_ids[m.brand_category[m.brand_ids.index(b)]]
            if not m_is_context(m, e, b) or cat in cats or b in plain:
                out.add((r.note_id, b))
    return out


def m_brands(m: Matcher, entry: str) -> list[str]:
    i = m.entries.index(entry)
    return [m.brand_ids[c] for c in m.entry_brands.codes[m.entry_brands.offsets[i] : m.entry_brands.offsets[i + 1]]]


def m_keyword_categories(m: Matcher, entry: str) -> list[str]:
    t, i = m.entry_keyword_categories, m.entries.index(entry)
    return [m.category_ids[c] for c in t.codes[t.offsets[i] : t.offsets[i + 1]]]


def m_is_context(m: Matcher, entry: str, brand: str) -> bool:
    key = m.entries.index(entry) * len(m.brand_ids) + m.brand_ids.index(brand)
    return bool(np.isin(key, m.context_keys))


CTX_WORDS = st.sampled_from(
    ["好奇", "美的", "精美的", "小米", "redmi", "nb", "new balance", "纸尿裤", "空调", "手机", "跑鞋", " ", "的", "x"]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.lists(CTX_WORDS, max_size=4).map("".join),
            st.lists(CTX_WORDS, max_size=6).map("".join),
            st.lists(st.lists(CTX_WORDS, max_size=2).map("".join), max_size=3),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_note_brands_agree_with_a_plain_reading_of_the_context_rule(rows):
    notes = ctx_notes([(f"n{i}", *r) for i, r in enumerate(rows)])
    got = CTX.note_brands(notes)
    assert set(got[["note_id", "brand_id"]].itertuples(index=False, name=None)) == plain_note_brands(
        CTX, notes
    )
