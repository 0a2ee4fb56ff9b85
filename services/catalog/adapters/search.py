"""The catalog's full-text index: Chinese word segmentation (jieba, via rjieba) into an in-memory inverted
index, with filters and facet counts computed over numpy columns.

Every catalog replica holds its own index, loaded from MongoDB at start and then kept current by the
entries collection's change stream (see `follow_entries`). Document numbers only grow: a changed entry gets
a new number and its old one is marked dead, so posting lists stay sorted and append-only; they are
compacted once a quarter of them is dead.
"""

from __future__ import annotations

import math
import re
from array import array
from collections import defaultdict

import numpy as np
import rjieba

from services.catalog.domain.entries import Category, ShareMethod, ShareType, UpdateCycle, VersionStatus
from services.catalog.domain.search import Facet, SearchDocument, SearchHit, SearchQuery, SearchResult

# Weight of a word by where it occurs: a word of the name says more than one of the abstract.
NAME, ITEM, ABSTRACT, DESCRIPTION = 3.0, 2.0, 1.0, 0.5
SATURATION = 1.2  # BM25's k1: the tenth occurrence adds little
STOPWORDS = frozenset("的 了 和 与 及 或 等 在 是 对 为 由 从 按 其 之 并 以 中 各 类 有关 相关 进行".split())
WORD = re.compile(r"[\w\u4e00-\u9fff]")
RESOURCE_CODE = re.compile(r"\d{6}/\d{6}")

FIXED_VALUES: dict[Facet, list[str]] = {
    Facet.CATEGORY: [c.value for c in Category],
    Facet.SHARE_TYPE: [s.value for s in ShareType],
    Facet.SHARE_METHOD: [m.value for m in ShareMethod],
    Facet.UPDATE_CYCLE: [u.value for u in UpdateCycle],
    Facet.STATUS: [s.value for s in VersionStatus],
}
SINGLE_VALUED = (Facet.PROVIDER, Facet.CATEGORY, Facet.SHARE_TYPE, Facet.UPDATE_CYCLE, Facet.STATUS)
NONE = -1  # column value of an element the entry leaves empty


def _meaningful(token: str) -> bool:
    return token not in STOPWORDS and WORD.search(token) is not None


def index_terms(text: str) -> list[str]:
    """Words of a text as indexed: every word and the shorter words inside long ones (搜索引擎模式)."""
    return [t for t in rjieba.cut_for_search(text.lower()) if _meaningful(t)]


def query_terms(text: str) -> list[str]:
    """Words of a query, segmented exactly (精确模式), each once; resource codes stay whole."""
    codes = RESOURCE_CODE.findall(text)
    words = rjieba.cut(RESOURCE_CODE.sub(" ", text).lower())
    return list(dict.fromkeys([*codes, *(t for t in words if _meaningful(t))]))


class _Column:
    """One value per document number, growing as documents are added."""

    def __init__(self, dtype: type) -> None:
        self.values: np.ndarray = np.zeros(1024, dtype=dtype)

    def set(self, number: int, value: int) -> None:
        if number >= len(self.values):
            grown = np.zeros(max(len(self.values) * 2, number + 1), dtype=self.values.dtype)
            grown[: len(self.values)] = self.values
            self.values = grown
        self.values[number] = value


