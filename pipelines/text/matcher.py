"""Brand and category matching of SPEC 4: one dictionary, leftmost-longest, word boundaries.

The dictionary holds every brand alias and every category keyword, normalised like the texts
(`normalize`). Entries shorter than 2 characters after normalisation are dropped. Scanning a text
left to right, at each position the longest entry that starts there *and* satisfies the boundary
rule is taken; when no entry qualifies the scan moves one character on, after a match it continues
after the match's end.

Word boundaries: a word is a run of letters (Latin, IPA, Greek, Cyrillic) or a run of ASCII
digits. An entry whose first character is a letter needs a character before it that is not a
letter, one whose first character is a digit a character that is not a digit; likewise for its
last character and the character after it. So "mac" is not found in "machine" nor "mi" in
"dopamine", "3ce" not in "13ce", but "iphone" is found in "iphone15" (a model number glued to a
name is its own word).

Context aliases (SPEC 4): in notes, a match of a brand's context alias counts only when the same
note (any field) also holds a keyword of the brand's category or a match of one of the brand's
plain (non-context) aliases. `note_brand_evidence` keeps every alias match with its field,
position, rule and whether it counted; `note_brands` is the counted pairs. Texts matched on their
own (`brands_in`, queries) take every alias as its brand.

One entry string may stand for several targets (an alias listed for two brands, or an alias that
is also a keyword): a match of it reports every one of them. Keywords take part in the scan of note
texts too, so "苹果醋" (a drinks keyword) hides the alias "苹果" inside it.

How it runs: equal texts are matched once (queries and tags repeat); the distinct texts are
normalised in one pass and joined with a separator no entry contains;
one Aho-Corasick pass over the joined string yields every occurrence; the boundary rule,
longest-per-start and the greedy left-to-right choice are then resolved with numpy on the arrays
of occurrences (no Python loop over texts or matches).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import chain

import ahocorasick
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .. import schemas
from ..reference import Reference
from .normalize import SEPARATOR, normalize_many

MIN_ENTRY_LENGTH = 2


#: Word classes of the boundary rule: no word character, a letter, an ASCII digit.
OTHER, LETTER, DIGIT = 0, 1, 2


def _word_class_table() -> np.ndarray:
    """The class of every code point below 0x1F00 (all word characters lie below it)."""
    cp = np.arange(0x1F00)
    letter = (
        ((cp >= 0x41) & (cp <= 0x5A))
        | ((cp >= 0x61) & (cp <= 0x7A))
        | ((cp >= 0xC0) & (cp <= 0x2FF) & (cp != 0xD7) & (cp != 0xF7))
        | ((cp >= 0x370) & (cp <= 0x52F))
        | (cp >= 0x1E00)
    )
    digit = (cp >= 0x30) & (cp <= 0x39)
    return np.where(letter, LETTER, np.where(digit, DIGIT, OTHER)).astype(np.int8)


_WORD_CLASS = _word_class_table()


def word_class(codepoints: np.ndarray) -> np.ndarray:
    """LETTER for Latin (ASCII, Latin-1, Extended-A/B, IPA, spacing modifiers, Additional), Greek
    and Cyrillic letters; DIGIT for ASCII digits; OTHER for everything else (CJK among it)."""
    cp = np.asarray(codepoints, dtype=np.int64)
    return np.where(cp < len(_WORD_CLASS), _WORD_CLASS[np.minimum(cp, len(_WORD_CLASS) - 1)], OTHER).astype(np.int8)


def is_word_char(codepoints: np.ndarray) -> np.ndarray:
    """True for the letters and digits of `word_class`."""
    return word_class(codepoints) != OTHER


def _codepoints(text: str) -> np.ndarray:
    """The code points of a string as a uint32 array (index i = character i)."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


