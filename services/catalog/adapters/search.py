"""The catalog's full-text index: Chinese word segmentation (jieba, via rjieba) into an in-memory inverted
index, with filters and facet counts computed over numpy columns.

A query finds what people type: traditional characters are read as simplified (OpenCC); each word also
searches the words meaning the same (`Synonyms`: the maintained list in `synonyms.txt`, the data-element
dictionary's aliases); a word no entry holds is tried as pinyin or pinyin initials of indexed words (qiye,
qy → 企业) and as the beginning of longer words (不动 → 不动产). Any word will do by default; entries holding
more of the words rank first.

Every catalog replica holds its own index, loaded from MongoDB at start and then kept current by the
entries collection's change stream (see `follow_entries`). Document numbers only grow: a changed entry gets
a new number and its old one is marked dead, so posting lists stay sorted and append-only; they are
compacted once a quarter of them is dead.
"""

from __future__ import annotations

import bisect
import math
import re
from array import array
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from importlib import resources

import numpy as np
import opencc
import rjieba
from pypinyin import Style, lazy_pinyin

from services.catalog.domain.entries import Category, ShareMethod, ShareType, UpdateCycle, VersionStatus
from services.catalog.domain.search import (
    ONLY_STOP_WORDS,
    Facet,
    SearchDocument,
    SearchHit,
    SearchQuery,
    SearchResult,
    Synonyms,
)

# Weight of a word by where it occurs: a word of the name says more than one of the abstract.
NAME, ITEM, ABSTRACT, DESCRIPTION = 3.0, 2.0, 1.0, 0.5
SATURATION = 1.2  # BM25's k1: the tenth occurrence adds little
STOPWORDS = frozenset("的 了 和 与 及 或 等 在 是 对 为 由 从 按 其 之 并 以 中 各 类 有关 相关 进行".split())
WORD = re.compile(r"[\w\u4e00-\u9fff]")
RESOURCE_CODE = re.compile(r"\d{6}/\d{6}")
HANZI = re.compile(r"[\u4e00-\u9fff]+")
LETTERS = re.compile(r"[a-z]+")
# How much a word found another way counts against the word as typed.
SYNONYM, PINYIN, PARTIAL = 0.9, 0.8, 0.7
MAX_EXPANSIONS = 32  # words tried for one pinyin or partial word, the most frequent first
_T2S = opencc.OpenCC("t2s")

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


def simplified(text: str) -> str:
    """Traditional characters as simplified (企業登記 → 企业登记); simplified text stays as it is."""
    return _T2S.convert(text) if HANZI.search(text) else text


def query_terms(text: str) -> list[str]:
    """Words of a query, segmented exactly (精确模式), each once; resource codes stay whole. Characters the
    segmenter leaves single stay together (不动 is cut 不 / 动: the reader typed the beginning of 不动产)."""
    codes = RESOURCE_CODE.findall(text)
    words: list[str] = []
    single = False
    for token in rjieba.cut(simplified(RESOURCE_CODE.sub(" ", text)).lower()):
        alone = len(token) == 1 and HANZI.match(token) is not None and token not in STOPWORDS
        if alone and single:
            words[-1] += token
        else:
            words.append(token)
        single = alone
    return list(dict.fromkeys([*codes, *(t for t in words if _meaningful(t))]))


def pinyin_keys(word: str) -> tuple[str, str]:
    """A Chinese word's pinyin without tones and its initials: 企业 → (qiye, qy)."""
    return "".join(lazy_pinyin(word)), "".join(lazy_pinyin(word, style=Style.FIRST_LETTER))


class SynonymList:
    """The maintained list of synonyms and abbreviations (`synonyms.txt` beside this module, or another file
    in its format): one group per line, words split by spaces or '='; lines starting with '#' explain."""

    def __init__(self, text: str | None = None) -> None:
        self.text = text if text is not None else resources.files(__package__).joinpath("synonyms.txt").read_text()

    def alias_groups(self) -> Iterator[list[str]]:
        for line in self.text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                yield [w for w in re.split(r"[\s=＝]+", line) if w]