class CatalogSearchIndex:
    def __init__(self) -> None:
        self._clear()

    def _clear(self) -> None:
        self._number: dict[str, int] = {}  # resource code → its live document number
        self._docs: list[SearchDocument | None] = []  # by document number; None once replaced
        self._postings: dict[str, tuple[array, array]] = {}  # word → (document numbers, weights)
        self._frozen: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # numpy copies of postings, until changed
        self._live = _Column(np.bool_)
        self._columns = {f: _Column(np.int32) for f in SINGLE_VALUED}
        self._methods = _Column(np.uint8)  # share methods as bits, in `FIXED_VALUES` order
        self._values: dict[Facet, list[str]] = {f: list(v) for f, v in FIXED_VALUES.items()}
        self._values[Facet.PROVIDER] = []
        self._codes: dict[Facet, dict[str, int]] = {
            f: {v: i for i, v in enumerate(vs)} for f, vs in self._values.items()
        }
        self._dead = 0

    def __len__(self) -> int:
        return len(self._number)

    # -- indexing -------------------------------------------------------------------------------------------

    def put(self, doc: SearchDocument) -> None:
        """Index an entry, replacing what was known of it unless that is newer (a late change-stream event)."""
        current = self._number.get(doc.resource_code)
        if current is not None:
            known = self._docs[current]
            assert known is not None
            if known.revision >= doc.revision:
                return
            self._docs[current] = None
            self._live.set(current, False)
            self._dead += 1
        number = len(self._docs)
        self._docs.append(doc)
        self._number[doc.resource_code] = number
        self._live.set(number, True)
        for facet in SINGLE_VALUED:
            values = doc.facet_values(facet)
            self._columns[facet].set(number, self._code(facet, values[0]) if values else NONE)
        self._methods.set(number, sum(1 << self._code(Facet.SHARE_METHOD, m) for m in doc.share_methods))
        for term, weight in self._weights(doc).items():
            numbers, weights = self._postings.setdefault(term, (array("i"), array("f")))
            numbers.append(number)
            weights.append(weight)
            self._frozen.pop(term, None)
        if self._dead > 1000 and self._dead * 4 > len(self._docs):
            self._compact()

    def _code(self, facet: Facet, value: str) -> int:
        codes = self._codes[facet]
        if value not in codes:
            codes[value] = len(self._values[facet])
            self._values[facet].append(value)
        return codes[value]

    @staticmethod
    def _weights(doc: SearchDocument) -> dict[str, float]:
        counts: dict[str, float] = defaultdict(float)
        for text, weight in (
            (doc.name, NAME),
            (" ".join(doc.item_names), ITEM),
            (doc.abstract, ABSTRACT),
            (" ".join(doc.item_descriptions), DESCRIPTION),
        ):
            for term in index_terms(text):
                counts[term] += weight
        counts[doc.resource_code] = NAME  # a code typed into the search box finds its entry
        return {t: c * (SATURATION + 1) / (c + SATURATION) for t, c in counts.items()}

    def _compact(self) -> None:
        live = [d for d in self._docs if d is not None]
        self._clear()
        for doc in live:
            self.put(doc)

    # -- searching ------------------------------------------------------------------------------------------

    def _posting(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        if term not in self._frozen:
            stored = self._postings.get(term)
            if stored is None:
                return None
            self._frozen[term] = (np.array(stored[0], dtype=np.int64), np.array(stored[1], dtype=np.float32))
        return self._frozen[term]

    def _term_matches(self, term: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Documents holding a query word; a compound word no entry was indexed under matches entries
        holding all its parts (查询 '注册登记' finds '登记' and '注册')."""
        found = self._posting(term)
        if found is not None:
            return found
        parts = [p for p in index_terms(term) if p != term and len(p) > 1]
        if not parts:
            return None
        matches = [self._posting(p) for p in parts]
        if any(m is None for m in matches):
            return None
        return _intersect([m for m in matches if m is not None])

    def _scored(self, terms: list[str], match_all: bool) -> tuple[np.ndarray, np.ndarray]:
        total = max(len(self._number), 1)
        lists = []
        for term in terms:
            found = self._term_matches(term)
            if found is None:
                if match_all:
                    return np.empty(0, np.int64), np.empty(0, np.float32)
                continue
            numbers, weights = found
            frequency = min(len(numbers), total)  # postings of replaced versions may outnumber the entries
            idf = math.log(1 + (total - frequency + 0.5) / (frequency + 0.5))
            lists.append((numbers, weights * idf))
        if not lists:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        return _intersect(lists) if match_all else _union(lists)

    def search(self, query: SearchQuery) -> SearchResult:
        terms = query_terms(query.text)
        if terms:
            numbers, scores = self._scored(terms, query.match_all)
            keep = self._live.values[numbers]
            numbers, scores = numbers[keep], scores[keep]
        else:
            numbers = np.flatnonzero(self._live.values[: len(self._docs)])
            scores = np.zeros(len(numbers), np.float32)
        masks = self._filter_masks(numbers, query.filters)
        selected = _all(masks.values(), len(numbers))
        facets = self._facets(numbers, masks)
        numbers, scores = numbers[selected], scores[selected]
        order = np.lexsort((-numbers, -scores))  # best first; among equals the most recently changed
        page = order[query.offset : query.offset + query.limit]
        hits = []
        for n, s in zip(numbers[page], scores[page], strict=True):
            doc = self._docs[int(n)]
            assert doc is not None
            hits.append(SearchHit(doc.resource_code, doc.provider_code, doc.name, doc.status, round(float(s), 4)))
        return SearchResult(len(numbers), tuple(hits), facets, tuple(terms))

    def _filter_masks(self, numbers: np.ndarray, filters: dict[Facet, frozenset[str]]) -> dict[Facet, np.ndarray]:
        masks: dict[Facet, np.ndarray] = {}
        for facet, wanted in filters.items():
            if not wanted:
                continue
            codes = [self._codes[facet][v] for v in wanted if v in self._codes[facet]]
            if facet is Facet.SHARE_METHOD:
                bits = sum(1 << c for c in codes)
                masks[facet] = (self._methods.values[numbers] & bits) != 0
            else:
                masks[facet] = np.isin(self._columns[facet].values[numbers], codes)
        return masks

    def _facets(self, numbers: np.ndarray, masks: dict[Facet, np.ndarray]) -> dict[Facet, dict[str, int]]:
        """Counts per value of each facet under the filters of the other facets, so that choosing one value
        still shows how many the alternatives would give."""
        facets = {}
        for facet in Facet:
            among = numbers[_all((m for f, m in masks.items() if f is not facet), len(numbers))]
            values = self._values[facet]
            if facet is Facet.SHARE_METHOD:
                bits = self._methods.values[among]
                counts = [int(np.count_nonzero(bits & (1 << i))) for i in range(len(values))]
            else:
                column = self._columns[facet].values[among]
                counts = np.bincount(column[column >= 0], minlength=len(values)).tolist()
            facets[facet] = {v: c for v, c in zip(values, counts, strict=True) if c}
        return facets


def _all(masks, size: int) -> np.ndarray:
    selected = np.ones(size, dtype=np.bool_)
    for mask in masks:
        selected &= mask
    return selected


def _intersect(lists: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    lists = sorted(lists, key=lambda pair: len(pair[0]))
    numbers, scores = lists[0]
    for other_numbers, other_scores in lists[1:]:
        at = np.searchsorted(other_numbers, numbers)
        at[at == len(other_numbers)] = 0
        found = other_numbers[at] == numbers if len(other_numbers) else np.zeros(len(numbers), np.bool_)
        numbers, scores = numbers[found], scores[found] + other_scores[at[found]]
    return numbers, scores


def _union(lists: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    numbers, where = np.unique(np.concatenate([n for n, _ in lists]), return_inverse=True)
    scores = np.bincount(where, weights=np.concatenate([s for _, s in lists]), minlength=len(numbers))
    return numbers, scores.astype(np.float32)