@dataclass(frozen=True)
class _Targets:
    """entry id -> target codes, as CSR arrays (targets of entry e: codes[offsets[e]:offsets[e+1]])."""

    offsets: np.ndarray
    codes: np.ndarray

    @classmethod
    def build(cls, entries: np.ndarray, codes: np.ndarray, n_entries: int) -> _Targets:
        """From (entry, code) pairs; duplicates collapse."""
        pairs = (
            np.unique(np.stack([entries, codes]).astype(np.int64), axis=1)
            if len(entries)
            else np.zeros((2, 0), np.int64)
        )
        counts = np.bincount(pairs[0], minlength=n_entries)
        return cls(np.concatenate([[0], np.cumsum(counts)]), pairs[1])

    def expand(self, entries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(index into `entries`, target code) for every target of every given entry."""
        first = self.offsets[entries]
        counts = self.offsets[entries + 1] - first
        owner = np.repeat(np.arange(len(entries)), counts)
        within = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return owner, self.codes[first[owner] + within]


@dataclass(frozen=True)
class Matcher:
    """The SPEC 4 dictionary of brand aliases and category keywords, ready to scan texts."""

    entries: tuple[str, ...]  # normalised entry strings; the entry id is the position
    brand_ids: tuple[str, ...]  # brand code -> brand_id
    category_ids: tuple[str, ...]  # category code -> category_id
    brand_category: np.ndarray  # brand code -> category code (-1: category unknown)
    entry_brands: _Targets
    entry_keyword_categories: _Targets
    #: sorted keys entry * len(brand_ids) + brand of the (entry, brand) pairs that are context aliases
    context_keys: np.ndarray
    _automaton: ahocorasick.Automaton = field(repr=False, compare=False)
    _entry_length: np.ndarray = field(repr=False, compare=False)
    _start_class: np.ndarray = field(repr=False, compare=False)
    _end_class: np.ndarray = field(repr=False, compare=False)
    _entry_categories: _Targets = field(repr=False, compare=False)

    @classmethod
    def from_reference(cls, ref: Reference) -> Matcher:
        """Build the dictionary from validated reference data."""
        return cls.from_frames(ref.brands, ref.categories)

    @classmethod
    def from_frames(cls, brands: pd.DataFrame, categories: pd.DataFrame) -> Matcher:
        """Build the dictionary from frames shaped like schemas.BRANDS and schemas.CATEGORIES.

        `context_aliases` is optional: a brands frame without it has no context aliases.
        """
        brand_ids = tuple(brands["brand_id"].astype(str))
        category_ids = tuple(
            dict.fromkeys(
                list(categories["category_id"].astype(str))
                + list(brands["category_id"].astype(str))
            )
        )
        cat_code = {c: i for i, c in enumerate(category_ids)}
        brand_category = np.array(
            [cat_code[c] for c in brands["category_id"].astype(str)], dtype=np.int64
        )

        alias_raw, alias_brand = _split_lists(brands["aliases"])
        kw_raw, kw_category = _split_lists(categories["keywords"])
        kw_category = np.array(
            [cat_code[c] for c in categories["category_id"].astype(str).to_numpy()[kw_category]],
            dtype=np.int64,
        )
        normal = np.array(normalize_many(alias_raw + kw_raw), dtype=object)
        normal = np.array([s.strip() for s in normal], dtype=object)
        keep = np.array([len(s) >= MIN_ENTRY_LENGTH for s in normal], dtype=bool)
        entries, entry_of = (
            np.unique(normal[keep].astype(str), return_inverse=True)
            if keep.any()
            else (np.array([], dtype=str), np.array([], dtype=np.int64))
        )
        n = len(entries)
        is_alias = np.arange(len(normal))[keep] < len(alias_raw)
        owners = np.concatenate([alias_brand, kw_category])[keep]
        entry_brands = _Targets.build(entry_of[is_alias], owners[is_alias], n)
        entry_keywords = _Targets.build(entry_of[~is_alias], owners[~is_alias], n)

        # A context alias is named per brand; any spelling with its normal form is context too.
        ctx_raw, ctx_brand = _split_lists(brands.get("context_aliases", pd.Series(None, index=brands.index)))
        ctx_entry = pd.Index(entries).get_indexer(
            np.array([s.strip() for s in normalize_many(ctx_raw)], dtype=object)
        )
        found = ctx_entry >= 0
        context_keys = np.unique(ctx_entry[found].astype(np.int64) * len(brand_ids) + ctx_brand[found])

        automaton = ahocorasick.Automaton()
        for i, e in enumerate(entries):  # a loop over the dictionary, not over event data
            automaton.add_word(str(e), i)
        if n:
            automaton.make_automaton()
        first = np.array([ord(e[0]) for e in entries], dtype=np.int64)
        last = np.array([ord(e[-1]) for e in entries], dtype=np.int64)
        return cls(
            entries=tuple(str(e) for e in entries),
            brand_ids=brand_ids,
            category_ids=category_ids,
            brand_category=brand_category,
            entry_brands=entry_brands,
            entry_keyword_categories=entry_keywords,
            context_keys=context_keys,
            _automaton=automaton,
            _entry_length=np.array([len(e) for e in entries], dtype=np.int64),
            _start_class=word_class(first),
            _end_class=word_class(last),
            _entry_categories=_combine_categories(entry_brands, entry_keywords, brand_category, n),
        )

    # ------------------------------------------------------------------ scanning

    def match(self, texts: pd.Series | list[str | None]) -> pd.DataFrame:
        """Every chosen match: row (positional index of the text), entry (the string), position
        (character offset of the match in the text's normal form)."""
        rows, entry_ids, position = self._scan(_as_list(texts))
        return pd.DataFrame(
            {
                "row": rows,
                "entry": _take_str(self.entries, entry_ids).to_pandas(),
                "position": position,
            }
        )

    def brands_in(self, texts: pd.Series | list[str | None]) -> pd.DataFrame:
        """Distinct (row, brand_id) over the texts, sorted; row is the text's positional index.

        Each text stands alone, as a query does: every alias, context alias or not, is its brand.
        """
        row, brand = self._pairs(texts, self.entry_brands)
        return pd.DataFrame({"row": row, "brand_id": _take_str(self.brand_ids, brand).to_pandas()})

    def categories_in(
        self, texts: pd.Series | list[str | None], brands: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """Distinct (row, category_id), sorted: keyword categories plus each found brand's category.

        A brand's category comes from `brands` (a schemas.BRANDS frame) when given, otherwise from
        the reference the matcher was built from.
        """
        targets, category_ids = self._category_targets(brands)
        row, cat = self._pairs(texts, targets)
        return pd.DataFrame({"row": row, "category_id": _take_str(category_ids, cat).to_pandas()})

    def note_brands(self, notes: pd.DataFrame) -> pd.DataFrame:
        """schemas.NOTE_BRANDS: the brands a note mentions (SPEC 4): the counted evidence."""
        evidence = self.note_brand_evidence(notes)
        counted = evidence.loc[evidence["is_counted"], schemas.NOTE_BRANDS.names]
        return schemas.conform(schemas.NOTE_BRANDS, counted.drop_duplicates(ignore_index=True))

    def note_brand_evidence(self, notes: pd.DataFrame) -> pd.DataFrame:
        """schemas.NOTE_BRAND_EVIDENCE: every alias match in a note's title, text or tags.

        Each field (each tag) is matched on its own. A plain alias match counts; a context alias
        match counts when the note also holds a keyword of the brand's category or a plain alias
        match of the brand, and `context` names the first such match (field order title, text,
        tags, then position). A note listed twice is one note: its rows' matches are pooled.
        """
        tags = pa.array(notes["tags"], type=pa.list_(pa.string()), from_pandas=True)
        tag_texts = pc.list_flatten(tags).to_pylist()
        tag_note = pc.list_parent_indices(tags).to_numpy(zero_copy_only=False).astype(np.int64)
        offsets = tags.offsets.to_numpy(zero_copy_only=False).astype(np.int64)  # null lists hold none
        n = len(notes)
        texts = _as_list(notes["title"]) + _as_list(notes["text"]) + tag_texts
        note_of_text = np.concatenate([np.arange(n), np.arange(n), tag_note]).astype(np.int64)
        field_of_text = np.repeat(np.arange(3, dtype=np.int64), [n, n, len(tag_texts)])
        index_of_text = np.concatenate(
            [np.zeros(2 * n, np.int64), np.arange(len(tag_texts)) - offsets[tag_note]]
        )
        note_code, _ = pd.factorize(
            pd.MultiIndex.from_arrays([notes["platform"].to_numpy(), notes["note_id"].to_numpy()])
        )
        _, first_row = np.unique(note_code, return_index=True)

        row, entry, position = self._occurrences(texts)
        # Reading order within a note: field, tag index, position (the note is pooled by code).
        note = note_code[note_of_text[row]] if len(row) else np.zeros(0, np.int64)
        order = np.lexsort((position, index_of_text[row], field_of_text[row], note))
        row, entry, position, note = row[order], entry[order], position[order], note[order]

        owner, brand = self.entry_brands.expand(entry)
        n_brands = max(len(self.brand_ids), 1)
        is_context = np.isin(entry[owner] * n_brands + brand, self.context_keys)
        category = self.brand_category[brand] if len(brand) else np.zeros(0, np.int64)
        n_cats = max(len(self.category_ids), 1)

        # What confirms a context match: the first keyword of the brand's category in the note,
        # or the first plain match of the brand; both as (note, target) -> first occurrence.
        kw_owner, kw_cat = self.entry_keyword_categories.expand(entry)
        kw_first = _first_by_key(note[kw_owner] * n_cats + kw_cat, kw_owner)
        plain_first = _first_by_key(note[owner[~is_context]] * n_brands + brand[~is_context], owner[~is_context])
        by_keyword = kw_first.lookup(note[owner] * n_cats + category, valid=category >= 0)
        by_plain = plain_first.lookup(note[owner] * n_brands + brand)
        confirm = np.where(
            (by_keyword >= 0) & ((by_plain < 0) | (by_keyword < by_plain)), by_keyword, by_plain
        )
        counted = ~is_context | (confirm >= 0)
        context = np.where(is_context & counted, np.maximum(confirm, 0), -1)

        note_row = first_row[note[owner]]
        text = row[owner]
        frame = pd.DataFrame(
            {
                "platform": notes["platform"].to_numpy()[note_row],
                "note_id": notes["note_id"].to_numpy()[note_row],
                "brand_id": _take_str(self.brand_ids, brand).to_pandas(),
                "field": np.array(["title", "text", "tags"], dtype=object)[field_of_text[text]],
                "field_index": index_of_text[text],
                "position": position[owner],
                "alias": _take_str(self.entries, entry[owner]).to_pandas(),
                "rule": np.where(is_context, "context", "plain"),
                "is_counted": counted,
                "context": _take_str(self.entries, entry[np.maximum(context, 0)])
                .to_pandas()
                .where(context >= 0, None),
            }
        )
        key = list(schemas.NOTE_BRAND_EVIDENCE.key)
        frame = frame.drop_duplicates(key).sort_values(key, kind="stable", ignore_index=True)
        return schemas.conform(schemas.NOTE_BRAND_EVIDENCE, frame)

    def search_categories(
        self, searches: pd.DataFrame, brands: pd.DataFrame | None = None
    ) -> pd.DataFrame:
        """schemas.SEARCH_CATEGORIES: categories of the query's keywords and of its brands.

        A brand's category comes from `brands` (a schemas.BRANDS frame) when given, otherwise from
        the reference the matcher was built from. Distinct (search_id, category_id), in input order.
        """
        targets, category_ids = self._category_targets(brands)
        row, cat = self._pairs(searches["query"], targets)
        search_ids = searches["search_id"]
        if not search_ids.is_unique:  # the same search delivered twice: one pair, not two
            code, _ = pd.factorize(search_ids)
            _, first_row = np.unique(code, return_index=True)
            key, cat = _distinct(code[row], cat, len(category_ids))
            row = first_row[key]
        table = pa.table(
            {
                "search_id": pa.array(search_ids, type=pa.string(), from_pandas=True).take(row),
                "category_id": _take_str(category_ids, cat),
            },
            schema=schemas.SEARCH_CATEGORIES.arrow_schema(),
        )
        return table.to_pandas()

    # ------------------------------------------------------------------ internals

    def _category_targets(self, brands: pd.DataFrame | None) -> tuple[_Targets, tuple[str, ...]]:
        """entry -> category CSR and the category vocabulary, for the given brand -> category map."""
        if brands is None:
            return self._entry_categories, self.category_ids
        mapping = (
            brands.drop_duplicates("brand_id").set_index("brand_id")["category_id"].astype(str)
        )
        category_ids = tuple(dict.fromkeys(self.category_ids + tuple(mapping)))
        cat_code = pd.Index(category_ids)
        brand_cat = mapping.reindex(list(self.brand_ids))
        codes = np.where(brand_cat.notna(), cat_code.get_indexer(brand_cat.fillna("")), -1).astype(
            np.int64
        )
        targets = _combine_categories(
            self.entry_brands, self.entry_keyword_categories, codes, len(self.entries)
        )
        return targets, category_ids

    def _pairs(
        self, texts: pd.Series | list[str | None], targets: _Targets
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (row, target code) of the matches in the texts, sorted by row then code.

        Equal texts match alike, so each distinct text is normalised and scanned once (queries and
        tags repeat a lot) and its pairs are handed to every row holding it.
        """
        text_of_row, distinct = _distinct_texts(texts)
        rows, entry_ids, _ = self._scan(_as_list(pd.Series(distinct, dtype=object)))
        owner, code = targets.expand(entry_ids)
        n_codes = int(code.max()) + 1 if len(code) else 1
        text, code = _distinct(rows[owner], code, n_codes)
        if len(distinct) == len(text_of_row) and (text_of_row == np.arange(len(text_of_row))).all():
            return text, code
        # every row takes the pairs of its text: a CSR of text -> codes, expanded by row
        counts = np.bincount(text, minlength=len(distinct))
        by_text = _Targets(np.concatenate([[0], np.cumsum(counts)]), code)
        row, code = by_text.expand(np.asarray(text_of_row, dtype=np.int64))
        return row.astype(np.int64), code

    def _occurrences(
        self, texts: pd.Series | list[str | None]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, entry id, position) of every chosen match, each distinct text scanned once."""
        text_of_row, distinct = _distinct_texts(texts)
        text, entry, position = self._scan(_as_list(pd.Series(distinct, dtype=object)))
        counts = np.bincount(text, minlength=len(distinct))
        by_text = _Targets(np.concatenate([[0], np.cumsum(counts)]), np.arange(len(text)))
        row, match = by_text.expand(np.asarray(text_of_row, dtype=np.int64))
        return row.astype(np.int64), entry[match], position[match]

    def _scan(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row, entry id, position in the row's normal form) of every chosen match over the
        texts, in text and position order."""
        empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
        if not texts or not self.entries:
            return empty
        normal = normalize_many(texts)
        lengths = np.fromiter(map(len, normal), dtype=np.int64, count=len(normal))
        row_start = np.cumsum(lengths + 1) - (lengths + 1)
        joined = SEPARATOR.join(normal)

        hits = np.fromiter(chain.from_iterable(self._automaton.iter(joined)), dtype=np.int64)
        if not len(hits):
            return empty
        end = hits[0::2] + 1  # exclusive
        entry = hits[1::2]
        start = end - self._entry_length[entry]

        cps = _codepoints(joined)
        before = word_class(np.where(start > 0, cps[np.maximum(start - 1, 0)], 0))
        after = word_class(np.where(end < len(cps), cps[np.minimum(end, len(cps) - 1)], 0))
        first, last = self._start_class[entry], self._end_class[entry]
        ok = ((first == OTHER) | (before != first)) & ((last == OTHER) | (after != last))
        start, end, entry = start[ok], end[ok], entry[ok]

        # longest qualifying entry per start position
        order = np.lexsort((-(end - start), start))
        start, end, entry = start[order], end[order], entry[order]
        first = np.ones(len(start), dtype=bool)
        first[1:] = start[1:] != start[:-1]
        start, end, entry = start[first], end[first], entry[first]

        chosen = _greedy_non_overlapping(start, end)
        start, entry = start[chosen], entry[chosen]
        row = np.searchsorted(row_start, start, side="right") - 1
        return row.astype(np.int64), entry, start - row_start[row]


def _greedy_non_overlapping(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Mask of the intervals a left-to-right scan takes: the first, then the first starting at or after its end, ...

    `start` is strictly increasing. An interval starting at or after every earlier end is always
    taken; from those, the chain "next = first interval starting at or after my end" is followed
    by pointer doubling, so the cost is O(n log k) for chains of length k, with no Python loop
    over intervals.
    """
    n = len(start)
    if n == 0:
        return np.zeros(0, dtype=bool)
    prev_max_end = np.maximum.accumulate(end)
    free = np.ones(n, dtype=bool)
    free[1:] = start[1:] >= prev_max_end[:-1]
    if free.all():
        return free
    jump = np.append(np.searchsorted(start, end, side="left"), n)  # n: past the last interval
    taken = np.append(free, False)
    while True:
        reached = jump[np.flatnonzero(taken)]
        if taken[reached].all():
            break
        taken[reached] = True
        jump = jump[jump]
    return taken[:n]


def _combine_categories(
    entry_brands: _Targets, entry_keywords: _Targets, brand_category: np.ndarray, n_entries: int
) -> _Targets:
    """entry -> category: the keyword's categories plus the categories of the entry's brands."""
    all_entries = np.arange(n_entries)
    b_owner, brand = entry_brands.expand(all_entries)
    b_cat = brand_category[brand] if len(brand) else np.zeros(0, np.int64)
    known = b_cat >= 0
    k_owner, k_cat = entry_keywords.expand(all_entries)
    return _Targets.build(
        np.concatenate([b_owner[known], k_owner]), np.concatenate([b_cat[known], k_cat]), n_entries
    )


@dataclass(frozen=True)
class _FirstByKey:
    """The first value seen for each integer key (keys in the order the values were given)."""

    keys: np.ndarray  # sorted, distinct
    values: np.ndarray

    def lookup(self, keys: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """The value of each key, -1 where the key is absent (or not `valid`)."""
        at = np.minimum(np.searchsorted(self.keys, keys), max(len(self.keys) - 1, 0))
        hit = (self.keys[at] == keys) if len(self.keys) else np.zeros(len(keys), dtype=bool)
        if valid is not None:
            hit &= valid
        return np.where(hit, self.values[at] if len(self.keys) else -1, -1)


def _first_by_key(keys: np.ndarray, values: np.ndarray) -> _FirstByKey:
    """The first value per key; `values` must grow with position (they are occurrence indices)."""
    unique, first = np.unique(keys, return_index=True)
    return _FirstByKey(unique, values[first])


def _distinct_texts(texts: pd.Series | list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """(index of each text's distinct value, the distinct values): equal texts match alike."""
    return pd.factorize(
        pd.Series(texts, dtype=None if isinstance(texts, pd.Series) else object),
        use_na_sentinel=False,
    )


def _distinct(rows: np.ndarray, codes: np.ndarray, n_codes: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (row, code) pairs, sorted by row then code."""
    key = np.sort(rows.astype(np.int64) * n_codes + codes)
    if len(key):
        key = key[np.concatenate([[True], key[1:] != key[:-1]])]
    return key // n_codes, key % n_codes


def _take_str(vocabulary: tuple[str, ...], codes: np.ndarray) -> pa.Array:
    """The strings of `vocabulary` at `codes`, as an Arrow string array."""
    return pa.array(vocabulary, type=pa.string()).take(pa.array(codes, type=pa.int64()))


def _split_lists(values: pd.Series) -> tuple[list[str], np.ndarray]:
    """Split |-separated cells; returns (items, positional index of the row each item came from)."""
    parts = values.fillna("").astype(str).str.split("|")
    lengths = parts.str.len().to_numpy()
    items = [p.strip() for p in chain.from_iterable(parts)]
    owner = np.repeat(np.arange(len(values)), lengths)
    nonempty = np.array([bool(p) for p in items], dtype=bool)
    return [p for p in items if p], owner[nonempty]


def _as_list(texts: pd.Series | list[str | None]) -> list[str | None]:
    """Texts as a plain list (nulls kept as None / NaN for normalize_many)."""
    if isinstance(texts, pd.Series):
        return texts.astype(object).where(texts.notna(), None).tolist()
    return list(texts)