def merged_synonyms(*sources: Iterable[Iterable[str]]) -> Synonyms:
    """One `Synonyms` of the groups of several sources (each an `AliasSource`'s `alias_groups()`)."""
    return Synonyms(group for groups in sources for group in groups)


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
    def __init__(self, synonyms: Synonyms | None = None) -> None:
        self.use_synonyms(synonyms if synonyms is not None else merged_synonyms(SynonymList().alias_groups()))
        self._clear()

    def use_synonyms(self, synonyms: Synonyms) -> None:
        self._synonyms = synonyms
        # Synonyms the segmenter cuts into several words (企业组织机构代码): found in a query as typed, longest first.
        phrases = (w for w in synonyms.words() if query_terms(w) != [w])
        self._phrases = sorted(phrases, key=lambda w: (-len(w), w))

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
        self._words: list[str] = []  # Chinese words of the postings, sorted: the longer words a partial one starts
        self._by_pinyin: dict[str, set[str]] = defaultdict(set)  # pinyin or initials → Chinese words

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
            if term not in self._postings:
                self._new_word(term)
            numbers, weights = self._postings.setdefault(term, (array("i"), array("f")))
            numbers.append(number)
            weights.append(weight)
            self._frozen.pop(term, None)
        if self._dead > 1000 and self._dead * 4 > len(self._docs):
            self._compact()

    def _new_word(self, term: str) -> None:
        if HANZI.fullmatch(term):
            bisect.insort(self._words, term)
            full, initials = pinyin_keys(term)
            self._by_pinyin[full].add(term)
            if len(term) > 1:
                self._by_pinyin[initials].add(term)

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

    def _readers_count(self, readable: np.ndarray) -> Callable[[str], int]:
        """How many documents the reader may see are indexed under a word (remembered for one search): words
        only hidden documents hold must not show in what a search reports (its terms, their expansions)."""
        memo: dict[str, int] = {}

        def count(word: str) -> int:
            if word not in memo:
                found = self._posting(word)
                memo[word] = 0 if found is None else int(np.count_nonzero(readable[found[0]]))
            return memo[word]

        return count

    def _held(self, word: str, readable: np.ndarray) -> bool:
        """Whether a document the reader may see holds a word, or all the parts of a compound one."""
        matches = self._term_matches(word)
        return matches is not None and bool(readable[matches[0]].any())

    def _expansions(self, term: str, seen: Callable[[str], int], readable: np.ndarray) -> list[tuple[str, float]]:
        """Other words searched for a query word: its synonyms; if no entry the reader sees is indexed under
        the word and none holds a synonym, the words it is the pinyin or initials of, or else the longer words
        it begins — of the entries the reader sees."""
        found = [(s, SYNONYM) for s in sorted(self._synonyms.of_word(term))][:MAX_EXPANSIONS]
        if seen(term) or any(self._held(s, readable) for s, _ in found):
            return found
        if LETTERS.fullmatch(term):
            words = self._by_pinyin.get(term, set())
            return found + [(w, PINYIN) for w in self._most_frequent(words, seen)]
        if HANZI.fullmatch(term) and len(term) > 1:
            return found + [(w, PARTIAL) for w in self._most_frequent(self._longer_words(term), seen)]
        return found

    @staticmethod
    def _most_frequent(words: Iterable[str], seen: Callable[[str], int]) -> list[str]:
        ranked = sorted((w for w in words if seen(w)), key=lambda w: (-seen(w), w))
        return ranked[:MAX_EXPANSIONS]

    def _longer_words(self, start: str) -> list[str]:
        """Indexed Chinese words that begin with `start` and are longer."""
        at = bisect.bisect_left(self._words, start)
        longer = []
        for word in self._words[at:]:
            if not word.startswith(start):
                break
            if word != start:
                longer.append(word)
        return longer

    def _joined_partials(self, terms: list[str], seen: Callable[[str], int]) -> list[str]:
        """A word followed by a single character that begins a longer word with it is that longer word's
        beginning (营业执 is cut 营业 / 执: the reader is typing 营业执照)."""
        joined: list[str] = []
        for term in terms:
            if joined and len(term) == 1 and HANZI.fullmatch(term) and HANZI.fullmatch(joined[-1]):
                if any(seen(w) for w in self._longer_words(joined[-1] + term)):
                    joined[-1] += term
                    continue
            joined.append(term)
        return joined

    def _split_pinyin(self, term: str, seen: Callable[[str], int]) -> list[str]:
        """Pinyin typed without spaces, as the words it spells (qiyedengji → qiye, dengji), if it spells any."""

        def spells(key: str) -> bool:
            return any(seen(w) for w in self._by_pinyin.get(key, ()))

        if not LETTERS.fullmatch(term) or spells(term) or len(term) > 60:
            return [term]
        best: list[list[str] | None] = [[]] + [None] * len(term)  # best[i]: fewest words spelling term[:i]
        for end in range(1, len(term) + 1):
            for start in range(max(0, end - 24), end):
                before = best[start]
                if before is not None and end - start > 2 and spells(term[start:end]):
                    if best[end] is None or len(before) + 1 < len(best[end] or ()):
                        best[end] = [*before, term[start:end]]
        return best[-1] or [term]

    def _scored(
        self, terms: list[str], match_all: bool, seen: Callable[[str], int], readable: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, tuple[str, ...]]]:
        """Documents, their scores and how many of the terms each holds; the words searched for each term.

        Scores and counts add up in arrays over all document numbers: no sorting of merged posting lists."""
        total = max(len(self._number), 1)
        size = len(self._docs)
        scores, counts = np.zeros(size, np.float32), np.zeros(size, np.int32)
        best = np.zeros(size, np.float32)  # one term's score per document: its best form's
        expanded = {}
        for term in terms:
            alternatives = [(term, 1.0), *self._expansions(term, seen, readable)]
            if len(alternatives) > 1:
                expanded[term] = tuple(w for w, _ in alternatives[1:])
            found = []
            for word, factor in alternatives:
                matches = self._term_matches(word)
                if matches is None:
                    continue
                numbers, weights = matches
                frequency = min(len(numbers), total)  # postings of replaced versions may outnumber the entries
                idf = math.log(1 + (total - frequency + 0.5) / (frequency + 0.5))
                found.append((numbers, weights * np.float32(idf * factor)))
            if not found and match_all:
                return _none(), _none(np.float32), _none(), expanded
            if len(found) == 1:  # a posting list holds each document once
                numbers, weights = found[0]
                scores[numbers] += weights
                counts[numbers] += 1
            elif found:
                for numbers, weights in found:
                    best[numbers] = np.maximum(best[numbers], weights)
                held = np.flatnonzero(best)
                scores[held] += best[held]
                counts[held] += 1
                best[held] = 0
        numbers = np.flatnonzero(counts >= (len(terms) if match_all else 1))
        return numbers, scores[numbers], counts[numbers], expanded

    def _phrases_in(self, text: str) -> tuple[list[str], str]:
        """Synonyms of several words found in a query as typed, and the rest of the query."""
        found = []
        rest = simplified(text).lower()
        for phrase in self._phrases:
            if phrase in rest:
                found.append(phrase)
                rest = rest.replace(phrase, " ")
        return found, rest

    def search(self, query: SearchQuery) -> SearchResult:
        size = len(self._docs)
        readable = self._live.values[:size].copy()
        if query.viewer is not None and not query.viewer.sees_all(query.filters):
            readable &= self._visible(np.arange(size), query.viewer.department_code)
        seen = self._readers_count(readable)
        phrases, rest = self._phrases_in(query.text)
        typed = [*phrases, *(w for t in query_terms(rest) for w in self._split_pinyin(t, seen))]
        terms = self._joined_partials(list(dict.fromkeys(typed)), seen)
        expanded: dict[str, tuple[str, ...]] = {}
        if terms:
            numbers, scores, counts, expanded = self._scored(terms, query.match_all, seen, readable)
            keep = readable[numbers]
            numbers, scores, counts = numbers[keep], scores[keep], counts[keep]
        elif query.text.strip():  # words were typed, but all of them stop words: not a request for everything
            return SearchResult(0, (), {f: {} for f in Facet}, (), note=ONLY_STOP_WORDS)
        else:
            numbers = np.flatnonzero(readable)
            scores = np.zeros(len(numbers), np.float32)
            counts = np.zeros(len(numbers), np.int64)
        masks = self._filter_masks(numbers, query.filters)
        selected = _all(masks.values(), len(numbers))
        facets = self._facets(numbers, masks)
        numbers, scores, counts = numbers[selected], scores[selected], counts[selected]
        page = _page(numbers, scores, counts, query.offset, query.limit)
        hits = []
        for n, s, c in zip(numbers[page], scores[page], counts[page], strict=True):
            doc = self._docs[int(n)]
            assert doc is not None
            hits.append(
                SearchHit(doc.resource_code, doc.provider_code, doc.name, doc.status, round(float(s), 4), int(c))
            )
        return SearchResult(len(numbers), tuple(hits), facets, tuple(terms), expanded)

    def _visible(self, numbers: np.ndarray, department_code: str | None) -> np.ndarray:
        """Published entries, and any entry of the viewer's own department."""
        published = self._columns[Facet.STATUS].values[numbers] == self._codes[Facet.STATUS][VersionStatus.PUBLISHED]
        own = None if department_code is None else self._codes[Facet.PROVIDER].get(department_code)
        if own is None:
            return published
        return published | (self._columns[Facet.PROVIDER].values[numbers] == own)

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


def _page(numbers: np.ndarray, scores: np.ndarray, counts: np.ndarray, offset: int, limit: int) -> np.ndarray:
    """Positions of one page of the documents: most words first, then best score, then the most recently
    changed. Only the candidates for the page are sorted, not every match."""
    wanted = offset + limit
    if wanted >= len(numbers):
        return np.lexsort((-numbers, -scores, -counts))[offset:wanted]
    rank = counts.astype(np.float64) * 1e6 + scores  # scores stay far below 1e6
    if not rank.any():  # no words: the most recently changed first
        return np.arange(len(numbers) - 1, -1, -1)[offset:wanted]
    threshold = np.partition(rank, len(rank) - wanted)[len(rank) - wanted]
    candidates = np.flatnonzero(rank >= threshold)  # ties at the threshold all stay, so the order is stable
    order = np.lexsort((-numbers[candidates], -scores[candidates], -counts[candidates]))
    return candidates[order][offset:wanted]


def _none(dtype: type = np.int64) -> np.ndarray:
    return np.empty(0, dtype)
